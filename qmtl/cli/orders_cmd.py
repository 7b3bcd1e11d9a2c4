"""`qmtl orders WORLD [--domain paper] [--follow] [--format json]`: a world's orders and fills, read
from its log on JetStream, then the positions and PnL they add up to (``qmtl.live.books``)."""

from __future__ import annotations

import asyncio
import json
from datetime import datetime, timezone

import typer

from .formats import Format, FormatOption
from .output import err, out, print_json


def orders_command(
    world: str = typer.Argument(..., help="The world whose log to read."),
    domain: str = typer.Option("paper", "--domain", help="paper or live."),
    follow: bool = typer.Option(False, "--follow", "-f", help="Keep printing records as they are appended "
                                "(Ctrl-C stops)."),
    fmt: Format = FormatOption,
    nats_url: str = typer.Option("nats://127.0.0.1:4222", "--nats", envvar="QMTL_NATS_URL",
                                 help="The NATS server holding the log."),
) -> None:
    """Print WORLD's orders and fills in DOMAIN, then its positions (not with --follow)."""
    from qmtl.live.connection import NatsUnreachable
    from qmtl.live.order_log import LogError
    if domain not in ("paper", "live"):
        err.print(f"error: --domain {domain!r}: expected paper or live", style="bold red", markup=False)
        raise typer.Exit(2)
    try:
        asyncio.run(_show(nats_url, world, domain, follow, fmt))
    except (LogError, NatsUnreachable) as exc:
        err.print(f"error: {exc}", style="bold red", markup=False)
        raise typer.Exit(2 if isinstance(exc, LogError) else 1)
    except KeyboardInterrupt:
        pass


async def _show(server: str, world: str, domain: str, follow: bool, fmt: Format) -> None:
    from qmtl.live.books import book
    from qmtl.live.connection import connect
    from qmtl.live.order_log import OrderLog, check_token
    check_token(world, "world")  # a bad name is an error before connecting
    check_token(domain, "domain")
    nc = await connect(server, "qmtl-orders")
    try:
        log = OrderLog(nc.jetstream(), world)
        records = []
        async for record in log.read(domain, follow=follow):
            if follow:
                _print_record(record, fmt)
            records.append(record)
    finally:
        await nc.close()
    positions = book(records)
    if fmt == Format.json:
        print_json({"world": world, "domain": domain, "records": [_json(r) for r in records],
                    "positions": [{"strategy": s, "node": n, "instrument": i, "qty": p.qty, "cash": p.cash,
                                   "fees": p.fees, "pnl": p.pnl, "fills": p.fills}
                                  for (s, n, i), p in positions.items()]})
        return
    for record in records:
        _print_record(record, fmt)
    if not records:
        out.print(f"no orders in {world}/{domain}", markup=False)
    for (strategy, node, instrument), p in positions.items():
        out.print(f"position {strategy.removeprefix('blake3:')[:12]} {node} {instrument}: {p.qty:+g} units, "
                  f"{p.fills} fills, fees {p.fees:.4f}, pnl {p.pnl:+.4f} (marked at the last fill)", markup=False)


def _json(record) -> dict:
    from qmtl.live.order_log import OrderRecord
    return {"kind": "order" if isinstance(record, OrderRecord) else "fill", **record.model_dump(mode="json")}


def _print_record(record, fmt: Format) -> None:
    from qmtl.live.order_log import OrderRecord
    if fmt == Format.json:
        print(json.dumps(_json(record)), flush=True)
        return
    bar = datetime.fromtimestamp(record.bar_ts, timezone.utc).strftime("%Y-%m-%d %H:%M:%S")
    who = f"{record.strategy.removeprefix('blake3:')[:12]} {record.node} {record.instrument}"
    if isinstance(record, OrderRecord):
        out.print(f"order {bar} {who}: {record.qty:+g} (target {record.target:g})  {record.key}", markup=False)
    else:
        out.print(f"fill  {bar} {who}: {record.qty:+g} @ {record.price:.6g} fee {record.fee:.6g}  {record.key}",
                  markup=False)
