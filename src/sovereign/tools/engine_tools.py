"""LangChain tools over the numeric engines, for LLM nodes (the improvement cycle, chat). READ-ONLY.

:func:`engine_tools` snapshots the bars of a :class:`~sovereign.market.BarPanel` known at
``as_of`` (the index of the last bar the caller knows) into private read-only copies: nothing
after ``as_of`` is read, and the tools can change nothing (they hold no broker, no database, no
writable array). Every tool returns one compact JSON object as a string (keys sorted, loss and
volatility fractions and scores to 4 decimals: ``0.0312`` is 3.12 %), with ``as_of`` the date
of the last bar used. Bad arguments (an unknown symbol, a value out of bounds, an unknown key)
and engine refusals (:class:`~sovereign.errors.EngineError`, e.g. too little history) come back
as ``{"error": "..."}``, never as an exception to the model (LangChain passes nothing to a
tool without arguments, so keys given to ``stability`` or ``crash_sentinel`` are ignored).
Lists are bounded so one answer stays under :data:`MAX_OUTPUT_CHARS`.

Tools (``?`` = optional), and the engine behind each:

- ``market_risk(symbols?, alpha, method, window)``: VaR / ES of the book's simple daily returns
  (:func:`~sovereign.engines.risk.portfolio_var_es`) and its annualised volatility;
- ``stability()``: :class:`~sovereign.engines.stability.StabilityEngine` at the last bar, alerts
  against the reading 5 bars earlier;
- ``crash_sentinel()``: :func:`~sovereign.engines.sentinel.sentinel_reading`;
- ``stress_test(symbols?)``: :func:`~sovereign.engines.fragility.build_profile` (300 bootstrap
  paths) evaluated on the book: worst loss, binding model and scenario, top 5 scenarios;
- ``drift(window, symbol?, reference)``: :func:`~sovereign.engines.drift.drift_report` of the
  daily return and 20-day volatility in the last ``window`` bars against the ``reference``
  bars before them;
- ``change_points(symbol?, lookback)``: :func:`~sovereign.engines.changepoint.detect_change_points`
  on standardised daily returns.

The book: with ``symbols``, equal weights over them; otherwise the ``weights`` the tools were
built with; otherwise equal weights over the symbols with a close at ``as_of``. ``symbol?``
absent means the equal-weight market (the mean of the available symbols' returns each bar).
Daily bars are assumed for annualising (252 bars a year).
"""

from __future__ import annotations

import copy
import dataclasses
import json
import math
from collections.abc import Callable, Mapping
from enum import Enum
from typing import Annotated, Any, ClassVar, Literal, Self, cast

import numpy as np
import numpy.typing as npt
import pandas as pd
from langchain_core.tools import BaseTool, StructuredTool
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from sovereign.engines.changepoint import detect_change_points
from sovereign.engines.drift import DriftConfig, drift_report
from sovereign.engines.fragility import FragilityConfig, FragilityProfile, build_profile
from sovereign.engines.indicators import rolling_volatility
from sovereign.engines.risk import MIN_OBSERVATIONS, portfolio_var_es
from sovereign.engines.sentinel import SentinelConfig, sentinel_reading
from sovereign.engines.stability import DEFAULT_CONFIG, StabilityEngine, StabilityReading
from sovereign.errors import ConfigError, DataError, EngineError
from sovereign.market.bars import BarPanel, Feature

__all__ = [
    "MAX_OUTPUT_CHARS",
    "STRESS_PATHS",
    "EngineReader",
    "engine_tools",
]

MAX_OUTPUT_CHARS = 6000
"""Longest JSON answer a tool returns; a longer one is replaced by an error (lists are bounded
well below this, so it is a backstop)."""
STRESS_PATHS = 300
"""Bootstrapped paths per scenario in ``stress_test`` (the engine's default is 2,000)."""
PERIODS_PER_YEAR = 252
MAX_SYMBOLS = 100  # symbols one request may name
MAX_LISTED = 10  # weights, excluded symbols ... listed in an answer
MAX_DATES = 40  # change-point dates listed (the most recent)
TOP_SCENARIOS = 5
VOL_WINDOW = 20  # bars of the drift tool's volatility feature
MIN_CHANGE_BARS = 30  # consecutive returns the change-point tool needs
MAX_ERROR_TEXT = 400
Method = Literal["historical", "parametric", "cornish_fisher"]
FloatArray = npt.NDArray[np.float64]


# ------------------------------------------------------------------------------------ arguments


class _Args(BaseModel):
    """Base of the argument models; ``universe`` is bound per tool set (:meth:`bound`)."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    universe: ClassVar[tuple[str, ...]] = ()

    @classmethod
    def bound(cls, universe: tuple[str, ...]) -> type[Self]:
        """A subclass (same name and schema) that accepts only symbols of ``universe``."""
        namespace = {"universe": universe, "__module__": cls.__module__, "__doc__": cls.__doc__}
        return cast(type[Self], type(cls.__name__, (cls,), namespace))

    @classmethod
    def _known(cls, symbol: str) -> str:
        if symbol not in cls.universe:
            listed = ", ".join(cls.universe[:30]) + (", ..." if len(cls.universe) > 30 else "")
            raise ValueError(f"unknown symbol {symbol!r}; valid symbols: {listed}")
        return symbol


class _BookArgs(_Args):
    symbols: Annotated[
        list[str] | None,
        Field(
            min_length=1,
            max_length=MAX_SYMBOLS,
            description="equal-weight book over these symbols (default: the current book)",
        ),
    ] = None

    @field_validator("symbols")
    @classmethod
    def _check_symbols(cls, value: list[str] | None) -> list[str] | None:
        if value is None:
            return None
        if len(set(value)) != len(value):
            raise ValueError("symbols must be distinct")
        return [cls._known(s) for s in value]


class _SymbolArgs(_Args):
    symbol: Annotated[
        str | None, Field(description="one symbol (default: the equal-weight market)")
    ] = None

    @field_validator("symbol")
    @classmethod
    def _check_symbol(cls, value: str | None) -> str | None:
        return None if value is None else cls._known(value)


class MarketRiskArgs(_BookArgs):
    alpha: Annotated[float, Field(ge=0.5, le=0.999, description="VaR/ES confidence")] = 0.99
    method: Annotated[Method, Field(description="how VaR and ES are estimated")] = "historical"
    window: Annotated[
        int,
        Field(ge=MIN_OBSERVATIONS, le=2520, description="trailing daily returns used"),
    ] = 252


class StressTestArgs(_BookArgs):
    pass


class DriftArgs(_SymbolArgs):
    window: Annotated[int, Field(ge=50, le=250, description="recent bars compared")] = 60
    reference: Annotated[
        int, Field(ge=100, le=1000, description="bars before the window, the baseline")
    ] = 250


class ChangePointArgs(_SymbolArgs):
    lookback: Annotated[int, Field(ge=50, le=2000, description="trailing daily returns")] = 500


class NoArgs(_Args):
    pass


# --------------------------------------------------------------------------------------- reader


class EngineReader:
    """The computations behind the tools, over the bars known at ``as_of``; JSON-ready dicts.

    ``panel``: the history; ``as_of``: index of the last bar the caller knows (default the
    panel's last); ``weights``: the current book, symbol -> fraction of equity (shorts
    negative, absent symbols 0); ``seed`` (>= 0): the stress test's bootstrap. Raises
    :class:`ConfigError` for an ``as_of`` outside the panel, a weight on an unknown symbol or a
    non-finite weight. The stability and sentinel readings and the stress profile are computed
    once, on first use.
    """

    def __init__(
        self,
        panel: BarPanel,
        *,
        as_of: int | None = None,
        weights: Mapping[str, float] | None = None,
        seed: int = 0,
    ) -> None:
        last = panel.n_bars - 1 if as_of is None else int(as_of)
        if not 0 <= last < panel.n_bars:
            raise ConfigError(f"as_of {as_of} is outside the panel's bars 0..{panel.n_bars - 1}")
        if seed < 0:
            raise ConfigError(f"seed must be >= 0, got {seed}")
        rows = slice(0, last + 1)
        self.symbols = panel.symbols
        self.timestamps = panel.timestamps[rows]
        self.close = _frozen(panel.close[rows])
        self.volume = _frozen(panel.volume[rows]) if panel.has(Feature.VOLUME) else None
        ohlc = panel.has(Feature.OHLC)
        self.high = _frozen(panel.high[rows]) if ohlc else None
        self.low = _frozen(panel.low[rows]) if ohlc else None
        with np.errstate(divide="ignore", invalid="ignore"):
            self.returns = _frozen(self.close[1:] / self.close[:-1] - 1.0)  # row i: bar i + 1
        self.weights = None if weights is None else _frozen(self._weight_vector(weights))
        self.seed = seed
        self._stability: dict[str, Any] | None = None
        self._sentinel: dict[str, Any] | None = None
        self._profile: FragilityProfile | None = None

    @property
    def as_of(self) -> str:
        return _when(self.timestamps[-1])

    # ----------------------------------------------------------------------------- the tools

    def market_risk(
        self,
        symbols: list[str] | None = None,
        alpha: float = 0.99,
        method: Method = "historical",
        window: int = 252,
    ) -> dict[str, Any]:
        """VaR, ES (positive loss fractions of a day) and annualised volatility of the book."""
        w, basis = self._book(symbols)
        held = np.flatnonzero(w)
        x = self.returns[-window:][:, held]
        keep = np.asarray(np.isfinite(x).all(axis=1), dtype=np.bool_)
        x, wh = x[keep], w[held]
        estimate = portfolio_var_es(wh, x, alpha, method)
        port = x @ wh
        vol = float(port.std(ddof=1)) * math.sqrt(PERIODS_PER_YEAR)
        dates = self.timestamps[1:][-window:][keep]
        return {
            "as_of": self.as_of,
            "alpha": alpha,
            "method": estimate.method.value,
            "requested_method": method,
            "fallback": estimate.fallback,
            "var": _r(estimate.var),
            "es": _r(estimate.es),
            "annual_volatility": _r(vol),
            "n_obs": estimate.n_obs,
            "dropped_rows": int((~keep).sum()),
            "start": _when(dates[0]),
            **self._describe_book(w, basis),
        }

    def stability(self) -> dict[str, Any]:
        """Stability score, level, components and alerts at the last bar."""
        if self._stability is None:
            self._stability = self._stability_reading()
        return copy.deepcopy(self._stability)

    def crash_sentinel(self) -> dict[str, Any]:
        """The crash sentinel's action, composite, components and reasons at the last bar."""
        if self._sentinel is None:
            self._sentinel = self._sentinel_reading()
        return copy.deepcopy(self._sentinel)

    def stress_test(self, symbols: list[str] | None = None) -> dict[str, Any]:
        """Stressed loss of the book under the scenario library and both risk models."""
        if self._profile is None:
            self._profile = build_profile(
                self.returns,
                pd.DatetimeIndex(self.timestamps[1:]),
                seed=self.seed,
                config=FragilityConfig(n_paths=STRESS_PATHS),
                symbols=self.symbols,
            )
        w, basis = self._book(symbols)
        report = self._profile.evaluate(w)
        worst: dict[str, tuple[float, str]] = {}
        for res in report.results:
            if res.loss is not None and res.loss > worst.get(res.scenario, (-math.inf, ""))[0]:
                worst[res.scenario] = (res.loss, res.model.value)
        kinds = {p.scenario.name: p.scenario for p in self._profile.prepared}
        ranked = sorted(worst.items(), key=lambda item: -item[1][0])[:TOP_SCENARIOS]
        return {
            "as_of": self.as_of,
            "worst_loss": _r(report.worst_loss),
            "binding_model": report.binding_model.value,
            "binding_scenario": report.binding_scenario,
            "top_scenarios": [
                {
                    "scenario": name,
                    "loss": _r(loss),
                    "model": model,
                    "kind": kinds[name].kind.value,
                    "direction": kinds[name].direction.value,
                }
                for name, (loss, model) in ranked
            ],
            "uncovered": list(report.uncovered),
            "n_scenarios": len(kinds),
            "n_paths": STRESS_PATHS,
            "fit_rows": self._profile.fit_rows,
            **self._describe_book(w, basis),
        }

    def drift(
        self, window: int = 60, symbol: str | None = None, reference: int = 250
    ) -> dict[str, Any]:
        """PSI and KS drift of the daily return and 20-day volatility, recent vs before."""
        series = self._series(symbol)
        vol = rolling_volatility(series, VOL_WINDOW)
        features = np.column_stack([series, vol])
        need = window + reference
        if features.shape[0] < need:
            raise EngineError(
                f"needs {need + 1} bars ({window} recent + {reference} reference returns), "
                f"has {features.shape[0] + 1}",
                source="tools.drift",
            )
        live, ref = features[-window:], features[-need:-window]
        report = drift_report(ref, live, ("daily_return", "volatility_20d"), config=DriftConfig())
        dates = self.timestamps[1:]
        return {
            "as_of": self.as_of,
            "subject": symbol or "market",
            "level": report.level.value,
            "drifted": list(report.drifted),
            "features": [
                {
                    "name": f.name,
                    "psi": _r(f.psi),
                    "psi_null": _r(f.psi_null),
                    "n_bins": f.n_bins,
                    "ks_statistic": _r(f.ks_statistic),
                    "ks_pvalue": _sig(f.ks_pvalue),
                    "ks_drift": f.ks_drift,
                    "level": f.level.value,
                }
                for f in report.features
            ],
            "live_start": _when(dates[-window]),
            "reference_start": _when(dates[-need]),
            "reference_end": _when(dates[-window - 1]),
            "n_live": report.n_live,
            "n_reference": report.n_reference,
            "dropped_live": report.dropped_live,
            "dropped_reference": report.dropped_reference,
        }

    def change_points(self, symbol: str | None = None, lookback: int = 500) -> dict[str, Any]:
        """Bayesian online change points of the standardised daily returns in the lookback."""
        x = self._series(symbol)[-lookback:]
        gaps = np.flatnonzero(~np.isfinite(x))
        if gaps.size:
            x = x[gaps[-1] + 1 :]  # the trailing run of returns without a gap
        if x.size < MIN_CHANGE_BARS:
            raise EngineError(
                f"needs {MIN_CHANGE_BARS} consecutive returns, has {x.size}",
                source="tools.change_points",
            )
        sd = float(x.std(ddof=1))
        if not sd > 1e-12:
            raise EngineError("returns are constant in the lookback", source="tools.change_points")
        result = detect_change_points((x - x.mean()) / sd)
        dates = self.timestamps[1:][-x.size :]
        hits = np.flatnonzero(result.p_change > 0.5)
        run = int(result.map_run_length[-1])
        return {
            "as_of": self.as_of,
            "subject": symbol or "market",
            "n_obs": int(x.size),
            "start": _when(dates[0]),
            "p_change": _r(float(result.p_change[-1])),
            "map_run_length": run,
            "segment_start": _when(dates[max(0, x.size - run)]),
            "change_dates": [_when(dates[i]) for i in hits[-MAX_DATES:]],
            "n_change_dates": int(hits.size),
            "change_dates_truncated": bool(hits.size > MAX_DATES),
        }

    # ------------------------------------------------------------------------------- helpers

    def _stability_reading(self) -> dict[str, Any]:
        engine = StabilityEngine(DEFAULT_CONFIG)
        span, lag = DEFAULT_CONFIG.live_window, DEFAULT_CONFIG.alert_lookback
        n = self.close.shape[0]
        reading: StabilityReading | None = None
        for t in range(max(0, n - 1 - lag), n):  # the last reading, and the 5 it alerts against
            rows = slice(max(0, t + 1 - span), t + 1)
            reading = engine.update(
                self.close[rows],
                None if self.volume is None else self.volume[rows],
                None if self.high is None else self.high[rows],
                None if self.low is None else self.low[rows],
            )
        if reading is None:  # pragma: no cover (n >= 1)
            raise EngineError("no bars", source="tools.stability")
        return {
            "as_of": self.as_of,
            "score": _r(reading.score),
            "level": reading.level.value,
            "components": {c.component.value: _fields(c) for c in reading.components},
            "alerts": [_fields(a) for a in reading.alerts],
        }

    def _sentinel_reading(self) -> dict[str, Any]:
        cfg = SentinelConfig()
        need = cfg.min_history
        r = self.returns[-need:]
        complete = np.asarray(np.isfinite(r).all(axis=0), dtype=np.bool_)
        excluded = [s for s, ok in zip(self.symbols, complete.tolist(), strict=True) if not ok]
        base: dict[str, Any] = {
            "as_of": self.as_of,
            "action": None,
            "composite": None,
            "components": None,
            "reasons": [],
            "exposure_scale": None,
            "n_symbols": int(complete.sum()),
            "excluded_symbols": _clip_list(excluded),
            "warming_up": None,
        }
        if r.shape[0] < need:
            base["warming_up"] = f"warming up: needs {need + 1} bars, has {r.shape[0] + 1}"
            return base
        if not complete.any():
            base["warming_up"] = (
                f"warming up: needs {need + 1} bars of one symbol without a gap, none has them"
            )
            return base
        reading = sentinel_reading(r[:, complete], cfg)
        return base | {
            "action": reading.action.value,
            "composite": _r(reading.composite),
            "components": _fields(reading.components),
            "reasons": list(reading.reasons),
            "exposure_scale": reading.exposure_scale,
        }

    def _weight_vector(self, weights: Mapping[str, float]) -> FloatArray:
        w = np.zeros(len(self.symbols))
        index = {s: i for i, s in enumerate(self.symbols)}
        for symbol, value in weights.items():
            if symbol not in index:
                raise ConfigError(f"weight on {symbol!r}, which is not in the panel")
            if not math.isfinite(value):
                raise ConfigError(f"weight of {symbol!r} is not finite: {value}")
            w[index[symbol]] = float(value)
        return w

    def _book(self, symbols: list[str] | None) -> tuple[FloatArray, str]:
        """(weights (n_symbols,), how they were chosen)."""
        w = np.zeros(len(self.symbols))
        if symbols:
            index = {s: i for i, s in enumerate(self.symbols)}
            w[[index[s] for s in symbols]] = 1.0 / len(symbols)
            return w, "equal_weight_symbols"
        if self.weights is not None:
            return self.weights.copy(), "weights"
        listed = np.isfinite(self.close[-1])
        if not listed.any():
            raise EngineError("no symbol has a close at as_of", source="tools.book")
        w[listed] = 1.0 / listed.sum()
        return w, "equal_weight_universe"

    def _describe_book(self, w: FloatArray, basis: str) -> dict[str, Any]:
        order = np.argsort(-np.abs(w), kind="stable")[:MAX_LISTED]
        return {
            "basis": basis,
            "n_assets": int(np.count_nonzero(w)),
            "gross": _r(float(np.abs(w).sum())),
            "net": _r(float(w.sum())),
            "top_weights": {self.symbols[i]: _r(float(w[i])) for i in order if w[i] != 0.0},
        }

    def _series(self, symbol: str | None) -> FloatArray:
        """(n_bars - 1,) daily returns of ``symbol``, or the mean of the available ones."""
        if symbol is not None:
            return self.returns[:, self.symbols.index(symbol)].copy()
        ok = np.isfinite(self.returns)
        count = ok.sum(axis=1)
        total = np.where(ok, self.returns, 0.0).sum(axis=1)
        out = np.full(count.shape, np.nan)
        np.divide(total, count, out=out, where=count > 0)
        return out


# ---------------------------------------------------------------------------------------- tools


def engine_tools(
    panel: BarPanel,
    *,
    as_of: int | None = None,
    weights: Mapping[str, float] | None = None,
    seed: int = 0,
) -> list[BaseTool]:
    """The read-only engine tools over ``panel``'s bars up to index ``as_of`` (default: all).

    ``weights``: the current book (symbol -> fraction of equity), used by ``market_risk`` and
    ``stress_test`` when the model names no symbols. ``seed``: the stress test's bootstrap.
    See :class:`EngineReader` for the errors raised on bad construction arguments.
    """
    reader = EngineReader(panel, as_of=as_of, weights=weights, seed=seed)
    universe = panel.symbols
    shown = ", ".join(universe[:30]) + (", ..." if len(universe) > 30 else "")
    fallback = (
        f"else equal weights over the universe ({shown})"
        if weights is None
        else f"else the current portfolio ({len(weights)} positions); universe: {shown}"
    )
    book = f"The book is equal weights over `symbols` if given, {fallback}."
    return [
        _tool(
            "market_risk",
            "Value at risk and expected shortfall of the book's daily return at confidence "
            "alpha (historical, parametric or cornish_fisher), as positive loss fractions of "
            "a day (0.03 = 3%), over the trailing window of daily returns, plus its annualised "
            f"volatility. {book}",
            MarketRiskArgs.bound(universe),
            lambda a: reader.market_risk(a.symbols, a.alpha, a.method, a.window),
        ),
        _tool(
            "stability",
            "Market stability now: score in [0, 1] (1 = stable), level stable / fragile / "
            "unstable, the liquidity, volatility (realised and GARCH forecast) and contagion "
            "(correlation, absorption ratio) components, and alerts on a fast drop.",
            NoArgs.bound(universe),
            lambda _: reader.stability(),
        ),
        _tool(
            "crash_sentinel",
            "The crash sentinel now: action none / halve / stand_down, the composite z-score, "
            "the z-scores of lag-1 autocorrelation, variance and turbulence, and the reasons "
            "(or how much history it still needs).",
            NoArgs.bound(universe),
            lambda _: reader.crash_sentinel(),
        ),
        _tool(
            "stress_test",
            "Stress test of the book: the worst loss (fraction of equity) over crisis windows "
            "(2000-02, 2008, 2011, 2015, 2018 Q4, 2020, rebounds) and synthetic shocks under "
            "two risk models (historical bootstrap, factor stress), the binding model and "
            f"scenario, and the top {TOP_SCENARIOS} scenario losses. {book}",
            StressTestArgs.bound(universe),
            lambda a: reader.stress_test(a.symbols),
        ),
        _tool(
            "drift",
            "Distribution drift (PSI and Kolmogorov-Smirnov) of the daily return and 20-day "
            "volatility over the last `window` bars against the `reference` bars before them, "
            "for one symbol or the equal-weight market: level none / moderate / significant.",
            DriftArgs.bound(universe),
            lambda a: reader.drift(a.window, a.symbol, a.reference),
        ),
        _tool(
            "change_points",
            "Bayesian online change-point detection on the standardised daily returns of one "
            "symbol or the equal-weight market over the lookback: the latest probability of a "
            "change in the last 10 bars, the most likely run length (bars since the last "
            "change) and the dates where that probability exceeded 0.5.",
            ChangePointArgs.bound(universe),
            lambda a: reader.change_points(a.symbol, a.lookback),
        ),
    ]


def _tool(
    name: str,
    description: str,
    args: type[_Args],
    run: Callable[[Any], dict[str, Any]],
) -> BaseTool:
    def call(**kwargs: Any) -> str:
        try:
            return _dumps(run(args.model_validate(kwargs)))
        except ValidationError as err:
            return _validation_error(err)
        except DataError as err:  # EngineError and bad market data: the model reads why
            return _dumps({"error": _clip(str(err))})

    return StructuredTool.from_function(
        func=call,
        name=name,
        description=description,
        args_schema=args,
        handle_validation_error=_validation_error,
    )


def _validation_error(err: ValidationError | Any) -> str:
    """``{"error": ...}`` naming each bad argument and why."""
    parts = []
    for e in err.errors():
        where = ".".join(str(p) for p in e.get("loc", ())) or "arguments"
        parts.append(f"{where}: {str(e.get('msg', '')).removeprefix('Value error, ')}")
    return _dumps({"error": _clip("invalid arguments: " + "; ".join(parts))})


# ------------------------------------------------------------------------------------ formatting


def _frozen(a: npt.ArrayLike) -> FloatArray:
    out = np.array(a, dtype=np.float64)  # a private copy: the caller's arrays are never kept
    out.flags.writeable = False
    return out


def _when(ts: Any) -> str:
    """A date for a bar at midnight UTC (daily bars), else the full ISO timestamp."""
    stamp = pd.Timestamp(ts)
    return stamp.date().isoformat() if stamp == stamp.normalize() else stamp.isoformat()


def _r(x: float | None, digits: int = 4) -> float | None:
    return None if x is None else round(float(x), digits)


def _sig(x: float) -> float:
    """Four significant digits (p-values span many orders of magnitude)."""
    return float(f"{x:.4g}")


def _fields(obj: Any) -> dict[str, Any]:
    """A reading dataclass as a dict: floats rounded, enums as values."""
    out: dict[str, Any] = {}
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        if isinstance(value, float):
            value = _r(value)
        elif isinstance(value, Enum):
            value = value.value
        out[f.name] = value
    return out


def _clip(text: str) -> str:
    return text if len(text) <= MAX_ERROR_TEXT else text[:MAX_ERROR_TEXT] + "…"


def _clip_list(items: list[str]) -> list[str]:
    return items if len(items) <= MAX_LISTED else [*items[:MAX_LISTED], f"... {len(items)} in all"]


def _dumps(value: Any) -> str:
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    if len(text) > MAX_OUTPUT_CHARS:
        return json.dumps({"error": f"answer too long ({len(text)} characters); narrow it"})
    return text
