"""The read-only engine tools on the bundled S&P 500 sample (20 stocks, closes only): what each
returns, that nothing after ``as_of`` is read, bad arguments and engine refusals as error JSON,
and a LangGraph tool-calling loop driving them."""

from __future__ import annotations

import importlib
import json
import math
from typing import Any

import numpy as np
import pandas as pd
import pytest
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage, ToolMessage
from langchain_core.tools import BaseTool
from langchain_core.utils.function_calling import convert_to_openai_tool
from langgraph.graph import END, START, MessagesState, StateGraph
from langgraph.prebuilt import ToolNode, tools_condition
from scipy.stats import norm

from sovereign.engines.sentinel import sentinel_reading
from sovereign.errors import ConfigError
from sovereign.market import BarPanel
from sovereign.market.sources import load_sample
from sovereign.market.synthetic import generate
from sovereign.tools.engine_tools import MAX_OUTPUT_CHARS, EngineReader, engine_tools

# the module itself (``sovereign.tools.engine_tools`` may name the function once re-exported)
module = importlib.import_module("sovereign.tools.engine_tools")
NAMES = ["market_risk", "stability", "crash_sentinel", "stress_test", "drift", "change_points"]
BOOK_KEYS = {"basis", "n_assets", "gross", "net", "top_weights"}
KEYS = {
    "market_risk": {
        "as_of", "alpha", "method", "requested_method", "fallback", "var", "es",
        "annual_volatility", "n_obs", "dropped_rows", "start",
    } | BOOK_KEYS,
    "stability": {"as_of", "score", "level", "components", "alerts"},
    "crash_sentinel": {
        "as_of", "action", "composite", "components", "reasons", "exposure_scale", "n_symbols",
        "excluded_symbols", "warming_up",
    },
    "stress_test": {
        "as_of", "worst_loss", "binding_model", "binding_scenario", "top_scenarios", "uncovered",
        "n_scenarios", "n_paths", "fit_rows",
    } | BOOK_KEYS,
    "drift": {
        "as_of", "subject", "level", "drifted", "features", "live_start", "reference_start",
        "reference_end", "n_live", "n_reference", "dropped_live", "dropped_reference",
    },
    "change_points": {
        "as_of", "subject", "n_obs", "start", "p_change", "map_run_length", "segment_start",
        "change_dates", "n_change_dates", "change_dates_truncated",
    },
}  # fmt: skip


def bar_index(panel: BarPanel, day: str) -> int:
    i = int(panel.timestamps.searchsorted(pd.Timestamp(day, tz="UTC")))
    assert panel.timestamps[i] == pd.Timestamp(day, tz="UTC")
    return i


def by_name(tools: list[BaseTool]) -> dict[str, BaseTool]:
    return {t.name: t for t in tools}


def call(tools: dict[str, BaseTool], name: str, args: dict[str, Any] | None = None) -> Any:
    out = tools[name].invoke(args or {})
    assert isinstance(out, str)
    assert len(out) <= MAX_OUTPUT_CHARS
    return json.loads(out)


def with_close(panel: BarPanel, close: np.ndarray) -> BarPanel:
    """A closes-only panel like ``panel`` with other closes."""
    return BarPanel.from_closes(
        pd.DataFrame(close, index=panel.timestamps, columns=list(panel.symbols))
    )


@pytest.fixture(scope="module")
def sp500() -> BarPanel:
    return load_sample("sp500")


@pytest.fixture(scope="module")
def crisis(sp500: BarPanel) -> int:
    return bar_index(sp500, "2008-10-15")


@pytest.fixture(scope="module")
def tools_2008(sp500: BarPanel, crisis: int) -> dict[str, BaseTool]:
    return by_name(engine_tools(sp500, as_of=crisis))


# ------------------------------------------------------------------------------------- contents


@pytest.mark.parametrize("name", NAMES)
def test_every_tool_answers_with_its_documented_keys(
    tools_2008: dict[str, BaseTool], name: str
) -> None:
    out = call(tools_2008, name)
    assert set(out) == KEYS[name]
    assert out["as_of"] == "2008-10-15"


def test_tool_names_and_schemas_are_the_contract(tools_2008: dict[str, BaseTool]) -> None:
    assert list(tools_2008) == NAMES
    for tool in tools_2008.values():
        schema = convert_to_openai_tool(tool)["function"]
        assert schema["name"] == tool.name
        assert schema["description"]
    risk = convert_to_openai_tool(tools_2008["market_risk"])["function"]["parameters"]
    assert set(risk["properties"]) == {"symbols", "alpha", "method", "window"}
    assert risk["properties"]["method"]["enum"] == ["historical", "parametric", "cornish_fisher"]


def test_october_2008_reads_stressed_and_2013_calm(sp500: BarPanel, tools_2008) -> None:
    stability = call(tools_2008, "stability")
    assert stability["level"] == "unstable"
    assert stability["score"] < 0.05
    assert stability["components"]["liquidity"]["score"] is None  # closes only
    assert "closes only" in stability["components"]["liquidity"]["reason"]
    sentinel = call(tools_2008, "crash_sentinel")
    assert sentinel["action"] == "stand_down"
    assert sentinel["exposure_scale"] == 0.0
    assert sentinel["composite"] > 2.5
    assert sentinel["reasons"]
    assert sentinel["warming_up"] is None

    calm = by_name(engine_tools(sp500, as_of=bar_index(sp500, "2013-05-15")))
    assert call(calm, "stability")["level"] == "stable"
    quiet = call(calm, "crash_sentinel")
    assert (quiet["action"], quiet["exposure_scale"], quiet["reasons"]) == ("none", 1.0, [])


def test_stability_alerts_compare_with_five_bars_earlier(sp500: BarPanel) -> None:
    out = call(by_name(engine_tools(sp500, as_of=bar_index(sp500, "1994-04-08"))), "stability")
    codes = {a["code"] for a in out["alerts"]}
    assert "STABILITY_SCORE_DROP" in codes  # 0.38 on 1994-03-31 to 0.07
    drop = next(a for a in out["alerts"] if a["code"] == "STABILITY_SCORE_DROP")
    assert drop["drop"] > 0.25
    assert drop["component"] is None


def test_market_risk_matches_an_independent_computation(
    sp500: BarPanel, crisis: int, tools_2008
) -> None:
    close = sp500.close[: crisis + 1]
    r = close[1:] / close[:-1] - 1.0
    port = r[-252:].mean(axis=1)  # equal weights over the 20 symbols
    loss = -port
    var = np.quantile(loss, 0.99)
    out = call(tools_2008, "market_risk")
    assert out["var"] == pytest.approx(var, abs=5e-5)
    assert out["es"] == pytest.approx(loss[loss >= var].mean(), abs=5e-5)
    assert out["annual_volatility"] == pytest.approx(port.std(ddof=1) * math.sqrt(252), abs=5e-5)
    assert (out["n_obs"], out["dropped_rows"], out["start"]) == (252, 0, "2007-10-17")
    assert out["basis"] == "equal_weight_universe"

    two = call(
        tools_2008,
        "market_risk",
        {"symbols": ["JPM", "BAC"], "method": "parametric", "alpha": 0.95, "window": 60},
    )
    cols = [sp500.column("JPM"), sp500.column("BAC")]
    p2 = r[-60:, cols].mean(axis=1)
    mu, sd = p2.mean(), p2.std(ddof=1)
    assert two["var"] == pytest.approx(-mu + sd * norm.ppf(0.95), abs=5e-5)
    assert two["es"] == pytest.approx(-mu + sd * norm.pdf(norm.ppf(0.95)) / 0.05, abs=5e-5)
    assert two["top_weights"] == {"JPM": 0.5, "BAC": 0.5}
    assert (two["basis"], two["n_assets"], two["method"]) == (
        "equal_weight_symbols",
        2,
        "parametric",
    )


def test_sentinel_is_the_engine_reading(sp500: BarPanel, crisis: int, tools_2008) -> None:
    close = sp500.close[: crisis + 1]
    reading = sentinel_reading(close[1:] / close[:-1] - 1.0)
    out = call(tools_2008, "crash_sentinel")
    assert out["action"] == reading.action.value
    assert out["composite"] == round(reading.composite, 4)
    assert out["components"] == {
        "autocorrelation": round(reading.components.autocorrelation, 4),
        "variance": round(reading.components.variance, 4),
        "turbulence": round(reading.components.turbulence, 4),
    }
    assert out["reasons"] == list(reading.reasons)


def test_stress_test_reports_the_worst_scenarios(tools_2008: dict[str, BaseTool]) -> None:
    out = call(tools_2008, "stress_test")
    top = out["top_scenarios"]
    assert len(top) == 5
    assert [s["loss"] for s in top] == sorted((s["loss"] for s in top), reverse=True)
    assert top[0]["loss"] == out["worst_loss"] > 0
    assert (top[0]["scenario"], top[0]["model"]) == (out["binding_scenario"], out["binding_model"])
    # as of October 2008 the crises after it are not in the data: reported, never a silent 0
    assert {"covid_2020", "q4_2018", "us_downgrade_2011"} <= set(out["uncovered"])
    assert "gfc_2007_2009" not in out["uncovered"]
    assert out["n_paths"] == 300


def test_drift_and_change_points_on_the_crisis(tools_2008: dict[str, BaseTool]) -> None:
    drift = call(tools_2008, "drift")
    vol = next(f for f in drift["features"] if f["name"] == "volatility_20d")
    assert vol["level"] == "significant"  # 20-day vol in Jul-Oct 2008 vs the year before
    assert "volatility_20d" in drift["drifted"]
    assert (drift["n_live"], drift["n_reference"], drift["live_start"]) == (60, 250, "2008-07-23")
    aapl = call(tools_2008, "drift", {"symbol": "AAPL", "window": 120, "reference": 500})
    assert (aapl["subject"], aapl["n_live"], aapl["n_reference"]) == ("AAPL", 120, 500)

    cp = call(tools_2008, "change_points")
    assert cp["subject"] == "market"
    assert cp["n_obs"] == 500
    assert "2008-09-17" in cp["change_dates"]  # the week of Lehman and AIG
    assert cp["segment_start"] == "2008-09-15"
    assert 0.0 <= cp["p_change"] <= 1.0


def test_long_lists_are_clipped(sp500: BarPanel) -> None:
    out = call(by_name(engine_tools(sp500)), "change_points", {"symbol": "AAPL", "lookback": 2000})
    assert out["n_change_dates"] > len(out["change_dates"]) == module.MAX_DATES
    assert out["change_dates_truncated"] is True
    assert out["change_dates"] == sorted(out["change_dates"])


def test_an_answer_over_the_size_cap_becomes_an_error(
    tools_2008: dict[str, BaseTool], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(module, "MAX_OUTPUT_CHARS", 100)
    out = json.loads(tools_2008["market_risk"].invoke({}))
    assert list(out) == ["error"]
    assert "too long" in out["error"]


# -------------------------------------------------------------------------------------- the book


def test_the_current_book_is_used_unless_symbols_are_named(sp500: BarPanel, crisis: int) -> None:
    long_short = by_name(
        engine_tools(sp500, as_of=crisis, weights={"AAPL": 0.6, "JPM": -0.2}, seed=3)
    )
    risk = call(long_short, "market_risk")
    assert (risk["basis"], risk["n_assets"], risk["gross"], risk["net"]) == ("weights", 2, 0.8, 0.4)
    assert risk["top_weights"] == {"AAPL": 0.6, "JPM": -0.2}
    named = call(long_short, "market_risk", {"symbols": ["KO"]})
    assert (named["basis"], named["top_weights"]) == ("equal_weight_symbols", {"KO": 1.0})

    # stressed losses are linear in the book's size (one profile, same seed)
    full = by_name(engine_tools(sp500, as_of=crisis, weights={"AAPL": 1.0}))
    half = by_name(engine_tools(sp500, as_of=crisis, weights={"AAPL": 0.5}))
    whole, part = call(full, "stress_test"), call(half, "stress_test")
    assert part["worst_loss"] == pytest.approx(whole["worst_loss"] / 2, abs=1e-4)
    assert part["binding_scenario"] == whole["binding_scenario"]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"as_of": 10**6}, "outside the panel"),
        ({"as_of": -1}, "outside the panel"),
        ({"weights": {"TSLA": 0.1}}, "not in the panel"),
        ({"weights": {"AAPL": math.nan}}, "not finite"),
        ({"seed": -1}, "seed"),
    ],
)
def test_bad_construction_is_a_config_error(
    sp500: BarPanel, kwargs: dict[str, Any], message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        engine_tools(sp500, **kwargs)


# ----------------------------------------------------------------------------------- read-only


def _answers(tools: dict[str, BaseTool]) -> list[str]:
    calls: list[tuple[str, dict[str, Any]]] = [(n, {}) for n in NAMES]
    calls += [("drift", {"symbol": "JPM"}), ("change_points", {"symbol": "BAC"})]
    return [tools[n].invoke(a) for n, a in calls]


def test_bars_after_as_of_change_nothing(sp500: BarPanel, crisis: int, tools_2008) -> None:
    close = np.array(sp500.close)
    rng = np.random.default_rng(42)
    close[crisis + 1 :] *= rng.uniform(0.2, 3.0, size=close[crisis + 1 :].shape)  # chaos later
    later = by_name(engine_tools(with_close(sp500, close), as_of=crisis))
    assert _answers(later) == _answers(tools_2008)

    # the control: one close before as_of moves, and the answers see it
    earlier = np.array(sp500.close)
    earlier[crisis - 3, sp500.column("JPM")] *= 1.5
    moved = by_name(engine_tools(with_close(sp500, earlier), as_of=crisis))
    assert call(moved, "market_risk") != call(tools_2008, "market_risk")
    assert call(moved, "drift", {"symbol": "JPM"}) != call(tools_2008, "drift", {"symbol": "JPM"})


def test_the_tools_hold_a_private_read_only_snapshot(sp500: BarPanel, crisis: int) -> None:
    panel = with_close(sp500, np.array(sp500.close))
    reader = EngineReader(panel, as_of=crisis)
    tools = by_name(engine_tools(panel, as_of=crisis))
    before = call(tools, "market_risk")
    panel.close[crisis - 5 : crisis + 1] *= 0.5  # the caller's array changes afterwards
    assert call(tools, "market_risk") == before
    for array in (reader.close, reader.returns):
        assert not array.flags.writeable
        with pytest.raises(ValueError, match="read-only"):
            array[0, 0] = 1.0
    assert reader.close.shape == (crisis + 1, 20)


# ------------------------------------------------------------------------------------ bad input


@pytest.mark.parametrize(
    ("name", "args", "message"),
    [
        ("market_risk", {"symbols": ["XYZ"]}, "unknown symbol 'XYZ'; valid symbols: AAPL, AMD"),
        ("market_risk", {"symbols": ["AAPL", "AAPL"]}, "symbols must be distinct"),
        ("market_risk", {"symbols": []}, "symbols"),
        ("market_risk", {"alpha": 1.5}, "alpha"),
        ("market_risk", {"method": "monte_carlo"}, "method"),
        ("market_risk", {"window": 5}, "window"),
        ("market_risk", {"weights": {"AAPL": 1}}, "weights: Extra inputs are not permitted"),
        ("stress_test", {"symbols": ["aapl"]}, "unknown symbol 'aapl'"),
        ("drift", {"symbol": "NOPE"}, "unknown symbol 'NOPE'"),
        ("drift", {"window": 10_000}, "window"),
        ("change_points", {"lookback": 3}, "lookback"),
        ("change_points", {"symbol": 7}, "symbol"),
    ],
)
def test_bad_arguments_answer_an_error(
    tools_2008: dict[str, BaseTool], name: str, args: dict[str, Any], message: str
) -> None:
    out = call(tools_2008, name, args)
    assert list(out) == ["error"]
    assert out["error"].startswith("invalid arguments: ")
    assert message in out["error"]


def test_engine_refusals_answer_an_error(sp500: BarPanel) -> None:
    early = by_name(engine_tools(sp500, as_of=40))  # 41 bars: too little for most engines
    assert "need 60" in call(early, "stress_test")["error"]
    assert "needs 311 bars" in call(early, "drift")["error"]
    assert call(early, "market_risk")["n_obs"] == 40  # what there is, said so
    assert (
        "need at least 30" in call(by_name(engine_tools(sp500, as_of=20)), "market_risk")["error"]
    )
    warming = call(early, "crash_sentinel")
    assert warming["action"] is None
    assert warming["warming_up"] == "warming up: needs 515 bars, has 41"
    assert call(early, "stability")["level"] == "unstable"  # no component yet: fail closed
    first = by_name(engine_tools(sp500, as_of=0))
    for name in ("market_risk", "stress_test", "drift", "change_points"):
        assert "error" in call(first, name)


def test_gaps_are_dropped_and_reported() -> None:
    """30 symbols, half of them listed only from bar 300: rows with a gap in the book are
    dropped (and counted); the sentinel leaves out symbols without a full history."""
    synthetic = generate(symbols=30, n_bars=700, seed=7).panel
    close = np.array(synthetic.close)
    close[:300, 15:] = np.nan
    tools = by_name(engine_tools(with_close(synthetic, close)))
    risk = call(tools, "market_risk", {"window": 500})
    assert (risk["dropped_rows"], risk["n_obs"], risk["n_assets"]) == (101, 399, 30)
    assert len(risk["top_weights"]) == module.MAX_LISTED
    sentinel = call(tools, "crash_sentinel")
    assert sentinel["n_symbols"] == 15
    assert sentinel["action"] in {"none", "halve", "stand_down"}
    assert sentinel["excluded_symbols"][-1] == "... 15 in all"
    assert len(sentinel["excluded_symbols"]) == module.MAX_LISTED + 1
    late = call(tools, "change_points", {"symbol": synthetic.symbols[20], "lookback": 2000})
    assert late["n_obs"] == 399  # the returns after the listing gap
    for name in NAMES:
        assert "error" not in call(tools, name)


# ----------------------------------------------------------------------------- tool-calling loop


def test_a_langgraph_tool_calling_loop_drives_the_tools(tools_2008: dict[str, BaseTool]) -> None:
    """A scripted model asks for three tools in one turn (one with a bad symbol), reads the
    answers, and stops; ToolNode runs the calls as it would for a real model."""
    model = GenericFakeChatModel(
        messages=iter(
            [
                AIMessage(
                    content="",
                    tool_calls=[
                        {"name": "crash_sentinel", "args": {}, "id": "c1"},
                        {"name": "market_risk", "args": {"symbols": ["LEH"]}, "id": "c2"},
                        {"name": "stress_test", "args": {"symbols": ["JPM", "BAC"]}, "id": "c3"},
                    ],
                ),
                AIMessage(content="The sentinel says stand down."),
            ]
        )
    )
    graph = StateGraph(MessagesState)
    graph.add_node("model", lambda state: {"messages": [model.invoke(state["messages"])]})
    graph.add_node("tools", ToolNode(list(tools_2008.values())))
    graph.add_edge(START, "model")
    graph.add_conditional_edges("model", tools_condition, {"tools": "tools", END: END})
    graph.add_edge("tools", "model")
    result = graph.compile().invoke({"messages": [("user", "how risky is the market?")]})

    replies = {m.tool_call_id: m for m in result["messages"] if isinstance(m, ToolMessage)}
    assert set(replies) == {"c1", "c2", "c3"}
    assert json.loads(str(replies["c1"].content))["action"] == "stand_down"
    assert replies["c2"].status == "error"
    assert "unknown symbol 'LEH'" in json.loads(str(replies["c2"].content))["error"]
    stress = json.loads(str(replies["c3"].content))
    assert stress["top_weights"] == {"JPM": 0.5, "BAC": 0.5}
    assert result["messages"][-1].content == "The sentinel says stand down."
