"""`qmtl submit`: compile, replay and submit a strategy to a world; print what the world decided.

Exit status: 0 accepted, 1 rejected (compile/lint/run errors, unknown world, refused by the gateway),
2 safe mode (the gateway did not answer; a local default-safe decision was assumed).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Optional

import typer
from rich.table import Table

from qmtl.calendars import CALENDARS, DEFAULT_CALENDAR

from .formats import Format, FormatOption
from .output import err, out, print_json

if TYPE_CHECKING:  # the CLI starts without loading pandas/pydantic models it may not need
    from qmtl.runtime.metrics import Metrics
    from qmtl.runner.results import SubmitResult

EXIT_CODES = {"accepted": 0, "rejected": 1, "safe_mode": 2}




def submit_command(
    strategy_file: Path = typer.Argument(..., help="Strategy .py file."),
    world: str = typer.Option(..., "--world", "-w", help="World to submit to."),
    data: Optional[Path] = typer.Option(None, "--data", help="Bars to replay (.parquet, .csv, "
                                        ".arrow, .feather); default: seeded synthetic bars."),
    strategy: Optional[str] = typer.Option(None, "--strategy", "-s", help="Strategy class name when "
                                           "the file defines several."),
    gateway_url: Optional[str] = typer.Option(None, "--gateway-url", envvar="QMTL_GATEWAY_URL",
                                              help="Gateway base URL (default: gateway_url in "
                                              "qmtl.yml, else the embedded services in-process)."),
    embedded: bool = typer.Option(False, "--embedded", help="Start the embedded services in-process "
                                  "whatever gateway is configured."),
    batch_size: int = typer.Option(10_000, "--batch-size", min=1),
    timeout: float = typer.Option(10.0, "--timeout", help="Seconds to wait for each gateway call."),
    output: Format = FormatOption,
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar during the replay."),
    report: Optional[Path] = typer.Option(None, "--report", help="Write the replay's tear sheet "
                                          "(self-contained HTML) to this file."),
    calendar: str = typer.Option(DEFAULT_CALENDAR, "--calendar", help="Annualise the metrics for "
                                 "this market calendar: " + " | ".join(CALENDARS) + "."),
) -> None:
    """Submit STRATEGY_FILE to WORLD."""
    from qmtl.runner.runner import Runner

    if calendar not in CALENDARS:
        err.print(f"error: --calendar {calendar!r}: expected one of {', '.join(CALENDARS)}",
                  style="bold red", markup=False)
        raise typer.Exit(2)
    if report is not None and not report.parent.is_dir():
        err.print(f"error: --report {report}: no such directory {report.parent}", style="bold red",
                  markup=False)
        raise typer.Exit(2)

    if not strategy_file.is_file():
        err.print(f"error[E301]: {strategy_file}: no such file", style="bold red", markup=False)
        raise typer.Exit(1)
    if data is not None and not data.exists():
        err.print(f"error[E505]: {data}: no such data file", style="bold red", markup=False)
        raise typer.Exit(1)
    from .progress import progress_for

    result = Runner.submit(strategy_file, world, data=data, gateway_url=gateway_url,
                           strategy=strategy, batch_size=batch_size, timeout=timeout,
                           embedded=embedded, progress=progress_for(quiet), calendar=calendar)
    if output is Format.json:
        print_json(result.model_dump(mode="json"))
    else:
        print_summary(result)
    if report is not None:
        _write_report(result, report)
    raise typer.Exit(EXIT_CODES[result.status])


def _write_report(result: SubmitResult, path: Path) -> None:
    """The tear sheet, or why there is none (on stderr: stdout may be JSON)."""
    from qmtl.runtime.tearsheet import ReportUnavailable
    if result.performance is None:
        err.print(f"no report: the replay did not run ({result.downgrade_reason or result.status})",
                  markup=False, highlight=False)
        return
    try:
        written = result.report(path)
    except (ReportUnavailable, OSError) as exc:
        err.print(f"error: {exc}", style="bold red", markup=False, highlight=False)
        raise typer.Exit(2)
    err.print(f"report written to {written}", markup=False, highlight=False)


def print_summary(result: SubmitResult) -> None:
    """The human view of a submission: status, the world's decision, precheck metrics, nodes."""
    style = {"accepted": "bold green", "rejected": "bold red", "safe_mode": "bold yellow"}[result.status]
    out.print(f"{result.status.upper()}  world={result.world}  strategy={result.strategy_id or '-'}",
              style=style, markup=False, highlight=False)
    if result.downgrade_reason:
        out.print(f"  reason: {result.downgrade_reason}", markup=False, highlight=False)
    for note in result.notes:
        out.print(f"  note: {note}", markup=False, highlight=False)
    for d in result.precheck.diagnostics:
        target = err if d.severity == "error" else out
        target.print("  " + d.format(), markup=False, highlight=False)
    if result.decision is not None:
        dec = result.decision
        gate = "orders gated" if dec.orders_gated else "orders open"
        out.print(f"  decision: {dec.effective_mode} → {dec.execution_domain} ({gate}); {dec.reason}",
                  markup=False, highlight=False)
    if result.evaluation is not None:
        _print_evaluation(result)
    if result.activation is not None:
        act = result.activation
        out.print(f"  activation: active={act.get('active')} weight={act.get('weight')} "
                  f"phase={act.get('phase')}", markup=False, highlight=False)
    if result.precheck.data_source:
        out.print(f"  data: {result.precheck.data_source} ({result.precheck.bars} bars); "
                  f"returns from {result.precheck.returns_source or '— (no signal/returns output)'}",
                  markup=False, highlight=False)
        out.print(_metrics_table(result.precheck.metrics))
    if result.reused_nodes or result.new_nodes:
        out.print(f"  nodes: {len(result.reused_nodes)} reused, {len(result.new_nodes)} new",
                  markup=False)
        for label, nodes in (("reused", result.reused_nodes), ("new", result.new_nodes)):
            for n in nodes:
                out.print(f"    {label:6} {n.node_id[:19]}…  {n.op or '?':12} {n.name or ''}",
                          markup=False, highlight=False)


def _print_evaluation(result: SubmitResult) -> None:
    """The world's verdict per rule: a failed submission says which rule to work on."""
    ev = result.evaluation
    failed = ev.failed_rules()
    verdict = "passed" if ev.passed else f"failed {len(failed)} of {len(ev.rules)} rules"
    selected = f"active, weight {ev.weight:.4g}" if ev.active else "not selected"
    out.print(f"  policy: {verdict}; {selected}", markup=False, highlight=False)
    for rule in failed:
        out.print(f"    ✗ {rule.rule}: {rule.detail}", markup=False, highlight=False)


def _metrics_table(metrics: Metrics) -> Table:
    table = Table(title="precheck metrics (local; the world decides)", title_justify="left")
    table.add_column("metric")
    table.add_column("value", justify="right")
    for name in ("sharpe", "max_drawdown", "total_return", "win_rate", "profit_factor", "trades"):
        value = getattr(metrics, name)
        shown = "—" if value is None else (str(value) if isinstance(value, int) else f"{value:.4f}")
        table.add_row(name, shown)
    return table
