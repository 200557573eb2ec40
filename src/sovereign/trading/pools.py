"""Capital between strategy pools: the LinUCB meta-allocator and edge freshness, once a period.

The Trader calls :meth:`PoolAllocator.observe` once per bar with every strategy pool's equity and
the market context (:func:`~sovereign.engines.allocation.context_vector`, ndarray (6,)). Nothing
happens between rebalances (the answer is None). When ``rebalance_every`` bars have passed since
the last rebalance (counted in bar indices, so a skipped bar does not shift the schedule):

1. each pool's period return is ``r_s = E_s(now) / E_s(last rebalance) − 1`` (a fraction);
2. each pool that had capital during the period (not killed at the last rebalance) updates its
   bandit arm with ``(context at the last rebalance, r_s)`` — the context under which that
   period's capital was decided — and appends ``r_s`` to its return history;
3. each live strategy's :func:`~sovereign.engines.allocation.freshness` is scored from that
   history: ACTIVE, DEMOTE (bandit cap halved) or KILL. A KILL is final: the strategy gets no
   new capital again, and it is reported once in :attr:`PoolDecision.kills` so the caller retires
   the pool in the Supervisor;
4. the bandit allocates under the current context, and the weights become size **scales**:

       scale_s = min(1, weight_s / neutral),   neutral = min(1 / n_live, cap)

   (the cap in the neutral share: a lone live strategy, held at the bandit's cap, trades at
   full size -- there is nothing to move its capital to)

   The Trader multiplies a new position's (already capped) size by its strategy's scale, so
   capital moves away from weak strategies without any position ever exceeding the
   constitution's per-position cap. A killed strategy's scale is 0. While fewer than
   ``min_periods`` rebalances have happened, every live scale is 1: a few periods are not
   evidence (the bandit still learns, and the weights are still reported).

Rewards are the pools' raw returns, so a down-scaled pool earns proportionally less while its
scale is low; the bandit's floor and cap keep every live pool at a weight of at least
``max(floor, 1 − (n_live − 1)·cap)`` (with the defaults: 0.2, a scale of 0.4, for two
strategies; 0.05, a scale of 0.15, for three), so it keeps producing evidence. Freshness sees
the same raw returns: a pool held at a low scale shows a lower mean than its full-size reference,
which lowers its CUSUM component (one component alone cannot demote: the score averages three).

Pools the Supervisor has already killed (its own pool-loss limit) are passed as ``retired``: from
that bar they are treated like a freshness KILL (scale 0, no bandit update, their equity is no
longer read, so a pool that lost all its capital cannot block the others), without appearing in
``kills``. Their last, partial period is not counted: a dead pool's evidence changes nothing.

Deterministic: no randomness, no clock, no I/O; strategies are kept in name order. After each
rebalance the bandit's ``A⁻¹`` is re-derived from ``A`` exactly as a restore does, so an
allocator restored from :meth:`PoolAllocator.snapshot` decides bit-identically to the original.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from sovereign.engines.allocation import (
    CONTEXT_FEATURES,
    AllocationConfig,
    BanditState,
    Freshness,
    FreshnessAction,
    FreshnessConfig,
    LinUCBAllocator,
    freshness,
)
from sovereign.engines.guard import check_array, check_scalar
from sovereign.errors import EngineError

__all__ = ["MONTHLY_FRESHNESS", "PoolAllocator", "PoolConfig", "PoolDecision"]

_N_FEATURES = len(CONTEXT_FEATURES)
_SNAPSHOT_VERSION = 1
_RETIRED_REASON = "killed by the Supervisor (pool loss limit): no new capital"


MONTHLY_FRESHNESS = FreshnessConfig(min_trades=36, recent_window=12, profit_window=6)
"""Freshness judged on monthly pool returns rather than on single trades."""


@dataclass(frozen=True, kw_only=True, slots=True)
class PoolConfig:
    """When and how capital moves between pools.

    ``rebalance_every``: bars between rebalances (21 ≈ a month of daily bars). ``min_periods``:
    rebalances before the scales leave 1. ``enabled``: False turns the allocator off (``observe``
    always answers None, every scale stays 1). ``allocation``: the LinUCB bandit's settings
    (rewards are period returns as fractions). ``freshness``: how a decaying edge is judged, on
    the history of period returns (its ``min_trades`` counts periods here). The default,
    :data:`MONTHLY_FRESHNESS`, is set for monthly periods: 36 periods (3 years of daily bars)
    before a pool can be demoted or killed, the last 12 against the long run, and 3 unprofitable
    half-years in a row count as stale.
    """

    rebalance_every: int = 21
    min_periods: int = 3
    enabled: bool = True
    allocation: AllocationConfig = field(default_factory=AllocationConfig)
    freshness: FreshnessConfig = field(default_factory=lambda: MONTHLY_FRESHNESS)

    def __post_init__(self) -> None:
        if self.rebalance_every < 1 or self.min_periods < 1:
            raise EngineError(f"invalid configuration {self}", source="pools.config")


@dataclass(frozen=True, kw_only=True, slots=True)
class PoolDecision:
    """One rebalance, for the strategies in name order.

    ``bar``: the bar index it was made at; ``period``: 1-based rebalance count. ``warming_up``:
    fewer than ``min_periods`` rebalances, so every live scale is 1. ``scales``: size multiplier
    per strategy in [0, 1] (0 = killed). ``actions``: the freshness action (KILL for every killed
    strategy, whenever it was killed). ``kills``: strategies killed by freshness at THIS
    rebalance, with the reason (retire their pools in the Supervisor). ``weights`` and ``cash``:
    the bandit's allocation (weights + cash = 1); ``scores``: its penalised UCB score per
    strategy (reward units). ``returns``: the period return of every pool
    that had capital. ``freshness``: the score of every strategy that was live before this
    rebalance. ``reasons``: one sentence per strategy with its figures.
    """

    bar: int
    period: int
    warming_up: bool
    scales: Mapping[str, float]
    actions: Mapping[str, FreshnessAction]
    kills: Mapping[str, str]
    weights: Mapping[str, float]
    cash: float
    scores: Mapping[str, float]
    returns: Mapping[str, float]
    freshness: Mapping[str, Freshness]
    reasons: Mapping[str, str]


@dataclass(frozen=True, kw_only=True, slots=True)
class _Anchor:
    """The last rebalance (or the first observation): bar, pool equities, context (6,)."""

    bar: int
    equity: Mapping[str, float]
    context: np.ndarray


def _canonical(bandit: LinUCBAllocator) -> LinUCBAllocator:
    """The same bandit with every A⁻¹ re-derived from A by inversion, as
    :meth:`BanditState.from_dict` does on a restore (one d×d inversion per arm)."""
    arms = []
    for arm in bandit.state.arms:
        a_inv = np.linalg.inv(arm.a)
        a_inv.flags.writeable = False
        arms.append(replace(arm, a_inv=a_inv))
    return replace(bandit, state=replace(bandit.state, arms=tuple(arms)))


class PoolAllocator:
    """Moves capital between strategy pools; the Trader calls :meth:`observe` once per bar.

    ``strategies``: the pool names (at least one). Holds state (the bandit, each strategy's
    period returns, the killed set, the scales in force, the last rebalance) and can be saved to
    and restored from a plain JSON dict. Not thread-safe; one instance per Trader.
    """

    def __init__(self, strategies: Iterable[str], config: PoolConfig | None = None) -> None:
        names = sorted(set(strategies))
        if not names or not all(isinstance(s, str) and s for s in names):
            raise EngineError("needs at least one named strategy", source="pools")
        self.config = config or PoolConfig()
        self.strategies: tuple[str, ...] = tuple(names)
        self._bandit = LinUCBAllocator.create(names, _N_FEATURES, self.config.allocation)
        self._history: dict[str, tuple[float, ...]] = {s: () for s in names}
        self._killed: dict[str, str] = {}
        self._scales: dict[str, float] = dict.fromkeys(names, 1.0)
        self._anchor: _Anchor | None = None
        self._last_bar: int | None = None
        self._periods = 0

    # ---- reading -------------------------------------------------------------------------

    def current_scales(self) -> dict[str, float]:
        """The scales in force (a copy): 1 before the first decision or when disabled."""
        if not self.config.enabled:
            return dict.fromkeys(self.strategies, 1.0)
        return dict(self._scales)

    @property
    def killed(self) -> dict[str, str]:
        """Killed strategies (freshness or Supervisor) with the reason (a copy)."""
        return dict(self._killed)

    @property
    def periods(self) -> int:
        """Rebalances made so far."""
        return self._periods

    # ---- the per-bar call ----------------------------------------------------------------

    def due(self, i: int) -> bool:
        """Would :meth:`observe` at bar ``i`` do anything (anchor, rebalance, or refuse a bar
        going back)? Between rebalances the caller may skip the call and its inputs."""
        if not self.config.enabled:
            return False
        anchor, last = self._anchor, self._last_bar
        if anchor is None or (last is not None and i < last):
            return True
        return i - anchor.bar >= self.config.rebalance_every

    def observe(
        self,
        i: int,
        *,
        pool_equity: Mapping[str, float],
        context: Sequence[float] | np.ndarray,
        retired: Collection[str] = (),
    ) -> PoolDecision | None:
        """Observe bar ``i``; a :class:`PoolDecision` on a rebalance bar, else None.

        ``i``: bar index, nondecreasing across calls (the same ``i`` again is ignored: None).
        ``pool_equity``: every strategy's pool equity in account currency (finite and > 0 for
        every live strategy; the values of killed or retired ones are not read).
        ``context``: ndarray (6,), :func:`~sovereign.engines.allocation.context_vector`.
        ``retired``: strategies whose pool the Supervisor has killed. The first call only
        anchors the first period. Raises :class:`EngineError` on a live pool's NaN/inf or
        non-positive equity, a missing or unknown strategy, a bad context or a bar going back; the state is
        then unchanged (all checks and the whole rebalance happen before anything is stored).
        """
        if not self.config.enabled:
            return None
        gone = set(retired)
        if not gone <= set(self.strategies):
            raise EngineError(
                f"unknown retired strategies {sorted(gone - set(self.strategies))}",
                source="pools.retired",
            )
        killed = dict(self._killed)
        for s in sorted(gone - killed.keys()):
            killed[s] = _RETIRED_REASON
        if set(pool_equity) != set(self.strategies):
            raise EngineError(
                f"pool equity given for {sorted(pool_equity)}, expected {list(self.strategies)}",
                source="pools.equity",
            )
        equity = self._check_equity(
            {s: v for s, v in pool_equity.items() if s not in killed}, "pools.equity"
        )
        x = check_array("pools.context", context, shape=(_N_FEATURES,))
        bar = int(i)
        if self._last_bar is not None and bar <= self._last_bar:
            if bar == self._last_bar:
                return None
            raise EngineError(f"bar {bar} is before bar {self._last_bar}", source="pools.bar")
        anchor = self._anchor
        if anchor is not None and bar - anchor.bar >= self.config.rebalance_every:
            decision = self._rebalance(anchor, bar, equity, x, killed)
            self._last_bar = bar
            return decision
        if anchor is None:  # the first call anchors the first period
            self._anchor = _Anchor(bar=bar, equity=equity, context=x)
        self._killed = killed
        self._scales = {s: 0.0 if s in killed else v for s, v in self._scales.items()}
        self._last_bar = bar
        return None

    @staticmethod
    def _check_equity(pool_equity: Mapping[str, float], where: str) -> dict[str, float]:
        """Each value finite and > 0 (a ratio needs a positive base), in name order."""
        out = {s: check_scalar(f"{where}.{s}", pool_equity[s]) for s in sorted(pool_equity)}
        broke = [s for s, value in out.items() if value <= 0]
        if broke:
            raise EngineError(
                f"pool equity of {broke} is not positive: no period return",
                source=where,
            )
        return out

    def _rebalance(
        self,
        anchor: _Anchor,
        bar: int,
        equity: dict[str, float],
        x: np.ndarray,
        killed: dict[str, str],
    ) -> PoolDecision:
        """``killed``: the killed strategies so far, including any retired on this bar."""
        cfg = self.config
        history = dict(self._history)
        bandit = self._bandit
        returns: dict[str, float] = {}
        for s in self.strategies:
            if s in killed:
                continue  # no capital during the period (or retired): no evidence
            r = check_scalar(f"pools.return.{s}", equity[s] / anchor.equity[s] - 1.0)
            returns[s] = r
            bandit = bandit.update(s, anchor.context, r)
            history[s] = (*history[s], r)
        bandit = _canonical(bandit)
        fresh: dict[str, Freshness] = {}
        kills: dict[str, str] = {}
        for s in self.strategies:
            if s in killed:
                continue
            fresh[s] = freshness(history[s], cfg.freshness)
            if fresh[s].action is FreshnessAction.KILL:
                killed[s] = kills[s] = f"edge decayed, pool retired: {fresh[s].reason}"
        actions = {
            s: FreshnessAction.KILL if s in killed else fresh[s].action for s in self.strategies
        }
        allocation = bandit.allocate(x, actions)
        period = self._periods + 1
        warming = period < cfg.min_periods
        n_live = len(self.strategies) - len(killed)
        neutral = min(1.0 / n_live, self.config.allocation.cap) if n_live else 1.0
        scales = {
            s: 0.0 if s in killed else 1.0 if warming else min(1.0, allocation.weights[s] / neutral)
            for s in self.strategies
        }
        check_array("pools.scales", list(scales.values()), low=0.0, high=1.0)
        reasons = {}
        for s in self.strategies:
            why = [allocation.reasons[s]]
            if s in fresh:
                why.append(f"freshness {fresh[s].reason}")
            if s in killed and s not in fresh:
                why.append(killed[s])
            why.append(
                f"scale {scales[s]:.4f}"
                + (f" (warming up: period {period} of {cfg.min_periods})" if warming else "")
            )
            reasons[s] = "; ".join(why)
        # Commit only now: a failure above leaves the allocator as it was.
        self._bandit, self._history, self._killed = bandit, history, killed
        self._scales, self._periods = scales, period
        self._anchor = _Anchor(bar=bar, equity=equity, context=x)
        return PoolDecision(
            bar=bar,
            period=period,
            warming_up=warming,
            scales=scales,
            actions=actions,
            kills=kills,
            weights=dict(allocation.weights),
            cash=allocation.cash,
            scores=dict(allocation.scores),
            returns=returns,
            freshness=fresh,
            reasons=reasons,
        )

    # ---- persistence ---------------------------------------------------------------------

    def snapshot(self) -> dict[str, Any]:
        """The whole state as plain JSON types (the configuration is not included)."""
        anchor = self._anchor
        return {
            "version": _SNAPSHOT_VERSION,
            "strategies": list(self.strategies),
            "bandit": self._bandit.state.to_dict(),
            "history": {s: list(h) for s, h in self._history.items()},
            "killed": dict(self._killed),
            "scales": dict(self._scales),
            "periods": self._periods,
            "last_bar": self._last_bar,
            "anchor": None
            if anchor is None
            else {
                "bar": anchor.bar,
                "equity": dict(anchor.equity),
                "context": anchor.context.tolist(),
            },
        }

    def restore(self, data: Mapping[str, Any], *, bar_shift: int = 0) -> None:
        """Replace the state with a :meth:`snapshot` of an allocator of the same strategies.

        ``bar_shift`` is added to the saved bar numbers: after a restart the new panel numbers
        its bars from another start. The configuration stays this instance's. EngineError on a
        malformed snapshot, another version, or other strategies; the state is then unchanged.
        """
        try:
            if data["version"] != _SNAPSHOT_VERSION:
                raise EngineError(f"snapshot version {data['version']!r}", source="pools.restore")
            if list(data["strategies"]) != list(self.strategies):
                raise EngineError(
                    f"snapshot is for {list(data['strategies'])}, not {list(self.strategies)}",
                    source="pools.restore",
                )
            state = BanditState.from_dict(data["bandit"])
            if state.n_features != _N_FEATURES or [a.strategy for a in state.arms] != list(
                self.strategies
            ):
                raise EngineError("bandit state does not match", source="pools.restore")
            history = {
                s: tuple(check_array("pools.restore.history", data["history"][s]).tolist())
                for s in self.strategies
            }
            killed = {str(s): str(why) for s, why in data["killed"].items()}
            values = [data["scales"][s] for s in self.strategies]
            checked = check_array("pools.restore.scales", values, low=0.0, high=1.0)
            scales = dict(zip(self.strategies, checked.tolist(), strict=True))
            periods = int(data["periods"])
            last_bar = None if data["last_bar"] is None else int(data["last_bar"]) + bar_shift
            raw = data["anchor"]
            anchor = None
            if raw is not None:
                anchor = _Anchor(
                    bar=int(raw["bar"]) + bar_shift,
                    equity=self._check_equity(raw["equity"], "pools.restore.equity"),
                    context=check_array(
                        "pools.restore.context", raw["context"], shape=(_N_FEATURES,)
                    ),
                )
        except EngineError:
            raise
        except (KeyError, TypeError, ValueError, AttributeError) as err:
            raise EngineError(f"malformed snapshot: {err!r}", source="pools.restore") from err
        names, live = set(self.strategies), set(self.strategies) - killed.keys()
        if (
            not killed.keys() <= names
            or periods < 0
            or (anchor is not None and not live <= anchor.equity.keys() <= names)
        ):
            raise EngineError(
                "malformed snapshot: killed, periods or anchor equity", source="pools.restore"
            )
        self._bandit = LinUCBAllocator(config=self.config.allocation, state=state)
        self._history, self._killed, self._scales = history, killed, scales
        self._periods, self._last_bar, self._anchor = periods, last_bar, anchor
