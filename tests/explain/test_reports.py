"""What a strategy earned: returns, equity, drawdown and metrics on RunResult / SubmitResult (checked
against empyrical), annualisation by bar interval and calendar, and the tear sheet opened in headless
Chromium."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import empyrical
import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

import qmtl
from qmtl.cli.main import app
from qmtl.runtime.metrics import CALENDARS, Calendar, calendar_of, periods_per_year
from qmtl.runtime.performance import Performance
from qmtl.runtime.synthetic import synthetic_bars
from qmtl.runtime.tearsheet import SECTIONS, thinned
from tests.browser import rendered_dom

ROOT = Path(__file__).resolve().parents[2]
MOMENTUM = ROOT / "examples" / "momentum.py"
cli = CliRunner()


def perf_of(values: list[float], interval: int = 3600, calendar: str = "24/7") -> Performance:
    ts = 1_700_000_000 - 1_700_000_000 % interval + interval * np.arange(len(values), dtype=np.int64)
    return Performance(pd.Series(values, index=pd.Index(ts, name="ts"), dtype="float64"), interval,
                       calendar_of(calendar))


returns_lists = st.lists(st.floats(min_value=-0.3, max_value=0.3, allow_nan=False), min_size=30, max_size=400)


@pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning")  # empyrical: inf
@settings(deadline=None, max_examples=40)
@given(returns_lists, st.sampled_from(sorted(CALENDARS)), st.sampled_from([60, 3600, 86_400]))
def test_series_and_metrics_match_empyrical(values: list[float], cal: str, interval: int) -> None:
    p = perf_of(values, interval, cal)
    r = p.returns
    ann = p.periods_per_year
    np.testing.assert_allclose(p.equity.to_numpy(), empyrical.cum_returns(r, starting_value=1.0).to_numpy(),
                               rtol=1e-9)
    assert p.drawdown.min() == pytest.approx(empyrical.max_drawdown(r), rel=1e-9, abs=1e-12)
    assert p.metrics.max_drawdown == pytest.approx(empyrical.max_drawdown(r), rel=1e-9, abs=1e-12)
    expected = {"annual_return": empyrical.annual_return(r, annualization=ann),
                "annual_volatility": empyrical.annual_volatility(r, annualization=ann),
                "sortino": empyrical.sortino_ratio(r, annualization=ann)}
    for name, value in expected.items():
        ours = p.extra_metrics[name]
        if ours is None:
            assert not np.isfinite(value) or name == "sortino"
        else:
            assert ours == pytest.approx(value, rel=1e-7, abs=1e-9), name
    sharpe = empyrical.sharpe_ratio(r, annualization=ann)
    if p.metrics.sharpe is not None:
        assert p.metrics.sharpe == pytest.approx(sharpe, rel=1e-9, abs=1e-9)


def test_monthly_returns_and_rolling_sharpe_match_empyrical() -> None:
    rng = np.random.default_rng(3)
    p = perf_of(list(rng.normal(0.0005, 0.01, 24 * 120)), 3600)  # 120 days of hourly bars
    monthly = empyrical.aggregate_returns(p.returns, "monthly")
    table = p.monthly_returns()
    for (year, month), value in monthly.items():
        assert table.loc[year, month] == pytest.approx(value, rel=1e-9)
    assert table.notna().sum().sum() == len(monthly)
    window = p.rolling_window()
    assert window == round(365 * 24 / 12)  # a month of hourly bars, 24/7
    ours = p.rolling_sharpe()
    theirs = empyrical.roll_sharpe_ratio(p.returns, window, annualization=p.periods_per_year)
    np.testing.assert_allclose(ours.iloc[window - 1:].to_numpy(), np.asarray(theirs), rtol=1e-7)
    assert ours.iloc[:window - 1].isna().all()


def test_calendars_annualise_by_interval() -> None:
    assert periods_per_year(60) == 252 * 1440  # the default keeps the old convention
    assert periods_per_year(60, "24/7") == 365 * 1440
    assert periods_per_year(60, "exchange") == 252 * 390  # 6.5-hour sessions
    assert periods_per_year(86_400, "exchange") == periods_per_year(86_400) == 252
    assert periods_per_year(86_400, "24/7") == 365
    assert periods_per_year(7 * 86_400, "24/7") == pytest.approx(365 / 7)
    assert Calendar("mine", 250, 8 * 3600).periods_per_year(1800) == 250 * 16
    with pytest.raises(ValueError, match="unknown calendar 'moon'.*24/7"):
        calendar_of("moon")
    values = list(np.random.default_rng(1).normal(0.001, 0.01, 200))
    a, b = perf_of(values, 60, "24/7"), perf_of(values, 60, "exchange")
    assert a.metrics.sharpe / b.metrics.sharpe == pytest.approx(math.sqrt(365 * 1440 / (252 * 390)))


def test_run_result_gives_returns_equity_drawdown() -> None:
    compiled = qmtl.compile(MOMENTUM)
    data = synthetic_bars(600)
    r = compiled.run(data)
    p = r.performance()
    assert p.source == "momentum_signal.signal x next-bar close return" and p.interval == 60
    assert isinstance(p.returns.index, pd.DatetimeIndex) and str(p.returns.index.tz) == "UTC"
    # the position decided at a bar's close earns the next bar's close-to-close return
    signal = r.frame("momentum_signal")["signal"]
    close = pd.Series(data["close"].to_numpy(), index=pd.to_datetime(data["ts"], unit="s", utc=True))
    earned = (signal.reindex(close.index).ffill().fillna(0).shift(1) * close.pct_change()).loc[p.returns.index]
    np.testing.assert_allclose(p.returns.to_numpy(), earned.to_numpy(), atol=1e-15)
    assert p.equity.iloc[-1] == pytest.approx(float(np.prod(1 + p.returns)))
    assert (p.drawdown <= 0).all() and p.drawdown.min() == pytest.approx(p.metrics.max_drawdown)
    assert r.performance("24/7").metrics.periods_per_year == 365 * 1440


def test_run_result_without_origin_says_so() -> None:
    from qmtl.runtime.results import RunResult
    with pytest.raises(ValueError, match="does not know the strategy"):
        RunResult({}).performance()


def test_report_opens_in_chromium_with_every_section(tmp_path: Path) -> None:
    compiled = qmtl.compile(MOMENTUM)
    r = compiled.run(synthetic_bars(24 * 60 * 40))  # 40 days of minute bars: two calendar months
    path = r.report(tmp_path / "report.html", calendar="24/7")
    page = path.read_text(encoding="utf-8")
    # nothing to fetch: no scripts, no external sources, links or styles
    assert "<script" not in page and "@import" not in page
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//|url\((["']?)https?:""", page)
    dom = rendered_dom(path)
    for key, heading in SECTIONS:
        assert re.search(rf'<section id="{key}"><h2>{heading}</h2>', dom), key
    assert dom.count("<svg") == 3  # equity, drawdown, rolling Sharpe
    p = r.performance("24/7")
    assert f"<td>{p.metrics.sharpe:.3f}</td>" in dom
    assert f"<td>{p.metrics.max_drawdown * 100:.2f}%</td>" in dom
    months = p.monthly_returns()
    assert months.notna().sum().sum() == 2
    for value in months.stack().dropna():
        assert f"{value * 100:.2f}%" in dom
    assert "calendar 24/7" in dom and "GeneralStrategy" in dom
    assert len(page) < 1_500_000  # 57,600 bars drawn from a few thousand points


def test_thinning_keeps_extremes() -> None:
    s = pd.Series(np.sin(np.arange(100_000) / 500.0) + np.arange(100_000) * 1e-6)
    s.iloc[77_777] = -5.0
    t = thinned(s)
    assert len(t) <= 2400 and t.min() == -5.0 and t.max() == s.max()
    assert t.index[0] == 0 and t.index[-1] == 99_999


def test_submit_result_and_cli_report(tmp_path: Path, monkeypatch) -> None:
    from qmtl.runner import Runner
    monkeypatch.setenv("QMTL_HOME", str(tmp_path / "home"))
    res = Runner.submit(MOMENTUM, world="rep", data=synthetic_bars(500), embedded=True, calendar="exchange")
    assert res.status == "accepted", res
    assert res.precheck.metrics.periods_per_year == 252 * 390
    assert res.precheck.metrics.sharpe == pytest.approx(res.performance.metrics.sharpe)
    assert len(res.returns) == res.precheck.metrics.bars
    assert res.equity.iloc[-1] == pytest.approx(1 + res.precheck.metrics.total_return)
    assert res.drawdown.min() == pytest.approx(res.precheck.metrics.max_drawdown)
    assert "_performance" not in json.dumps(res.model_dump(mode="json"))

    data = tmp_path / "bars.parquet"
    synthetic_bars(500).to_parquet(data)
    report = tmp_path / "sub.html"
    r = cli.invoke(app, ["submit", str(MOMENTUM), "--world", "rep2", "--data", str(data), "--embedded",
                         "--report", str(report), "--calendar", "24/7", "--format", "json", "-q"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["precheck"]["metrics"]["periods_per_year"] == 365 * 1440
    dom = rendered_dom(report)
    assert "GeneralStrategy in world rep2" in dom and all(f'id="{k}"' in dom for k, _ in SECTIONS)


def test_submit_cli_bad_report_inputs(tmp_path: Path) -> None:
    r = cli.invoke(app, ["submit", str(MOMENTUM), "--world", "w", "--calendar", "moon"])
    assert r.exit_code == 2 and "moon" in r.stderr and "24/7" in r.stderr
    r = cli.invoke(app, ["submit", str(MOMENTUM), "--world", "w", "--report", str(tmp_path / "no" / "r.html")])
    assert r.exit_code == 2 and "no such directory" in r.stderr


def test_rejected_submission_has_no_returns(tmp_path: Path) -> None:
    from qmtl.runner import Runner
    bad = tmp_path / "bad.py"
    bad.write_text("this is not python(", encoding="utf-8")
    res = Runner.submit(bad, world="w", embedded=True)
    assert res.status == "rejected" and res.performance is None
    with pytest.raises(ValueError, match="no replay to report on"):
        res.report(tmp_path / "x.html")


def test_the_world_sets_the_calendar_unless_the_submitter_does(tmp_path: Path, monkeypatch) -> None:
    from qmtl.config import QmtlConfig
    from qmtl.runner import Runner
    from qmtl.services.app import EmbeddedServices
    from qmtl.services.client import GatewayClient
    monkeypatch.setenv("QMTL_HOME", str(tmp_path / "home"))
    data = synthetic_bars(400)
    with EmbeddedServices(QmtlConfig(home=tmp_path / "svc")) as url:
        with GatewayClient(url) as client:
            client.create_world("crypto", policy={"calendar": "24/7", "max_mode": "paper"})
            client.create_world("plain", preset="sandbox")
            assert client.get_policy("crypto")["calendar"] == "24/7"
        in_crypto = Runner.submit(MOMENTUM, world="crypto", data=data, gateway_url=url)
        in_plain = Runner.submit(MOMENTUM, world="plain", data=data, gateway_url=url)
        chosen = Runner.submit(MOMENTUM, world="crypto", data=data, gateway_url=url, calendar="exchange")
    assert in_crypto.status == in_plain.status == chosen.status == "accepted"
    assert in_crypto.precheck.metrics.periods_per_year == 365 * 1440
    assert any("calendar '24/7'" in n for n in in_crypto.notes)
    assert in_crypto.performance.calendar.name == "24/7"
    assert in_plain.precheck.metrics.periods_per_year == 252 * 1440 and in_plain.notes == []
    assert chosen.precheck.metrics.periods_per_year == 252 * 390  # the submitter's choice wins
    ratio = in_crypto.precheck.metrics.sharpe / in_plain.precheck.metrics.sharpe
    assert ratio == pytest.approx(math.sqrt(365 / 252))  # same returns, another year
    # the world evaluated the metrics it was sent
    assert in_crypto.evaluation is not None


def test_a_policy_with_an_unknown_calendar_is_refused() -> None:
    from qmtl.services.worldservice.policy import PolicyError, parse_policy
    assert parse_policy("calendar: exchange\n", "application/yaml").calendar == "exchange"
    with pytest.raises(PolicyError, match="calendar"):
        parse_policy("calendar: moon\n", "application/yaml")


def test_a_union_replay_reports_each_strategy_as_its_own_run(tmp_path: Path) -> None:
    data = synthetic_bars(400)
    slower = tmp_path / "slower.py"
    slower.write_text(MOMENTUM.read_text().replace("rolling(5)", "rolling(9)").replace(
        "GeneralStrategy", "Slower"), encoding="utf-8")
    res = qmtl.replay([MOMENTUM, slower], data)
    for name, path in (("GeneralStrategy", MOMENTUM), ("Slower", slower)):
        alone = qmtl.compile(path).run(data).performance()
        together = res[name].performance()
        pd.testing.assert_series_equal(together.returns, alone.returns)
        assert together.metrics == alone.metrics and together.strategy == name
    assert res["GeneralStrategy"].performance().metrics != res["Slower"].performance().metrics


def test_a_strategy_without_returns_gets_a_report_that_says_so(tmp_path: Path) -> None:
    from .strategies import MIXED, write
    r = qmtl.compile(write(tmp_path, "mixed.py", MIXED)).run(synthetic_bars(80))
    p = r.performance()
    assert p.source is None and p.returns.empty and p.metrics.sharpe is None
    dom = rendered_dom(r.report(tmp_path / "empty.html"))
    assert "no output with a returns, signal or position column" in dom
    assert dom.count("not enough bars") == 4 and "<svg" not in dom  # three charts and the months
