"""Build strategies by name with parameters, with errors that say what is valid."""

from __future__ import annotations

from collections.abc import Sequence

from sovereign.errors import ConfigError
from sovereign.market.bars import BarPanel, Feature
from sovereign.rules.config import ParamSpec
from sovereign.rules.context import RuleFeature
from sovereign.trading.strategies import REGISTRY, BaseStrategy

DEFAULT_STRATEGIES: tuple[str, ...] = ("regime_entry", "momentum")


def parse_params(items: Sequence[str], strategies: Sequence[str]) -> dict[str, dict[str, float]]:
    """``["fast=5", "momentum.top_k=3"]`` -> per-strategy parameter dicts.

    A bare ``k=v`` applies to every named strategy that declares ``k``.
    """
    out: dict[str, dict[str, float]] = {s: {} for s in strategies}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key or not raw:
            raise ConfigError(f"--param {item!r}: expected NAME=VALUE or STRATEGY.NAME=VALUE")
        try:
            value = float(raw)
        except ValueError:
            raise ConfigError(f"--param {item!r}: {raw!r} is not a number") from None
        strategy, _, name = key.rpartition(".")
        targets = [strategy] if strategy else [s for s in strategies if name in REGISTRY[s].specs]
        if strategy and strategy not in out:
            raise ConfigError(
                f"--param {item!r}: strategy {strategy!r} is not selected ({', '.join(strategies)})"
            )
        if not targets:
            known = sorted({p for s in strategies for p in REGISTRY[s].specs})
            raise ConfigError(
                f"--param {item!r}: no selected strategy has {name!r} (parameters: {', '.join(known)})"
            )
        for s in targets:
            out[s][name] = value
    return out


def build(
    names: Sequence[str], params: dict[str, dict[str, float]] | None = None
) -> list[BaseStrategy]:
    """Instantiate strategies; ConfigError names an unknown strategy or a bad parameter."""
    strategies = []
    for name in names:
        cls = REGISTRY.get(name)
        if cls is None:
            raise ConfigError(
                f"unknown strategy {name!r} (available: {', '.join(sorted(REGISTRY))})"
            )
        try:
            strategies.append(cls(None, **(params or {}).get(name, {})))
        except ValueError as err:
            raise ConfigError(str(err)) from err
    if len(strategies) > 1:
        share = 1.0 / len(strategies)
        strategies = [
            type(s)(s.config.model_copy(update={"pool_fraction": share})) for s in strategies
        ]
    return strategies


def strategy_specs(names: Sequence[str]) -> dict[str, dict[str, ParamSpec]]:
    """Declared parameter bounds of the named strategies (what proposals may tune)."""
    return {n: dict(REGISTRY[n].specs) for n in names if n in REGISTRY}


def effective_params(
    names: Sequence[str], *layers: dict[str, dict[str, float]] | None
) -> dict[str, dict[str, float]]:
    """Every parameter's value in force: declared defaults, then each layer (operator settings,
    deployed overrides, ...) on top, later layers winning."""
    out = {
        n: {k: spec.default for k, spec in specs.items()}
        for n, specs in strategy_specs(names).items()
    }
    for layer in layers:
        for name, params in (layer or {}).items():
            if name in out:
                out[name].update(params)
    return out


def rule_features(panel: BarPanel) -> frozenset[RuleFeature]:
    """The rule inputs ``panel`` can provide: volume only when the source has it (ATR falls back
    to a close-to-close proxy, flagged in the features, so it is always available)."""
    features = frozenset(RuleFeature)
    return features if Feature.VOLUME in panel.features else features - {RuleFeature.VOLUME}
