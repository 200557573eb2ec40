from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sovereign.engines.universe import (
    ExclusionReason,
    UniverseConfig,
    UniverseSelection,
    select_universe,
)
from sovereign.errors import EngineError
from sovereign.market.sources import load_sample

SYMBOLS = ("OK", "BIG", "PENNY", "THIN", "STALE", "GONE")


def _market() -> tuple[np.ndarray, np.ndarray]:
    """30 bars of 6 symbols: OK and BIG pass; PENNY trades at 2; THIN trades 1,000 shares of a
    $50 stock ($50k a bar); STALE has not moved for the last 6 bars; GONE has no last close."""
    n = 30
    drift = np.linspace(0.0, 1.0, n)
    close = np.column_stack(
        [
            20 + drift,
            100 + drift,
            2 + 0.1 * drift,
            50 + drift,
            np.r_[40 + drift[:-6], [41.0] * 6],
            np.r_[30 + drift[:-1], math.nan],
        ]
    )
    volume = np.column_stack(
        [
            np.full(n, 1e6),
            np.full(n, 5e6),
            np.full(n, 3e7),
            np.full(n, 1e3),
            np.full(n, 1e6),
            np.full(n, 1e6),
        ]
    )
    return close, volume


def test_filters_name_every_reason() -> None:
    close, volume = _market()
    out = select_universe(close, volume, symbols=SYMBOLS)
    assert out.eligible == ("BIG", "OK")  # BIG has the larger dollar volume
    assert out.liquidity_checked and out.notes == ()
    assert out.reasons("PENNY") == (ExclusionReason.LOW_PRICE,)
    assert out.reasons("THIN") == (ExclusionReason.ILLIQUID,)
    assert out.reasons("STALE") == (ExclusionReason.STALE,)
    assert out.reasons("GONE") == (ExclusionReason.NO_PRICE,)
    assert out.reasons("OK") == ()
    thin = next(e for e in out.excluded if e.symbol == "THIN")
    assert "median dollar volume" in thin.detail
    assert out.dollar_volume["OK"] == pytest.approx(np.median(close[-20:, 0] * 1e6))
    assert out.scores == {"BIG": 1.0, "OK": 0.0}  # liquidity rank only


def test_every_failed_filter_is_collected() -> None:
    close, volume = _market()
    volume[:, 2] = 10.0  # PENNY is now also illiquid
    out = select_universe(close, volume, symbols=SYMBOLS)
    assert out.reasons("PENNY") == (ExclusionReason.LOW_PRICE, ExclusionReason.ILLIQUID)


def test_closes_only_skips_the_liquidity_filter_and_says_so() -> None:
    close, volume = _market()
    for vol in (None, np.full_like(volume, math.nan)):
        out = select_universe(close, vol, symbols=SYMBOLS)
        assert not out.liquidity_checked
        assert out.notes == ("volume unavailable (closes-only data): liquidity filter skipped",)
        assert out.eligible == ("BIG", "OK", "THIN")  # ties broken by name
        assert out.dollar_volume == {}
        assert set(out.scores.values()) == {0.5}


def test_a_symbol_missing_its_volume_is_excluded_when_others_have_it() -> None:
    close, volume = _market()
    volume[-15:, 0] = math.nan
    out = select_universe(close, volume, symbols=SYMBOLS)
    assert out.reasons("OK") == (ExclusionReason.NO_VOLUME,)


def test_stability_and_fragility_penalties_rank_and_cut() -> None:
    close, volume = _market()
    stability = np.array([0.9, 0.2, 1.0, 1.0, 1.0, 1.0])
    loss = np.array([0.10, 0.30, 0.0, 0.0, 0.0, 0.0])
    cfg = UniverseConfig(max_size=1, min_price=1.0, min_dollar_volume=0.0, stale_bars=0)
    out = select_universe(
        close, volume, symbols=SYMBOLS, stability=stability, fragility=loss, config=cfg
    )
    # survivors: OK, BIG, PENNY, THIN, STALE; dollar volume ranks (0..1) among those five
    dv = {s: out.dollar_volume[s] for s in ("OK", "BIG", "PENNY", "THIN", "STALE")}
    order = sorted(dv, key=dv.__getitem__)
    rank = {s: i / 4 for i, s in enumerate(order)}
    expected_ok = rank["OK"] - 0.5 * (1 - 0.9) - 1.0 * 0.10
    expected_big = rank["BIG"] - 0.5 * (1 - 0.2) - 1.0 * 0.30
    assert out.scores["OK"] == pytest.approx(expected_ok)
    assert out.scores["BIG"] == pytest.approx(expected_big)
    assert out.scores["BIG"] < rank["BIG"]  # penalised
    assert len(out.eligible) == 1
    assert out.eligible[0] == max(out.scores, key=out.scores.__getitem__)
    assert out.reasons("BIG") == (ExclusionReason.RANKED_OUT,)


def test_missing_risk_estimate_and_fragility_cap_exclude() -> None:
    close, volume = _market()
    stability = np.array([math.nan, 0.8, 0.8, 0.8, 0.8, 0.8])
    loss = np.array([0.1, 0.6, 0.1, 0.1, 0.1, 0.1])
    cfg = UniverseConfig(max_stressed_loss=0.5)
    out = select_universe(
        close, volume, symbols=SYMBOLS, stability=stability, fragility=loss, config=cfg
    )
    assert out.eligible == ()
    assert out.reasons("OK") == (ExclusionReason.NO_RISK_ESTIMATE,)
    assert out.reasons("BIG") == (ExclusionReason.FRAGILE,)


@pytest.mark.parametrize(
    ("change", "match"),
    [
        (lambda c, v: (c, v[:, :2]), "shape"),
        (lambda c, v: (np.where(c == c[0, 0], math.inf, c), v), "infinite"),
        (lambda c, v: (c, -v), "negative"),
        (lambda c, v: (c[:0], v[:0]), "n_bars >= 1"),
        (lambda c, v: (c[:, 0], v), "expected closes"),
    ],
)
def test_malformed_input_is_an_engine_error(change, match: str) -> None:
    close, volume = _market()
    c, v = change(close, volume)
    with pytest.raises(EngineError, match=match):
        select_universe(c, v, symbols=SYMBOLS)


def test_malformed_scores_and_symbols_are_engine_errors() -> None:
    close, volume = _market()
    with pytest.raises(EngineError, match="outside"):
        select_universe(close, volume, symbols=SYMBOLS, stability=np.full(6, 1.5))
    with pytest.raises(EngineError, match="shape"):
        select_universe(close, volume, symbols=SYMBOLS, fragility=np.zeros(5))
    with pytest.raises(EngineError, match="unique"):
        select_universe(close, volume, symbols=("A",) * 6)
    with pytest.raises(EngineError, match="invalid configuration"):
        UniverseConfig(max_size=0)


def test_bundled_data() -> None:
    indices = load_sample("indices")
    out = select_universe(indices.close, indices.volume, symbols=indices.symbols)
    assert out.eligible == ("IXIC", "SPX") and out.liquidity_checked
    sp500 = load_sample("sp500")
    out = select_universe(
        sp500.close, sp500.volume, symbols=sp500.symbols, config=UniverseConfig(max_size=10)
    )
    assert len(out.eligible) == 10 and not out.liquidity_checked
    assert sum(ExclusionReason.RANKED_OUT in e.reasons for e in out.excluded) == 10


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    n_assets=st.integers(1, 12),
    max_size=st.integers(1, 12),
    with_volume=st.booleans(),
    with_risk=st.booleans(),
)
def test_selection_partitions_the_symbols(
    seed: int, n_assets: int, max_size: int, with_volume: bool, with_risk: bool
) -> None:
    rng = np.random.default_rng(seed)
    close = np.exp(np.cumsum(rng.normal(0, 0.02, (40, n_assets)), axis=0)) * rng.uniform(
        1, 50, n_assets
    )
    close[rng.random(close.shape) < 0.05] = math.nan
    volume = rng.lognormal(11, 2, close.shape) if with_volume else None
    stability = rng.uniform(0, 1, n_assets) if with_risk else None
    loss = rng.uniform(0, 0.8, n_assets) if with_risk else None
    symbols = tuple(f"S{i:02d}" for i in range(n_assets))
    out: UniverseSelection = select_universe(
        close,
        volume,
        symbols=symbols,
        stability=stability,
        fragility=loss,
        config=UniverseConfig(max_size=max_size),
    )
    excluded = {e.symbol for e in out.excluded}
    assert len(out.eligible) <= max_size
    assert set(out.eligible).isdisjoint(excluded)
    assert set(out.eligible) | excluded == set(symbols)
    assert all(e.reasons for e in out.excluded)
    ranked = [out.scores[s] for s in out.eligible]
    assert ranked == sorted(ranked, reverse=True)
    assert all(math.isfinite(s) for s in out.scores.values())
    for s in out.eligible:
        assert not math.isnan(close[-1, symbols.index(s)])
