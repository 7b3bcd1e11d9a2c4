"""A run's tear sheet: one self-contained HTML file (no network, no scripts) with the summary
metrics, the equity curve, the drawdown, monthly returns and a rolling Sharpe.

Charts are drawn by matplotlib (the ``report`` extra) and inlined as SVG; the monthly returns are an
HTML table shaded by sign and size, so the numbers can be read and copied.  Every number comes from
``Performance`` (``qmtl.runtime.performance``), the same object the precheck metrics come from.
"""

from __future__ import annotations

import html
import io
import math
import re
from pathlib import Path
from typing import Any

import pandas as pd

#: the page's sections, in order: (id, heading)
SECTIONS = (("summary", "Summary"), ("equity", "Equity"), ("drawdown", "Drawdown"),
            ("monthly-returns", "Monthly returns"), ("rolling-sharpe", "Rolling Sharpe"))

_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")

_STYLE = """
body { font-family: Helvetica, Arial, sans-serif; margin: 1.5em; color: #222; max-width: 1100px; }
h1 { font-size: 1.4em; } h2 { font-size: 1.1em; margin-top: 1.5em; border-bottom: 1px solid #ddd; }
table { border-collapse: collapse; font-size: 13px; }
td, th { border: 1px solid #ddd; padding: 3px 8px; text-align: right; }
th { background: #f4f4f4; } td.label { text-align: left; }
.note { color: #666; font-size: 12px; }
"""


class ReportUnavailable(RuntimeError):
    """matplotlib is not installed (``pip install 'qmtl[report]'``)."""


def write_tearsheet(perf: Any, path: Path, title: str | None = None) -> Path:
    """Render ``perf`` to ``path`` (its directory must exist); returns ``path``."""
    page = tearsheet_html(perf, title)
    try:
        path.write_text(page, encoding="utf-8")
    except OSError as exc:
        raise OSError(f"cannot write the report to {path}: {exc.strerror or exc}") from exc
    return path


def tearsheet_html(perf: Any, title: str | None = None) -> str:
    try:
        import matplotlib
    except ImportError:
        raise ReportUnavailable("reports need matplotlib: pip install 'qmtl[report]'") from None
    matplotlib.use("Agg", force=False)
    title = title or "qmtl run"
    r = perf.returns
    span = (f"{r.index[0]:%Y-%m-%d %H:%M} – {r.index[-1]:%Y-%m-%d %H:%M} UTC" if len(r) else "no bars")
    body = [f"<h1>{html.escape(title)}</h1>",
            f"<p class=\"note\">{html.escape(span)}; {len(r)} bars of {perf.interval} s; calendar "
            f"{html.escape(perf.calendar.name)} ({perf.periods_per_year:,.0f} bars a year); returns from "
            f"{html.escape(perf.source or 'no output with a returns, signal or position column')}</p>"]
    sections = {"summary": _summary(perf), "equity": _chart(perf.equity, "wealth (start = 1)"),
                "drawdown": _chart(perf.drawdown * 100.0, "drawdown, %", fill=True),
                "monthly-returns": _monthly(perf.monthly_returns()),
                "rolling-sharpe": _chart(perf.rolling_sharpe(), f"Sharpe over {perf.rolling_window()} bars")}
    for key, heading in SECTIONS:
        body.append(f"<section id=\"{key}\"><h2>{heading}</h2>{sections[key]}</section>")
    return ("<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\">"
            f"<title>{html.escape(title)} — tear sheet</title><style>{_STYLE}</style></head><body>"
            + "".join(body) + "</body></html>\n")


def _summary(perf: Any) -> str:
    m, extra = perf.metrics, perf.extra_metrics
    rows = [("Sharpe", _num(m.sharpe)), ("Sortino", _num(extra["sortino"])),
            ("Total return", _pct(m.total_return)), ("Annual return", _pct(extra["annual_return"])),
            ("Annual volatility", _pct(extra["annual_volatility"])), ("Max drawdown", _pct(m.max_drawdown)),
            ("Win rate", _pct(m.win_rate)), ("Profit factor", _num(m.profit_factor)),
            ("Trades", "—" if m.trades is None else str(m.trades)), ("Bars", str(m.bars))]
    cells = "".join(f"<tr><td class=\"label\">{k}</td><td>{v}</td></tr>" for k, v in rows)
    return f"<table>{cells}</table>"


def _chart(series: pd.Series, ylabel: str, fill: bool = False) -> str:
    clean = thinned(series.dropna())
    if clean.empty:
        return "<p class=\"note\">not enough bars</p>"
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(10, 2.8))
    try:
        x = clean.index.tz_localize(None) if getattr(clean.index, "tz", None) is not None else clean.index
        ax.plot(x, clean.to_numpy(), linewidth=1.0, color="#1f5fa8")
        if fill:
            ax.fill_between(x, clean.to_numpy(), 0.0, color="#c0392b", alpha=0.3, linewidth=0)
        ax.set_ylabel(ylabel)
        ax.grid(True, alpha=0.3)
        fig.autofmt_xdate()
        fig.tight_layout()
        buf = io.StringIO()
        fig.savefig(buf, format="svg")
    finally:
        plt.close(fig)
    svg = buf.getvalue()
    svg = re.sub(r"<metadata>.*?</metadata>", "", svg[svg.index("<svg"):], flags=re.S)
    return svg  # inline: without the XML prolog, doctype and RDF metadata


def thinned(series: pd.Series, groups: int = 600) -> pd.Series:
    """At most ``4 * groups`` points of ``series`` for drawing: from each run of consecutive points its
    first, lowest, highest and last, so every peak and trough a reader looks for is still drawn
    (a year of minute bars would otherwise make a 20 MB page)."""
    n = len(series)
    if n <= 4 * groups:
        return series
    import numpy as np
    values = series.to_numpy(dtype=float)
    size = -(-n // groups)
    keep = set()
    for start in range(0, n, size):
        part = values[start:start + size]
        keep.update((start, start + int(np.argmin(part)), start + int(np.argmax(part)), start + len(part) - 1))
    return series.iloc[sorted(keep)]


def _monthly(table: pd.DataFrame) -> str:
    if table.empty:
        return "<p class=\"note\">not enough bars</p>"
    head = "<tr><th>year</th>" + "".join(f"<th>{m}</th>" for m in _MONTHS) + "<th>year</th></tr>"
    rows = []
    for year, row in table.iterrows():
        values = [row.get(m) for m in range(1, 13)]
        whole = math.prod(1.0 + v for v in values if v is not None and not math.isnan(v)) - 1.0
        cells = "".join(_shaded(v) for v in values)
        rows.append(f"<tr><th>{year}</th>{cells}{_shaded(whole)}</tr>")
    return f"<table>{head}{''.join(rows)}</table>"


def _shaded(v: float | None) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "<td></td>"
    strength = min(1.0, abs(v) / 0.10)  # full colour at ±10 % a month
    colour = (f"rgba(39, 174, 96, {0.15 + 0.6 * strength:.2f})" if v >= 0
              else f"rgba(192, 57, 43, {0.15 + 0.6 * strength:.2f})")
    return f"<td style=\"background:{colour}\">{_pct(v)}</td>"


def _num(x: float | None) -> str:
    return "—" if x is None else f"{x:.3f}"


def _pct(x: float | None) -> str:
    return "—" if x is None else f"{x * 100:.2f}%"
