"""Strategy catalog helpers: declared bounds, parameters in force, rule features of a panel, and
parameter changes on a running Trader."""

from __future__ import annotations

from sovereign.constitution import Constitution
from sovereign.market.sources import load_sample
from sovereign.rules import RuleFeature
from sovereign.trading.catalog import build, effective_params, rule_features, strategy_specs
from sovereign.trading.supervisor import Supervisor
from sovereign.trading.trader import Trader


def test_effective_params_layers_later_wins() -> None:
    params = effective_params(
        ["momentum"], {"momentum": {"top_k": 3}}, {"momentum": {"top_k": 4, "skip": 10}}
    )
    assert params["momentum"]["top_k"] == 4
    assert params["momentum"]["skip"] == 10
    assert (
        params["momentum"]["lookback"]
        == strategy_specs(["momentum"])["momentum"]["lookback"].default
    )


def test_rule_features_follow_the_source() -> None:
    assert RuleFeature.VOLUME not in rule_features(load_sample("sp500"))
    assert RuleFeature.VOLUME in rule_features(load_sample("indices"))
    assert RuleFeature.ATR in rule_features(load_sample("sp500"))


def test_set_params_rebuilds_the_strategy_and_keeps_its_calibration() -> None:
    trader = Trader(
        strategies=build(["momentum"]),
        supervisor=Supervisor(constitution=Constitution()),
        initial_equity=1e6,
    )
    old = trader.strategies["momentum"]
    old.calibrate("ranging", won=False)
    trader.set_params({"momentum": {"top_k": 3}, "ghost": {"x": 1}})
    new = trader.strategies["momentum"]
    assert new is not old
    assert new.p["top_k"] == 3
    assert new.calibrated(0.5, "ranging") == old.calibrated(0.5, "ranging")
    trader.set_params({"momentum": {"top_k": 3}})
    assert trader.strategies["momentum"] is new  # no change, no rebuild
