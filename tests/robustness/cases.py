"""What each strategy under ``strategies/`` is expected to do, and the data it runs on.

``kinds`` is each computed node's expected kind (traced / opaque); ``reasons`` a substring the opaque
reason must contain (so a fallback stays explained); ``data`` the datasets it runs on (see
``DATASETS`` in test_strategies.py).  ``run_skip`` names a known codegen bug that stops ``run`` from
matching the reference; ``per_tick_skip`` why the reference cannot match calling the compute function
per tick (by design only: recursive indicators).
"""

from __future__ import annotations

from dataclasses import dataclass, field

ONE_AND_MANY = ("single", "multi")


@dataclass(frozen=True)
class Case:
    kinds: dict[str, str]
    data: tuple[str, ...] = ONE_AND_MANY
    reasons: dict[str, str] = field(default_factory=dict)
    run_skip: str | None = None
    per_tick_skip: str | None = None


CASES: dict[str, Case] = {
    "s01_frame_momentum": Case({"features": "traced", "signal": "traced"}),
    "s02_scalar_arith": Case({"arith": "traced"}),
    "s03_boolean_logic": Case({"rules": "traced"}),
    "s04_numpy_funcs": Case({"feat": "traced"}),
    "s06_rolling_minperiods": Case({"stats": "traced"}),
    "s07_ewm_variants": Case({"smooth": "traced"}),
    "s08_ewm_halflife": Case({"hl": "traced"}),
    "s09_pct_diff": Case({"deltas": "traced"}),
    "s10_cumsum": Case({"drift": "traced"}),
    "s11_scalar_returns": Case(
        {"avg": "opaque", "last_close": "traced", "last_volume": "traced", "vol": "opaque"},
        reasons={"avg": "Series.mean", "vol": "Series.std"}),
    "s12_return_shapes": Case({"series_out": "traced", "frame_out": "traced", "dict_out": "traced"}),
    "s13_concat_rename": Case({"combo": "traced", "chg": "traced"}),
    "s14_fill_replace": Case({"zero_fill": "traced", "forward": "traced", "replaced": "opaque"},
                             reasons={"replaced": "Series.replace"}),
    "s15_apply_lambda": Case({"slope": "opaque", "squash": "opaque"},
                             reasons={"slope": "Rolling.apply", "squash": "Series.apply"}),
    "s16_python_if": Case({"regime": "opaque"}, reasons={"regime": "s16_python_if.py:11"}),
    "s17_module_helpers": Case({"score": "traced"}),
    "s18_closures_params": Case({"cross": "traced", "lb_ret": "traced", "mom_sig": "traced",
                                 "scaled": "traced"}),
    "s19_defaults": Case({"trend": "traced"}),
    "s20_two_node_inputs": Case({"fast": "traced", "bands": "traced", "position": "traced",
                                 "width": "traced"}),
    "s21_multi_symbol_tags": Case({"spread": "traced"}, data=("single", "multi", "pair_dict")),
    "s22_mixed_intervals": Case({"fast_trend": "traced", "slow_trend": "traced"}),
    "s23_indicators_traced": Case({"ind": "traced"}),
    "s24_expression_api": Case({"trend": "traced", "osc": "traced", "sig": "traced"}),
    "s25_tag_query": Case({"avg_ret": "opaque"}, data=("crypto_dict",),
                          reasons={"avg_ret": "iterating the view"}),
    "s26_shared_subexpr": Case({"smooth": "traced", "smooth_trend": "traced", "change": "traced",
                                "change_frame": "traced"}),
}
