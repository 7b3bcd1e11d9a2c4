"""Policy parsing and evaluation: thresholds, top-k, correlation cap, hysteresis, presets."""

from __future__ import annotations

import math

import pytest

from qmtl.services.worldservice.policy import (PRESETS, Candidate, Policy, PolicyError, correlation,
                                               evaluate_policy, parse_policy, preset)


def rule(ev, sid: str, name: str):
    return next(r for r in ev.results[sid].rules if r.rule == name)


def test_thresholds_min_max_inclusive_and_missing_metric() -> None:
    policy = Policy.model_validate({"thresholds": {"sharpe": {"min": 1.0}, "max_drawdown": {"max": 0.2}}})
    ev = evaluate_policy(policy, [
        Candidate("edge", {"sharpe": 1.0, "max_drawdown": 0.2}),
        Candidate("dd", {"sharpe": 2.0, "max_drawdown": -0.25}),  # empyrical sign: abs taken
        Candidate("nosharpe", {"max_drawdown": 0.1}),
    ])
    assert ev.active == ("edge",)
    assert ev.weights == {"edge": 1.0}
    assert rule(ev, "dd", "threshold:max_drawdown").detail == "0.25 > max 0.2"
    assert not ev.results["dd"].passed
    assert rule(ev, "nosharpe", "threshold:sharpe").detail == "metric 'sharpe' missing"


def test_top_k_keeps_best_and_reports_rank() -> None:
    policy = Policy.model_validate({"top_k": {"metric": "sharpe", "k": 2}})
    ev = evaluate_policy(policy, [Candidate(f"s{i}", {"sharpe": float(i)}) for i in range(5)])
    assert ev.active == ("s3", "s4")
    assert ev.weights == {"s3": 0.5, "s4": 0.5}
    assert rule(ev, "s2", "top_k:sharpe").detail == "rank 3 of 5 eligible"
    assert not ev.results["s2"].passed and ev.results["s4"].passed


def test_top_k_ascending_order() -> None:
    policy = Policy.model_validate({"top_k": {"metric": "max_drawdown", "k": 1, "order": "asc"}})
    ev = evaluate_policy(policy, [Candidate("a", {"max_drawdown": 0.3}), Candidate("b", {"max_drawdown": 0.1})])
    assert ev.active == ("b",)


def test_correlation_cap_against_active_and_earlier_admitted() -> None:
    base = [0.01, -0.02, 0.03, 0.00, 0.02, -0.01]
    clone = [2 * x for x in base]
    anti = [-x for x in base]
    policy = Policy.model_validate({"correlation": {"max": 0.8}, "top_k": {"metric": "sharpe", "k": 10}})
    ev = evaluate_policy(policy, [Candidate("clone", {"sharpe": 1.0}, clone),
                                  Candidate("anti", {"sharpe": 0.5}, anti)],
                         previous_active=["old"], active_returns={"old": base})
    r = rule(ev, "clone", "correlation")
    assert not r.passed and math.isclose(r.value, 1.0) and "with old" in r.detail
    assert ev.active == ("anti",)
    # Within one evaluation: the higher-ranked twin is admitted, the lower one is capped by it.
    ev2 = evaluate_policy(policy, [Candidate("a", {"sharpe": 2.0}, base), Candidate("b", {"sharpe": 1.0}, clone)])
    assert ev2.active == ("a",)
    assert "with a" in rule(ev2, "b", "correlation").detail


def test_correlation_without_returns_fails_safe() -> None:
    policy = Policy.model_validate({"correlation": {"max": 0.5}})
    ev = evaluate_policy(policy, [Candidate("x", {"sharpe": 1.0})])
    assert ev.active == ()
    assert rule(ev, "x", "correlation").detail == "returns required to check the correlation cap"


def test_correlation_helper_edges() -> None:
    assert correlation([1.0], [1.0]) is None
    assert correlation([1.0, 1.0, 1.0], [1.0, 2.0, 3.0]) is None  # constant series: undefined
    assert math.isclose(correlation([9, 2, 3, 4], [2, 4, 6]), 1.0)  # common tail only
    assert math.isclose(correlation([1, 2, 3], [3, 2, 1]), -1.0)


def test_hysteresis_enter_and_exit_across_two_evaluations() -> None:
    policy = Policy.model_validate({"hysteresis": {"metric": "sharpe", "enter": 1.5, "exit": 1.0}})
    first = evaluate_policy(policy, [Candidate("a", {"sharpe": 1.6}), Candidate("b", {"sharpe": 1.2})])
    assert first.active == ("a",)  # b is in the band but was not active: it does not enter
    second = evaluate_policy(policy, [Candidate("a", {"sharpe": 1.2}), Candidate("b", {"sharpe": 1.2})],
                             previous_active=first.active)
    assert second.active == ("a",)  # a stays above exit; b still below enter
    assert rule(second, "a", "hysteresis:sharpe").detail == "active: stays while >= 1.0"
    third = evaluate_policy(policy, [Candidate("a", {"sharpe": 0.9})], previous_active=second.active)
    assert third.active == ()


def test_presets_documented_behaviour() -> None:
    assert set(PRESETS) == {"sandbox", "conservative", "moderate", "aggressive"}
    sandbox = evaluate_policy(preset("sandbox"), [Candidate("any", {})])
    assert sandbox.active == ("any",) and preset("sandbox").max_mode == "paper"
    good = {"sharpe": 1.6, "max_drawdown": 0.08, "trades": 60, "win_rate": 0.55, "profit_factor": 1.5}
    meh = {"sharpe": 0.7, "max_drawdown": 0.3, "trades": 15}
    assert evaluate_policy(preset("conservative"), [Candidate("g", good, [0.1, 0.2, 0.0])]).active == ("g",)
    assert evaluate_policy(preset("conservative"), [Candidate("m", meh, [0.1, 0.2, 0.0])]).active == ()
    assert evaluate_policy(preset("aggressive"), [Candidate("m", meh)]).active == ("m",)
    assert evaluate_policy(preset("moderate"), [Candidate("m", meh, [0.1, 0.2, 0.0])]).active == ()
    with pytest.raises(PolicyError, match="unknown preset 'yolo'"):
        preset("yolo")


def test_parse_yaml_and_json_and_errors_name_the_field() -> None:
    yaml_doc = "thresholds:\n  sharpe: {min: 1.0}\ntop_k: {metric: sharpe, k: 3}\n"
    assert parse_policy(yaml_doc, "application/yaml").top_k.k == 3
    assert parse_policy('{"preset": "moderate"}').hysteresis.enter == 1.0
    with pytest.raises(PolicyError, match=r"top_k\.k"):
        parse_policy('{"top_k": {"metric": "sharpe", "k": 0}}')
    with pytest.raises(PolicyError, match=r"thresholds\.sharpe"):
        parse_policy('{"thresholds": {"sharpe": {}}}')
    with pytest.raises(PolicyError, match="hysteresis"):
        parse_policy('{"hysteresis": {"metric": "sharpe", "enter": 1, "exit": 2}}')
    with pytest.raises(PolicyError, match="bogus"):
        parse_policy('{"bogus": 1}')
    with pytest.raises(PolicyError, match="not valid YAML"):
        parse_policy("thresholds: [unclosed", "application/yaml")
    with pytest.raises(PolicyError, match="must be a mapping"):
        parse_policy("[1, 2]")
