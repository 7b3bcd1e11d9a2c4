"""`qmtl orders` reads a world's log from the real NATS server and adds the fills up."""

from __future__ import annotations

import asyncio
import json

from typer.testing import CliRunner

from qmtl.cli.main import app
from qmtl.live.feed import BarRef
from qmtl.live.order_log import FillRecord, OrderLog, OrderRecord, fill_key, order_key

from .conftest import NATS_URL


def _order(world: str, ts: int, qty: float) -> OrderRecord:
    return OrderRecord(key=order_key("blake3:s", "blake3:n", "BTC", ts), strategy="blake3:s", node="orders",
                       node_id="blake3:n", instrument="BTC", bar_ts=ts, interval=60, qty=qty, target=qty,
                       world=world, domain="paper", fee_bps=2.0, slippage_bps=1.0,
                       bar=BarRef(stream="S", seq=1, subject="bars.BTC"), sent_at=0.0)


def _fill(order: OrderRecord, price: float, fee: float) -> FillRecord:
    return FillRecord(key=fill_key(order.key), order_key=order.key, strategy=order.strategy, node=order.node,
                      instrument="BTC", bar_ts=order.bar_ts + 60, qty=order.qty, price=price, fee=fee,
                      world=order.world, domain="paper", filled_at=0.0)


def test_orders_lists_the_log_and_the_positions_it_adds_up_to(scope):
    buy, sell = _order(scope.world, 600, 2.0), _order(scope.world, 660, -1.0)

    async def write() -> None:
        import nats
        nc = await nats.connect(NATS_URL)
        log = OrderLog(nc.jetstream(), scope.world)
        for record in (buy, _fill(buy, 10.0, 0.5), sell, _fill(sell, 12.0, 0.25), _fill(sell, 12.0, 0.25)):
            await log.append(record)  # the last one repeats a key: the server keeps the first
        await nc.close()

    asyncio.run(write())
    cli = CliRunner()
    got = cli.invoke(app, ["orders", scope.world, "--format", "json", "--nats", NATS_URL])
    assert got.exit_code == 0, got.output
    doc = json.loads(got.stdout)
    assert [(r["kind"], r["qty"]) for r in doc["records"]] == [("order", 2.0), ("fill", 2.0), ("order", -1.0),
                                                               ("fill", -1.0)]
    (position,) = doc["positions"]
    assert position["qty"] == 1.0 and position["fees"] == 0.75
    assert position["cash"] == -(2 * 10.0 + 0.5) + (12.0 - 0.25) and position["pnl"] == position["cash"] + 12.0
    text = cli.invoke(app, ["orders", scope.world, "--nats", NATS_URL])
    assert text.exit_code == 0 and "position s orders BTC: +1 units, 2 fills" in text.stdout
    assert cli.invoke(app, ["orders", scope.world, "--domain", "paper.x"]).exit_code == 2
    empty = cli.invoke(app, ["orders", scope.world, "--domain", "live", "--nats", NATS_URL])
    assert empty.exit_code == 0 and f"no orders in {scope.world}/live" in empty.stdout


def test_orders_follow_prints_each_record_as_it_is_appended(scope):
    import select
    import signal
    import subprocess
    import sys

    first, second = _order(scope.world, 600, 1.0), _order(scope.world, 660, -1.0)

    async def append(record) -> None:
        import nats
        nc = await nats.connect(NATS_URL)
        await OrderLog(nc.jetstream(), scope.world).append(record)
        await nc.close()

    def line(proc) -> dict:
        ready, _, _ = select.select([proc.stdout], [], [], 60)
        assert ready, "qmtl orders --follow printed nothing within 60 s"
        return json.loads(proc.stdout.readline())

    asyncio.run(append(first))
    proc = subprocess.Popen([sys.executable, "-m", "qmtl.cli.main", "orders", scope.world, "--follow",
                             "--format", "json", "--nats", NATS_URL], stdout=subprocess.PIPE, text=True)
    try:
        assert line(proc)["key"] == first.key  # what the log held
        asyncio.run(append(second))
        assert line(proc)["key"] == second.key  # then what came
        proc.send_signal(signal.SIGINT)
        assert proc.wait(30) == 0
    finally:
        proc.kill()
        proc.wait()
