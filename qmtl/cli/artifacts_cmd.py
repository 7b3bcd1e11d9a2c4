"""`qmtl artifacts ls|show|gc`: what the feature artifact store holds, and removing what is unused."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

from .formats import Format, FormatOnlyOption, JsonFlag
from .output import err, human_time, out, print_json

artifacts_app = typer.Typer(help="The feature artifact store: node values per (NodeID, dataset).",
                            no_args_is_help=True)

_ROOT = typer.Option(None, "--root", help="Store directory (default $QMTL_HOME/artifacts).")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def _store(root: Optional[Path]):
    from qmtl.runtime.artifacts import ArtifactStore
    return ArtifactStore(root)


def _row(a) -> dict:
    return {"node_id": a.node_id, "fingerprint": a.fingerprint, "name": a.name, "strategy": a.strategy,
            "kind": a.kind, "type": a.type, "interval": a.interval, "rows": a.rows, "bytes": a.bytes,
            "created_at": a.created_at, "last_used": a.last_used, "path": str(a.path)}


@artifacts_app.command("ls")
def ls_command(root: Optional[Path] = _ROOT, output_format: Format = FormatOnlyOption,
               as_json: bool = JsonFlag) -> None:
    """List stored artifacts: node, dataset, size, when last used."""
    as_json = as_json or output_format is Format.json
    rows = [_row(a) for a in _store(root).ls()]
    if as_json:
        print_json(rows)
        return
    table = Table(title=f"{len(rows)} artifacts, {sum(r['bytes'] for r in rows):,} bytes")
    for col in ("node", "NodeID", "dataset", "type", "rows", "bytes", "last used"):
        table.add_column(col)
    for r in rows:
        node = f"{r['strategy']}.{r['name']}" if r["kind"] != "damaged" else "(damaged: gc removes it)"
        table.add_row(node, r["node_id"][:19], r["fingerprint"][:19], r["type"] or r["kind"],
                      str(r["rows"]), f"{r['bytes']:,}", human_time(r["last_used"]))
    out.print(table)


@artifacts_app.command("show")
def show_command(node_id: str = typer.Argument(..., help="A NodeID or a prefix of one."),
                 root: Optional[Path] = _ROOT) -> None:
    """Every artifact of NODE_ID (one per dataset), with its metadata."""
    wanted = node_id if node_id.startswith("blake3:") else "blake3:" + node_id
    if len(wanted) <= len("blake3:"):
        err.print("error: give a NodeID or a prefix of one (blake3:…)", style="bold red", markup=False)
        raise typer.Exit(2)
    rows = [_row(a) for a in _store(root).ls() if a.node_id.startswith(wanted)]
    if not rows:
        err.print(f"error: no artifact of a NodeID starting with {wanted!r}", style="bold red", markup=False)
        raise typer.Exit(1)
    print_json(rows)


def parse_age(text: str) -> float:
    """``30d``, ``12h``, ``90m``, ``3600s`` or plain seconds → seconds."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhdw]?)\s*", text)
    if not m:
        raise typer.BadParameter(f"{text!r}: give a duration such as 30d, 12h, 90m or 3600s")
    return float(m.group(1)) * _UNITS[m.group(2) or "s"]


@artifacts_app.command("gc")
def gc_command(older_than: str = typer.Option("30d", "--older-than",
                                              help="Remove artifacts not written or read for this long."),
               dry_run: bool = typer.Option(False, "--dry-run", help="Only say what would go."),
               gateway_url: Optional[str] = typer.Option(
                   None, "--gateway-url", envvar="QMTL_GATEWAY_URL",
                   help="Keep every artifact whose node a strategy bound to a world uses (the "
                        "gateway's artifact index says which)."),
               root: Optional[Path] = _ROOT) -> None:
    """Remove artifacts no run has used for --older-than (never one used more recently, nor, with a
    gateway, one of a node a bound strategy uses)."""
    in_use: set[str] = set()
    if gateway_url:
        from qmtl.services.client import GatewayClient, GatewayError, GatewayUnavailable
        try:
            with GatewayClient(gateway_url) as client:
                in_use = {a["node_id"] for a in client.artifacts() if a["used_by"]}
        except (GatewayError, GatewayUnavailable) as exc:
            err.print(f"error: cannot ask the gateway which artifacts are in use: {exc}", style="bold red",
                      markup=False)
            raise typer.Exit(1)
    removed = _store(root).gc(parse_age(older_than), dry_run=dry_run, in_use=in_use)
    verb = "would remove" if dry_run else "removed"
    out.print(f"{verb} {len(removed)} artifacts, {sum(a.bytes for a in removed):,} bytes", markup=False)
    for a in removed:
        out.print(f"  {a.strategy}.{a.name} {a.node_id[:19]} {a.fingerprint[:19]} last used "
                  f"{human_time(a.last_used)}", markup=False)
