"""BOCPD: an independent brute-force reference, planted mean and variance shifts, the false
alarm rate on stationary noise, truncation, degenerate inputs."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats
from scipy.special import logsumexp

from sovereign.engines.changepoint import ChangePointConfig, detect_change_points
from sovereign.errors import EngineError


def reference_bocpd(x: np.ndarray, cfg: ChangePointConfig) -> tuple[np.ndarray, np.ndarray, float]:
    """Untruncated BOCPD with recursive NIG updates and scipy's Student-t (plain loops).

    Returns the run-length posterior as a list of arrays (index r - 1), the per-bar p_change
    and the log evidence, for comparison with the vectorised, cumulative-sum implementation.
    """
    h = 1.0 / cfg.hazard_lambda
    # parameters of the run of length r (r observations so far), r = 1..t
    mu = np.array([(cfg.kappa0 * cfg.mu0 + x[0]) / (cfg.kappa0 + 1)])
    kappa = np.array([cfg.kappa0 + 1.0])
    alpha = np.array([cfg.alpha0 + 0.5])
    beta = np.array([cfg.beta0 + cfg.kappa0 * (x[0] - cfg.mu0) ** 2 / (2 * (cfg.kappa0 + 1))])
    log_post = np.array([0.0])
    evidence = stats.t.logpdf(
        x[0],
        2 * cfg.alpha0,
        cfg.mu0,
        np.sqrt(cfg.beta0 * (cfg.kappa0 + 1) / (cfg.alpha0 * cfg.kappa0)),
    )
    p_change = [0.0]
    for t in range(1, x.size):
        pred = stats.t.logpdf(x[t], 2 * alpha, mu, np.sqrt(beta * (kappa + 1) / (alpha * kappa)))
        prior = stats.t.logpdf(
            x[t],
            2 * cfg.alpha0,
            cfg.mu0,
            np.sqrt(cfg.beta0 * (cfg.kappa0 + 1) / (cfg.alpha0 * cfg.kappa0)),
        )
        joint = np.concatenate([[np.log(h) + prior], log_post + pred + np.log1p(-h)])
        norm = logsumexp(joint)
        evidence += norm
        log_post = joint - norm
        # update every run with x_t; the new run (r = 1) starts from the prior
        mu0 = np.concatenate([[cfg.mu0], mu])
        k0 = np.concatenate([[cfg.kappa0], kappa])
        a0 = np.concatenate([[cfg.alpha0], alpha])
        b0 = np.concatenate([[cfg.beta0], beta])
        beta = b0 + k0 * (x[t] - mu0) ** 2 / (2 * (k0 + 1))
        mu = (k0 * mu0 + x[t]) / (k0 + 1)
        kappa = k0 + 1
        alpha = a0 + 0.5
        p_change.append(float(np.exp(log_post[: min(cfg.short_run, t)]).sum()))
    return log_post, np.array(p_change), float(evidence)


def shifted(seed: int, kind: str, n: int = 600, at: int = 300) -> np.ndarray:
    x = np.random.default_rng(seed).normal(0.0, 1.0, n)
    if kind == "mean":
        x[at:] += 2.5
    else:
        x[at:] *= 4.0
    return x


# ------------------------------------------------------------------------------------ reference


def test_matches_untruncated_reference() -> None:
    x = np.concatenate(
        [np.random.default_rng(42).normal(0, 1, 60), np.random.default_rng(43).normal(1.5, 2, 60)]
    )
    cfg = ChangePointConfig(
        hazard_lambda=50.0,
        mu0=0.2,
        kappa0=0.5,
        alpha0=2.0,
        beta0=1.5,
        max_run_length=200,
        short_run=4,
    )
    log_post, p_ref, ev_ref = reference_bocpd(x, cfg)
    out = detect_change_points(x, cfg)
    np.testing.assert_allclose(out.p_change, p_ref, atol=1e-10)
    assert out.log_evidence == pytest.approx(ev_ref, rel=1e-10)
    assert out.map_run_length[-1] == int(np.argmax(log_post)) + 1


def test_truncation_barely_changes_a_long_stationary_run() -> None:
    x = np.random.default_rng(7).normal(0, 1, 400)
    full = detect_change_points(x, ChangePointConfig(max_run_length=500))
    cut = detect_change_points(x, ChangePointConfig(max_run_length=100))
    # the "100 or more" bin predicts from the last 100 bars only: a little less sure of the
    # long run, so an outlier's blip is a bit higher or lower, but nothing else moves
    np.testing.assert_allclose(cut.p_change, full.p_change, atol=0.1)
    assert np.mean(np.abs(cut.p_change - full.p_change)) < 0.005
    np.testing.assert_array_equal(cut.p_change[:100], full.p_change[:100])
    assert cut.map_run_length.max() == 100  # the "100 or more" bin


# ------------------------------------------------------------------------------------ detection


@pytest.mark.parametrize("kind", ["mean", "variance"])
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_detects_planted_shift_within_a_few_bars(kind: str, seed: int) -> None:
    out = detect_change_points(shifted(seed, kind))
    fired = np.flatnonzero(out.p_change[300:320] > 0.5)
    assert fired.size > 0, f"{kind} shift not detected"
    assert fired[0] <= 10
    # after the evidence is in, the MAP run length points back at the change
    assert abs(int(out.map_run_length[330]) - 31) <= 6
    assert out.p_change[:290].max() < 0.9


def test_false_alarm_rate_on_stationary_noise() -> None:
    for seed in range(2):
        x = np.random.default_rng(100 + seed).normal(0.0, 1.0, 2500)
        out = detect_change_points(x)
        assert (out.p_change > 0.5).mean() < 0.01
        assert np.median(out.p_change) < 0.05
        assert out.map_run_length[-1] > 250  # the run keeps growing


def test_deterministic_and_p_change_starts_at_zero() -> None:
    x = shifted(9, "mean")
    a, b = detect_change_points(x), detect_change_points(x)
    np.testing.assert_array_equal(a.p_change, b.p_change)
    np.testing.assert_array_equal(a.map_run_length, b.map_run_length)
    assert a.p_change[0] == 0.0  # the start of the data is not a change point
    assert ((a.p_change >= 0) & (a.p_change <= 1)).all()


# ---------------------------------------------------------------------------------- degenerate


def test_constant_series_is_finite_and_quiet() -> None:
    out = detect_change_points(np.full(300, 0.5))
    assert np.isfinite(out.p_change).all()
    assert out.p_change[50:].max() < 0.05
    assert np.isfinite(out.log_evidence)


def test_degenerate_inputs_raise() -> None:
    with pytest.raises(EngineError, match="non-empty"):
        detect_change_points(np.array([]))
    with pytest.raises(EngineError, match="non-empty"):
        detect_change_points(np.zeros((10, 2)))
    x = np.zeros(20)
    x[4] = np.nan
    with pytest.raises(EngineError, match="NaN"):
        detect_change_points(x)
    with pytest.raises(EngineError, match="beta0"):
        ChangePointConfig(beta0=0.0)
    with pytest.raises(EngineError, match="short_run"):
        ChangePointConfig(short_run=0)
