"""`sovereign run` with an LLM configured: the improvement cycle asks an OpenAI-compatible
endpoint (a stub on 127.0.0.1) for proposals, parses what it can, rejects what it cannot as
LLM_UNPARSEABLE, and when the endpoint fails, says so and falls back to the offline proposer."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from sovereign.cli import app as cli
from sovereign.market.files import write_csv
from sovereign.market.synthetic import generate
from tests.graph.fakes import StubOpenAI, text_completion, tool_call_completion

GOOD = {
    "kind": "add_rule",
    "rationale": "volatile regimes hurt; halve size there",
    "source": "human",  # an LLM cannot claim to be a person: forced to "llm"
    "rule": {
        "name": "llm-half-volatile",
        "when": {"type": "regime_is", "regime": "volatile"},
        "then": {"type": "scale_position", "factor": 0.5},
    },
}
BAD = {"kind": "add_rule", "rationale": "x", "rule": {"then": {"type": "remove_stop"}}}


@pytest.fixture(scope="module")
def long_csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("data") / "long.csv"
    write_csv(generate(symbols=6, n_bars=1300, seed=5, start="2015-01-01").panel, path)
    return path


def test_run_with_an_llm_over_http(
    home: Path, long_csv: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    script = [
        text_completion("Volatile regimes cost the most; one idea, and one I am unsure of."),
        tool_call_completion("ProposalBatch", {"proposals": [GOOD, BAD]}),
    ]  # then the stub answers 500: the endpoint is down for every later cycle
    with StubOpenAI(script) as stub:
        monkeypatch.setenv("SOVEREIGN_LLM__MODEL", "stub-model")
        monkeypatch.setenv("SOVEREIGN_LLM__BASE_URL", stub.url)
        monkeypatch.setenv("SOVEREIGN_LLM__API_KEY", "test-key")
        monkeypatch.setenv("SOVEREIGN_LLM__MAX_RETRIES", "0")
        result = CliRunner().invoke(
            cli, ["run", "--data", str(long_csv), "--improve-every", "180", "--json"]
        )
    assert result.exit_code == 0, result.output
    imp = json.loads(result.stdout)["improvement"]
    outcomes = sorted(imp["deployed"] + imp["rejected"], key=lambda o: o["at"])
    first_cycle = [o for o in outcomes if o["at"] == outcomes[0]["at"]]
    llm = [o for o in first_cycle if o["source"] == "llm" and o["kind"] == "add_rule"]
    assert [o["summary"] for o in llm] == [
        next(o["summary"] for o in llm if "llm-half-volatile" in o["summary"])
    ]
    assert llm[0]["stage"] in ("gate", "deploy")  # a real verdict from the real gate
    assert any(r.startswith("LLM_UNPARSEABLE") for o in first_cycle for r in o["reasons"])
    later = [o for o in outcomes if o["at"] > outcomes[0]["at"]]
    assert any(r.startswith("LLM_UNAVAILABLE") for o in later for r in o["reasons"])
    assert any(o["source"] == "heuristic" for o in later)  # the fallback proposer ran
    first_request = stub.requests[0]["body"]
    assert first_request["model"] == "stub-model"
    prompt = json.dumps(first_request["messages"])
    assert "max_drawdown" in prompt and "<<<DATA" in prompt  # constitution summary, fenced data
    offered = {t["function"]["name"] for t in first_request.get("tools", [])}
    assert {"recent_trades", "stress_test", "crash_sentinel", "market_risk"} <= offered
    assert "test-key" not in result.output
    log = (home / "var" / "logs" / "sovereign.log").read_text()
    assert "improvement cycle" in log and "test-key" not in log
