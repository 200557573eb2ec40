"""Fragility / black-swan engine: stressed loss of a book under a scenario library and two
risk models, the worse of which is the answer, and the exposure scale that keeps it in budget.

**Scenario library** (:data:`DEFAULT_SCENARIOS`). Historical windows are S&P 500 closing peak to
closing trough (rebounds: trough to the next local high); a window holds the returns dated
strictly after its first day through its last day. Dates were checked against the bundled data:
arch's S&P 500 index closes (``load_sample("indices")``, 1999-2018) have the 2000-03-24,
2007-10-09, 2011-07-22 and 2018-10-03 highs, the 2002-10-09, 2009-03-09, 2011-10-03, 2016-02-11
and 2018-12-24 lows and the 2009-06-12 high; the skfolio sample's equal-weight index peaks on
2020-02-19 and bottoms on 2020-03-23, the S&P 500's own dates (S&P Dow Jones Indices), and its
next local high is 2020-06-08. The PBoC devalued the yuan on 2015-08-11 (window from the close
before); S&P downgraded the US on 2011-08-05. Synthetic shocks: a one-day equity gap of -20%
(about the 1987-10-19 fall, -20.5%), an up-gap of +12% (above the largest S&P 500 daily rise
since 1940, +11.6% on 2008-10-13), volatility x3 with correlations at 0.9, and a single-asset gap
of -40% / +40% (a blow-up; a takeover premium or short squeeze).

**Models** (:mod:`sovereign.engines.fragility_models`), per scenario kind:

============================  ===================================  ==============================
scenario                      historical bootstrap                 factor stress
============================  ===================================  ==============================
historical window             ES of block-bootstrapped H-day       worst H-day factor move of the
                              paths of the window's returns        window, through the betas, +
                                                                   stressed idiosyncratic risk
market gap (size g)           every asset moves g (asset space)    market factor moves g, through
                                                                   the betas, + 1-day stressed
                                                                   idiosyncratic risk
volatility x m, corr rho      ES of bootstrapped H-day paths of    normal ES over H days with the
                              the fit window rebuilt with vols x   factor model's vols x m and
                              m and correlation ~rho               correlations rho
single-asset gap (size g)     the asset that hurts most moves g    the same (an idiosyncratic
                                                                   event has no factor part)
============================  ===================================  ==============================

Assets with no return on a day of a window move with that day's equal-weight market return
(:func:`~sovereign.engines.fragility_models.fill_with_market`); the share filled is reported.
A historical window with fewer than ``min_window_rows`` returns before ``as_of`` is reported
``covered=False`` with no loss (never a silent zero). Only data strictly before ``as_of`` is used.

**Feeding the Supervisor.** Every loss is positively homogeneous in the weights
(``loss(c w) = c loss(w)``, ``c >= 0``), so :func:`exposure_multiplier` is
``min(1, budget / worst_loss)``. Per bar, build the :class:`FragilityProfile` once per refit
(:func:`build_profile`, ~0.2 s for 20 assets) and call :meth:`FragilityProfile.evaluate` on each
new weight vector: every (scenario, model) kernel is stacked
(:class:`~sovereign.engines.fragility_models.KernelStack`), so a bar costs one mat-vec over the
precomputed per-asset stressed moves, one batched partial sort and one small mat-vec for the risk
terms (~0.3 ms for 20 assets), no refitting. :func:`assess` does both at once.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum

import numpy as np
import numpy.typing as npt
import pandas as pd

from sovereign.engines.fragility_models import (
    FactorFit,
    KernelStack,
    ModelSettings,
    RiskModel,
    StressKernel,
    fill_with_market,
    fit_factors,
    historical_kernels,
    market_gap_kernels,
    returns_matrix,
    single_asset_kernels,
    volatility_kernels,
)
from sovereign.engines.guard import check_array, check_probability, check_scalar
from sovereign.errors import ConfigError, EngineError

__all__ = [
    "DEFAULT_SCENARIOS",
    "FragilityConfig",
    "FragilityProfile",
    "FragilityReport",
    "PreparedScenario",
    "RiskModel",
    "Scenario",
    "ScenarioKind",
    "ScenarioLoss",
    "ShockDirection",
    "SyntheticShock",
    "assess",
    "build_profile",
    "exposure_multiplier",
]

Array = npt.NDArray[np.float64]


class ScenarioKind(StrEnum):
    """Where a scenario comes from."""

    HISTORICAL = "historical"
    SYNTHETIC = "synthetic"


class ShockDirection(StrEnum):
    """What the scenario mainly stresses: falling prices, rising prices, or volatility."""

    DOWN = "down"
    UP = "up"
    VOLATILITY = "volatility"


class SyntheticShock(StrEnum):
    """The synthetic shock types."""

    MARKET_GAP = "market_gap"
    VOLATILITY_CORRELATION = "volatility_correlation"
    SINGLE_ASSET_GAP = "single_asset_gap"


def _utc(day: str) -> datetime:
    return datetime.fromisoformat(day).replace(tzinfo=UTC)


@dataclass(frozen=True, kw_only=True, slots=True)
class Scenario:
    """One stress scenario.

    Historical: ``start`` and ``end`` (UTC; the window holds returns dated after ``start``'s day
    through ``end``'s day). Synthetic: ``shock`` with ``size`` (a simple return, e.g. -0.20),
    or ``vol_multiplier`` and ``correlation``; ``horizon_days`` overrides the configured horizon
    (1 for an overnight gap). ``source`` says where the dates or sizes come from.
    """

    name: str
    kind: ScenarioKind
    direction: ShockDirection
    description: str
    source: str = ""
    start: datetime | None = None
    end: datetime | None = None
    shock: SyntheticShock | None = None
    size: float = 0.0
    vol_multiplier: float = 1.0
    correlation: float = 0.0
    horizon_days: int | None = None

    def __post_init__(self) -> None:
        if self.kind is ScenarioKind.HISTORICAL:
            if self.start is None or self.end is None or self.start.tzinfo is None:
                raise ConfigError(f"scenario {self.name}: a historical window needs UTC dates")
            if self.end <= self.start:
                raise ConfigError(f"scenario {self.name}: end must be after start")
        elif self.shock is None:
            raise ConfigError(f"scenario {self.name}: a synthetic scenario needs a shock")
        if not (self.size > -1.0 and self.vol_multiplier > 0 and 0 <= self.correlation < 1):
            raise ConfigError(f"scenario {self.name}: size > -1, vol_multiplier > 0, 0 <= rho < 1")
        if self.horizon_days is not None and self.horizon_days < 1:
            raise ConfigError(f"scenario {self.name}: horizon_days must be >= 1")


def _window(name: str, start: str, end: str, direction: ShockDirection, text: str) -> Scenario:
    return Scenario(
        name=name,
        kind=ScenarioKind.HISTORICAL,
        direction=direction,
        description=text,
        source="S&P 500 closes; checked on the bundled samples (see module docstring)",
        start=_utc(start),
        end=_utc(end),
    )


_D, _U, _V = ShockDirection.DOWN, ShockDirection.UP, ShockDirection.VOLATILITY
_GAP, _VOL, _ONE = (
    SyntheticShock.MARKET_GAP,
    SyntheticShock.VOLATILITY_CORRELATION,
    SyntheticShock.SINGLE_ASSET_GAP,
)
_SHOCKS = (  # name, shock, direction, size, vol x, rho, horizon days, description (source)
    ("equity_gap_down", _GAP, _D, -0.20, 1.0, 0.0, 1, "gap down (1987-10-19: -20.5%)"),
    ("equity_gap_up", _GAP, _U, 0.12, 1.0, 0.0, 1, "gap up (2008-10-13: +11.6%)"),
    ("vol3_corr09", _VOL, _V, 0.0, 3.0, 0.9, None, "vol x3, corr 0.9 (2008, 2020)"),
    ("single_asset_gap_down", _ONE, _D, -0.40, 1.0, 0.0, 1, "one holding -40% (a blow-up)"),
    ("single_asset_gap_up", _ONE, _U, 0.40, 1.0, 0.0, 1, "one holding +40% (takeover)"),
)

#: The default scenario library: six crises, two rebounds (up-shocks for short books), five
#: synthetic shocks.
DEFAULT_SCENARIOS: tuple[Scenario, ...] = (
    _window("dotcom_2000_2002", "2000-03-24", "2002-10-09", _D, "dot-com bust"),
    _window("gfc_2007_2009", "2007-10-09", "2009-03-09", _D, "global financial crisis"),
    _window("us_downgrade_2011", "2011-07-22", "2011-10-03", _D, "debt ceiling, US downgrade"),
    _window("china_devaluation_2015", "2015-08-10", "2016-02-11", _D, "yuan devaluation"),
    _window("q4_2018", "2018-10-03", "2018-12-24", _D, "rates and trade-war selloff"),
    _window("covid_2020", "2020-02-19", "2020-03-23", _D, "pandemic crash"),
    _window("gfc_rebound_2009", "2009-03-09", "2009-06-12", _U, "rally off the 2009 low"),
    _window("covid_rebound_2020", "2020-03-23", "2020-06-08", _U, "rally off the 2020 low"),
    *(
        Scenario(
            name=name,
            kind=ScenarioKind.SYNTHETIC,
            direction=direction,
            description=text,
            source="see module docstring",
            shock=shock,
            size=size,
            vol_multiplier=vol,
            correlation=rho,
            horizon_days=days,
        )
        for name, shock, direction, size, vol, rho, days, text in _SHOCKS
    ),
)


@dataclass(frozen=True, kw_only=True, slots=True)
class FragilityConfig:
    """Settings of the fragility engine (defaults in brackets).

    ``horizon_days`` [10] trading days of a stress path; ``block_days`` [5] bootstrap block;
    ``n_paths`` [2000] bootstrapped paths per scenario; ``confidence`` [0.99] of the expected
    shortfall; ``n_pca_factors`` [3] besides the market; ``fit_window_days`` [504] trailing rows
    the factor model (and the volatility scenario) is fitted on; ``min_fit_rows`` [60];
    ``min_window_rows`` [10] returns a historical window needs to be covered;
    ``idio_stress_multiple`` [2.0] on idiosyncratic volatility; ``proxy_threshold`` [0.5]: an
    asset observed on less than this share of the fit rows is a market proxy.
    """

    horizon_days: int = 10
    block_days: int = 5
    n_paths: int = 2000
    confidence: float = 0.99
    n_pca_factors: int = 3
    fit_window_days: int = 504
    min_fit_rows: int = 60
    min_window_rows: int = 10
    idio_stress_multiple: float = 2.0
    proxy_threshold: float = 0.5
    scenarios: tuple[Scenario, ...] = field(default=DEFAULT_SCENARIOS)

    def __post_init__(self) -> None:
        ints = (self.horizon_days, self.block_days, self.n_paths, self.min_window_rows)
        if min(ints) < 1 or self.n_pca_factors < 0 or self.min_fit_rows < 10:
            raise ConfigError("fragility: day counts and n_paths must be >= 1, min_fit_rows >= 10")
        if self.fit_window_days < self.min_fit_rows:
            raise ConfigError("fragility: fit_window_days must be >= min_fit_rows")
        if not (0.5 <= self.confidence < 1 and self.idio_stress_multiple >= 0):
            raise ConfigError("fragility: confidence in [0.5, 1), idio_stress_multiple >= 0")
        if not 0 <= self.proxy_threshold <= 1:
            raise ConfigError("fragility: proxy_threshold must be in [0, 1]")
        names = [s.name for s in self.scenarios]
        if not names or len(set(names)) != len(names):
            raise ConfigError("fragility: scenario names must be present and unique")


@dataclass(frozen=True, kw_only=True, slots=True)
class ScenarioLoss:
    """One scenario under one model. ``loss`` is a fraction of equity (negative: a gain), None
    when the scenario is not ``covered`` by the data; ``rows`` are the returns used (historical)
    and ``filled_fraction`` the share of asset-days filled with the market return."""

    scenario: str
    kind: ScenarioKind
    direction: ShockDirection
    model: RiskModel
    covered: bool
    loss: float | None
    rows: int
    filled_fraction: float
    note: str = ""


@dataclass(frozen=True, kw_only=True, slots=True)
class FragilityReport:
    """Every (scenario, model) loss and the answer: ``worst_loss`` >= 0, the largest covered loss
    (0 when the book gains in every scenario), and the model and scenario that set it."""

    symbols: tuple[str, ...]
    as_of: datetime | None
    results: tuple[ScenarioLoss, ...]
    worst_loss: float
    binding_model: RiskModel
    binding_scenario: str

    def scenario_loss(self, scenario: str) -> float | None:
        """The worse model's loss for ``scenario``; None if no model covered it."""
        losses = [r.loss for r in self.results if r.scenario == scenario and r.loss is not None]
        return max(losses) if losses else None

    def loss(self, scenario: str, model: RiskModel) -> float | None:
        """One model's loss for ``scenario`` (None when not covered)."""
        for r in self.results:
            if r.scenario == scenario and r.model is model:
                return r.loss
        raise KeyError((scenario, model))

    @property
    def uncovered(self) -> tuple[str, ...]:
        """Scenarios that at least one model could not evaluate on the data."""
        return tuple(dict.fromkeys(r.scenario for r in self.results if not r.covered))


@dataclass(frozen=True, kw_only=True, slots=True)
class PreparedScenario:
    """One scenario under one model, ready to evaluate (``kernel`` None when not covered)."""

    scenario: Scenario
    model: RiskModel
    kernel: StressKernel | None
    rows: int
    filled_fraction: float
    note: str = ""


@dataclass(frozen=True, kw_only=True, slots=True)
class FragilityProfile:
    """Everything :func:`build_profile` precomputed; :meth:`evaluate` scores a weight vector.

    ``fit_rows`` rows from ``fit_start`` to ``fit_end`` fitted the factor model; ``proxied``
    lists assets that were mostly market proxies there.
    """

    symbols: tuple[str, ...]
    as_of: datetime | None
    fit_rows: int
    fit_start: datetime
    fit_end: datetime
    proxied: tuple[str, ...]
    prepared: tuple[PreparedScenario, ...]
    stack: KernelStack = field(repr=False)

    def evaluate(self, weights: npt.ArrayLike) -> FragilityReport:
        """Stressed losses of ``weights``: ndarray (n_assets,), fractions of equity in the
        profile's symbol order (long > 0, short < 0)."""
        w = np.asarray(weights, dtype=np.float64)
        if w.shape != (len(self.symbols),) or not np.isfinite(w).all():
            raise EngineError(
                f"weights must be {len(self.symbols)} finite numbers, got shape {w.shape}",
                source="fragility.evaluate",
            )
        covered = [p for p in self.prepared if p.kernel is not None]
        if not covered:
            raise EngineError("no scenario is covered", source="fragility.evaluate")
        losses = check_array("fragility.losses", self.stack.losses(w))
        by_prepared = dict(zip((id(p) for p in covered), losses.tolist(), strict=True))
        at = int(np.argmax(losses))
        worst = float(losses[at])
        return FragilityReport(
            symbols=self.symbols,
            as_of=self.as_of,
            results=tuple(_result(p, by_prepared.get(id(p))) for p in self.prepared),
            worst_loss=check_scalar("fragility.worst_loss", worst if worst > 0 else 0.0, low=0),
            binding_model=covered[at].model,
            binding_scenario=covered[at].scenario.name,
        )


def _result(p: PreparedScenario, loss: float | None) -> ScenarioLoss:
    return ScenarioLoss(
        scenario=p.scenario.name,
        kind=p.scenario.kind,
        direction=p.scenario.direction,
        model=p.model,
        covered=p.kernel is not None,
        loss=loss,
        rows=p.rows,
        filled_fraction=p.filled_fraction,
        note=p.note,
    )


def exposure_multiplier(report: FragilityReport, loss_budget: float) -> float:
    """Scale in [0, 1] on gross exposure so the worst stressed loss stays within ``loss_budget``
    (a fraction of equity, e.g. the constitution's max_drawdown minus the current drawdown).

    Losses are linear in the book's scale, so this is ``min(1, budget / worst_loss)``; a budget
    <= 0 gives 0, a book that loses in no scenario gives 1.
    """
    budget = check_scalar("fragility.loss_budget", loss_budget)
    if budget <= 0.0:
        return 0.0
    if report.worst_loss <= 0.0:
        return 1.0
    return check_probability("fragility.exposure_multiplier", min(1.0, budget / report.worst_loss))


# --------------------------------------------------------------------------------- the profile


def build_profile(
    returns: pd.DataFrame | npt.ArrayLike,
    timestamps: pd.DatetimeIndex | None = None,
    *,
    seed: int,
    config: FragilityConfig | None = None,
    as_of: datetime | None = None,
    symbols: tuple[str, ...] | None = None,
) -> FragilityProfile:
    """Precompute every (scenario, model) kernel from returns strictly before ``as_of``.

    ``returns``: DataFrame (DatetimeIndex UTC, columns = symbols) or ndarray (n_rows, n_assets)
    of simple daily returns, NaN where an asset has none; ``timestamps`` (UTC DatetimeIndex,
    strictly increasing) is required with an ndarray. ``seed`` >= 0 drives the bootstrap (each
    scenario draws from ``default_rng([seed, crc32(name)])``, so adding a scenario changes no
    other). Raises EngineError on degenerate data: infinite values, returns below -100%, no
    asset with data, fewer than ``min_fit_rows`` fit rows, a constant market.
    """
    cfg = config or FragilityConfig()
    values, index, names = returns_matrix(returns, timestamps, symbols)
    if seed < 0:
        raise EngineError("seed must be >= 0", source="fragility.build_profile")
    if as_of is not None:
        if as_of.tzinfo is None:
            raise EngineError(
                "as_of must be timezone-aware (UTC)", source="fragility.build_profile"
            )
        before = np.asarray(index < pd.Timestamp(as_of), dtype=bool)
        values, index = values[before], index[before]
    fit, fit_index, proxied = _fit(values, index, names, cfg)
    prepared: list[PreparedScenario] = []
    for scenario in cfg.scenarios:
        rng = np.random.default_rng([seed, zlib.crc32(scenario.name.encode())])
        settings = ModelSettings(
            horizon=scenario.horizon_days or cfg.horizon_days,
            block=cfg.block_days,
            n_paths=cfg.n_paths,
            confidence=cfg.confidence,
            idio_multiple=cfg.idio_stress_multiple,
        )
        if scenario.kind is ScenarioKind.HISTORICAL:
            min_rows = cfg.min_window_rows
            prepared += _historical(scenario, values, index, fit, settings, min_rows, rng)
        else:
            prepared += _synthetic(scenario, fit, settings, rng)
    return FragilityProfile(
        symbols=names,
        as_of=as_of,
        fit_rows=int(fit.returns.shape[0]),
        fit_start=fit_index[0].to_pydatetime(),
        fit_end=fit_index[-1].to_pydatetime(),
        proxied=proxied,
        prepared=tuple(prepared),
        stack=KernelStack.of([p.kernel for p in prepared if p.kernel is not None], len(names)),
    )


def assess(
    weights: npt.ArrayLike,
    returns: pd.DataFrame | npt.ArrayLike,
    timestamps: pd.DatetimeIndex | None = None,
    *,
    seed: int,
    config: FragilityConfig | None = None,
    as_of: datetime | None = None,
) -> FragilityReport:
    """Stressed losses of ``weights`` (ndarray (n_assets,), fractions of equity) under every
    scenario and model: :func:`build_profile` then :meth:`FragilityProfile.evaluate`."""
    profile = build_profile(returns, timestamps, seed=seed, config=config, as_of=as_of)
    return profile.evaluate(weights)


def _fit(
    values: Array, index: pd.DatetimeIndex, names: tuple[str, ...], cfg: FragilityConfig
) -> tuple[FactorFit, pd.DatetimeIndex, tuple[str, ...]]:
    tail = values[-cfg.fit_window_days :]
    filled, kept, _ = fill_with_market(tail)
    if filled.shape[0] < cfg.min_fit_rows:
        raise EngineError(
            f"{filled.shape[0]} rows with data before as_of, need {cfg.min_fit_rows}",
            source="fragility.fit",
        )
    observed = np.isfinite(tail[kept]).mean(axis=0)
    proxied = observed < cfg.proxy_threshold
    fit = fit_factors(filled, n_pca=cfg.n_pca_factors, proxied=proxied)
    fit_index = index[-cfg.fit_window_days :][kept]
    return fit, fit_index, tuple(n for n, p in zip(names, proxied, strict=True) if p)


def _historical(
    scenario: Scenario,
    values: Array,
    index: pd.DatetimeIndex,
    fit: FactorFit,
    settings: ModelSettings,
    min_rows: int,
    rng: np.random.Generator,
) -> list[PreparedScenario]:
    if scenario.start is None or scenario.end is None:  # pragma: no cover (validated)
        raise ConfigError(f"scenario {scenario.name}: no dates")
    start = pd.Timestamp(scenario.start).normalize() + pd.Timedelta(days=1)
    end = pd.Timestamp(scenario.end).normalize() + pd.Timedelta(days=1)
    inside = np.asarray((index >= start) & (index < end), dtype=bool)
    window, _, filled = fill_with_market(values[inside])
    rows = int(window.shape[0])
    if rows < min_rows:
        note = f"{rows} returns in the window before as_of, need {min_rows}"
        return _prepared(scenario, (None, None), rows=rows, filled=filled, note=note)
    kernels = historical_kernels(window, fit, settings, rng)
    return _prepared(scenario, kernels, rows=rows, filled=filled)


def _synthetic(
    scenario: Scenario, fit: FactorFit, settings: ModelSettings, rng: np.random.Generator
) -> list[PreparedScenario]:
    if scenario.shock is SyntheticShock.MARKET_GAP:
        kernels = market_gap_kernels(fit, scenario.size, settings)
    elif scenario.shock is SyntheticShock.SINGLE_ASSET_GAP:
        kernels = single_asset_kernels(fit.betas.shape[0], scenario.size)
    else:
        mult, rho = scenario.vol_multiplier, scenario.correlation
        kernels = volatility_kernels(fit, settings, rng, vol_multiplier=mult, rho=rho)
        return _prepared(scenario, kernels, rows=fit.returns.shape[0], filled=0.0)
    return _prepared(scenario, kernels, rows=0, filled=0.0)


def _prepared(
    scenario: Scenario,
    kernels: tuple[StressKernel | None, StressKernel | None],
    *,
    rows: int,
    filled: float,
    note: str = "",
) -> list[PreparedScenario]:
    models = (RiskModel.HISTORICAL_BOOTSTRAP, RiskModel.FACTOR_STRESS)
    return [
        PreparedScenario(
            scenario=scenario, model=m, kernel=k, rows=rows, filled_fraction=filled, note=note
        )
        for m, k in zip(models, kernels, strict=True)
    ]
