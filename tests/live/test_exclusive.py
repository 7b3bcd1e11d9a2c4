"""One live process per (world, strategy), on the real NATS server: a second one beside a living
holder is refused in one line within about a refresh period; a clean stop frees the lock at once; a
holder killed with SIGKILL is taken over once its lock expires (``qmtl.live.lock``).  Every wait is
bounded."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from qmtl.live.gate_state import GateState, StaticGate
from qmtl.live.lock import LOCK_TTL_S, REFRESH_S, LockHeld
from qmtl.live.runner import LiveRunner

from .conftest import NATS_URL
from .support import ANY_AGE, bars, compile_strategy, make_bars_stream, running

ROOT = Path(__file__).resolve().parents[2]
CLOSED = StaticGate(GateState(False, None, "unused"))


def _runner(compiled, scope) -> LiveRunner:
    return LiveRunner(compiled, bars(30), scope.feed("BTC"), scope.world, CLOSED, max_bar_age=ANY_AGE)


async def _streams(scope):
    import nats
    nc = await nats.connect(NATS_URL)
    await make_bars_stream(nc.jetstream(), scope)
    return nc


def test_a_second_process_beside_a_living_one_is_refused_and_a_clean_stop_frees_the_lock(scope, tmp_path):
    compiled, strategy = compile_strategy(tmp_path)
    history = tmp_path / "history.parquet"
    bars(30).to_parquet(history)

    async def scenario() -> tuple[float, str, subprocess.CompletedProcess, float]:
        nc = await _streams(scope)
        first = _runner(compiled, scope)
        async with running(first):
            started = time.monotonic()
            with pytest.raises(LockHeld) as refused:
                await asyncio.wait_for(_runner(compiled, scope).run(), LOCK_TTL_S + 10)
            waited = time.monotonic() - started
            # the command an operator runs: one error line, exit 1, no traceback
            proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "qmtl.cli.main", "run", str(strategy), "--live", "--world", scope.world,
                "--feed", scope.feed("BTC"), "--data", str(history), "--gateway-url", "http://127.0.0.1:9",
                cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            out, err = await asyncio.wait_for(proc.communicate(), 120)
            cli = subprocess.CompletedProcess("qmtl run --live", proc.returncode, out.decode(), err.decode())
        third = _runner(compiled, scope)  # the first stopped cleanly: its lock is gone at once
        started = time.monotonic()
        async with running(third):
            took = time.monotonic() - started
        await nc.close()
        return waited, str(refused.value), cli, took

    waited, message, cli, took = asyncio.run(scenario())
    assert waited < REFRESH_S + 2.0, waited  # refused on the holder's first refresh, not after the expiry
    assert scope.world in message and f"pid {os.getpid()}" in message and "stop it first" in message
    assert cli.returncode == 1 and "Traceback" not in cli.stderr, cli.stderr
    errors = [line for line in cli.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "another live process runs world " + scope.world in errors[0], cli.stderr
    assert took < REFRESH_S + 5.0, took  # warm-up and start only: no wait for a lock


def test_a_holder_killed_with_sigkill_is_taken_over_once_its_lock_expires(scope, tmp_path):
    _, strategy = compile_strategy(tmp_path)
    history = tmp_path / "history.parquet"
    bars(30).to_parquet(history)

    async def scenario() -> float:
        import nats
        from nats.js.errors import KeyNotFoundError
        from qmtl.live.lock import BUCKET, lock_key
        nc = await _streams(scope)
        holder = subprocess.Popen([sys.executable, "-m", "tests.live.live_process", str(strategy), str(history),
                                   scope.feed("BTC"), scope.world], cwd=ROOT, stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL)
        compiled = _runner_compiled(strategy)
        kv = None
        deadline = time.monotonic() + 60
        try:
            while True:  # until the process holds its lock
                assert time.monotonic() < deadline and holder.poll() is None, "the holder never took its lock"
                try:
                    kv = kv or await nc.jetstream().key_value(BUCKET)
                    await kv.get(lock_key(scope.world, _runner(compiled, scope).strategy))
                    break
                except (KeyNotFoundError, nats.js.errors.BucketNotFoundError):
                    await asyncio.sleep(0.05)
            os.kill(holder.pid, signal.SIGKILL)
            holder.wait(10)
            killed = time.monotonic()
            async with running(_runner(compiled, scope)):
                took = time.monotonic() - killed
        finally:
            if holder.poll() is None:
                holder.kill()
                holder.wait(10)
        await nc.close()
        return took

    took = asyncio.run(scenario())
    assert took < LOCK_TTL_S + REFRESH_S + 5.0, took


def _runner_compiled(strategy: Path):
    import qmtl
    return qmtl.compile(str(strategy))


def test_a_lock_bucket_made_without_expiry_gets_it_so_a_dead_holder_still_frees_the_lock(scope, tmp_path):
    """A bucket someone made without a TTL (or kept from another tool) would keep a killed holder's
    entry for ever: the lock sets the bucket's expiry before use, so the entry goes and the newcomer
    takes over within about one expiry."""
    compiled, _ = compile_strategy(tmp_path)

    async def scenario() -> tuple[float, float | None, float]:
        from qmtl.live.lock import BUCKET, Holder, ProcessLock, lock_key
        nc = await _streams(scope)
        js = nc.jetstream()
        kv = await js.create_key_value(bucket=BUCKET, history=1) if BUCKET not in {
            s.config.name.removeprefix("KV_") for s in await js.streams_info()} else await js.key_value(BUCKET)
        config = (await js.stream_info(f"KV_{BUCKET}")).config
        config.max_age = 0  # never expire: what the lock must not rely on
        await js.update_stream(config)
        strategy = _runner(compiled, scope).strategy
        dead = Holder(pid=999_999, host="gone", started_at=time.time())  # a holder that will never refresh
        await kv.create(lock_key(scope.world, strategy), dead.model_dump_json().encode())
        started = time.monotonic()
        lock = await asyncio.wait_for(ProcessLock.acquire(js, scope.world, strategy), LOCK_TTL_S + 15)
        took = time.monotonic() - started
        max_age = (await js.stream_info(f"KV_{BUCKET}")).config.max_age
        await lock.release()
        await nc.close()
        return took, max_age, lock.holder.pid

    took, max_age, pid = asyncio.run(scenario())
    assert max_age == pytest.approx(LOCK_TTL_S)
    assert pid == os.getpid()
    assert took < LOCK_TTL_S + REFRESH_S + 3.0, took
