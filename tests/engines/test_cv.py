"""Purged walk-forward splitter: no leakage (hypothesis), golden splits, sklearn compatibility."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import TimeSeriesSplit, check_cv, cross_val_score

from sovereign.engines.cv import PurgedWalkForward, Window, sample_times
from sovereign.errors import EngineError


@st.composite
def splitter_and_times(draw: st.DrawFn) -> tuple[PurgedWalkForward, np.ndarray]:
    n_splits = draw(st.integers(2, 6))
    n = draw(st.integers(n_splits + 1, 250))
    steps = draw(st.lists(st.integers(0, 3), min_size=n - 1, max_size=n - 1))
    times = np.concatenate([[draw(st.integers(0, 50))], np.cumsum(steps, dtype=np.int64)])
    times[1:] += times[0]
    rolling = draw(st.booleans())
    splitter = PurgedWalkForward(
        n_splits=n_splits,
        horizon=draw(st.integers(0, 20)),
        embargo=draw(st.integers(0, 10)),
        window=Window.ROLLING if rolling else Window.EXPANDING,
        max_train_size=draw(st.integers(1, 120)) if rolling else None,
    )
    return splitter, times


def _leaky_candidates(times: np.ndarray, start: int, gap: int) -> np.ndarray:
    """Brute force: every sample before ``start`` whose label + embargo ends before the test."""
    return np.array([i for i in range(start) if times[i] + gap < times[start]], dtype=np.intp)


@settings(max_examples=120, deadline=None)
@given(splitter_and_times())
def test_no_train_label_reaches_the_test_fold(case: tuple[PurgedWalkForward, np.ndarray]) -> None:
    splitter, times = case
    n = times.size
    X = np.zeros((n, 1))
    gap = splitter.horizon + splitter.embargo
    test_size = n // (splitter.n_splits + 1)
    first = n - splitter.n_splits * test_size
    try:
        splits = list(splitter.split(X, groups=times))
    except EngineError:
        # only when some split really has no admissible training sample
        starts = [first + k * test_size for k in range(splitter.n_splits)]
        assert any(_leaky_candidates(times, s, gap).size == 0 for s in starts)
        return
    assert len(splits) == splitter.get_n_splits(X, None, times) == splitter.n_splits
    for k, (train, test) in enumerate(splits):
        start = first + k * test_size
        np.testing.assert_array_equal(test, np.arange(start, start + test_size))
        assert train.size >= 1
        # every training label span [t_i, t_i + horizon], plus the embargo, ends before the test
        assert np.all(times[train] + splitter.horizon + splitter.embargo < times[test].min())
        assert np.all(train < test.min())  # walk-forward: train strictly before the test fold
        admissible = _leaky_candidates(times, start, gap)
        if splitter.window is Window.EXPANDING:
            np.testing.assert_array_equal(train, admissible)  # nothing purged needlessly
        else:
            assert splitter.max_train_size is not None
            np.testing.assert_array_equal(train, admissible[-splitter.max_train_size :])


@settings(max_examples=60, deadline=None)
@given(
    n_splits=st.integers(2, 6),
    n=st.integers(30, 200),
    horizon=st.integers(0, 4),
    embargo=st.integers(0, 3),
    max_train=st.one_of(st.none(), st.integers(1, 50)),
)
def test_equals_sklearn_time_series_split_with_a_gap_on_one_sample_per_bar(
    n_splits: int, n: int, horizon: int, embargo: int, max_train: int | None
) -> None:
    # With t_i = i, purging horizon + embargo bars is TimeSeriesSplit's ``gap``.
    ours = PurgedWalkForward(
        n_splits=n_splits,
        horizon=horizon,
        embargo=embargo,
        window=Window.EXPANDING if max_train is None else Window.ROLLING,
        max_train_size=max_train,
    )
    ref = TimeSeriesSplit(n_splits=n_splits, gap=horizon + embargo, max_train_size=max_train)
    X = np.zeros((n, 2))
    first_test = n - n_splits * (n // (n_splits + 1))
    if first_test <= horizon + embargo:  # the first fold has nothing to train on
        with pytest.raises(EngineError, match="no training sample survives"):
            list(ours.split(X))
        with pytest.raises(ValueError, match="Too many splits"):
            list(ref.split(X))
        return
    for (a_train, a_test), (b_train, b_test) in zip(ours.split(X), ref.split(X), strict=True):
        np.testing.assert_array_equal(a_train, b_train)
        np.testing.assert_array_equal(a_test, b_test)


def test_golden_split_with_duplicate_times() -> None:
    # two signals per bar at bars 0..9: samples 2b and 2b + 1 are observed at bar b
    times = np.repeat(np.arange(10), 2)
    X = np.zeros((20, 1))
    splitter = PurgedWalkForward(n_splits=3, horizon=1, embargo=0)
    splits = list(splitter.split(X, groups=times))
    assert [test.tolist() for _, test in splits] == [
        list(range(5, 10)),
        list(range(10, 15)),
        list(range(15, 20)),
    ]
    # tests start at bars 2, 5, 7; a training label [t, t + 1] must end before: t < 1, 4, 6
    assert [train.tolist() for train, _ in splits] == [[0, 1], list(range(8)), list(range(12))]
    # horizon 2 + embargo 1 before bar 2 leaves nothing to train the first fold on
    with pytest.raises(EngineError, match="split 0: no training sample survives"):
        list(PurgedWalkForward(n_splits=3, horizon=2, embargo=1).split(X, None, times))


def test_rolling_keeps_the_latest_samples() -> None:
    splitter = PurgedWalkForward(n_splits=2, horizon=1, window=Window.ROLLING, max_train_size=3)
    trains = [train.tolist() for train, _ in splitter.split(np.zeros((12, 1)))]
    # tests start at samples 4 and 8; purge keeps i + 1 < start
    assert trains == [[0, 1, 2], [4, 5, 6]]


def test_is_a_scikit_learn_splitter() -> None:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(120, 2))
    y = (X[:, 0] + rng.normal(size=120) > 0).astype(int)
    splitter = PurgedWalkForward(n_splits=4, horizon=3, embargo=2)
    assert check_cv(splitter) is splitter
    scores = cross_val_score(LogisticRegression(), X, y, cv=splitter, groups=np.arange(120))
    assert scores.shape == (4,)
    assert np.all((scores >= 0) & (scores <= 1))


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"n_splits": 1}, "n_splits must be >= 2"),
        ({"horizon": -1}, "must be >= 0"),
        ({"embargo": -2}, "must be >= 0"),
        ({"window": Window.ROLLING}, "max_train_size"),
        ({"window": Window.ROLLING, "max_train_size": 0}, "max_train_size"),
    ],
)
def test_bad_configuration_is_refused(kwargs: dict[str, object], match: str) -> None:
    with pytest.raises(EngineError, match=match):
        PurgedWalkForward(**kwargs)  # type: ignore[arg-type]


def test_too_few_samples_for_the_folds() -> None:
    with pytest.raises(EngineError, match="cannot make 5 walk-forward test folds"):
        list(PurgedWalkForward(n_splits=5).split(np.zeros((5, 1))))


@pytest.mark.parametrize(
    ("times", "match"),
    [
        (np.array([0, 1, 3, 2, 4, 5]), "decreases at sample 3"),
        (np.array([0.0, 1.5, 2, 3, 4, 5]), "integer"),
        (np.array([0.0, np.nan, 2, 3, 4, 5]), "finite"),
        (np.arange(5), r"expected \(6,\)"),
        (np.array(["a"] * 6), "dtype"),
    ],
)
def test_bad_sample_times(times: np.ndarray, match: str) -> None:
    with pytest.raises(EngineError, match=match):
        sample_times(times, 6)


def test_default_times_are_positions() -> None:
    np.testing.assert_array_equal(sample_times(None, 4), [0, 1, 2, 3])
    assert sample_times(np.array([1.0, 1.0, 2.0]), 3).dtype == np.int64
