"""How soon a change of a world reaches a live process's order gate, end to end as a user runs it.

Run: ``.venv/bin/python benchmarks/bench_order_gate.py [flips]``.  The gateway (world service behind
it) runs as ``qmtl serve`` does, in a process of its own on a loopback port, with the dev profile
(SQLite under a temp home, the in-process bus).  A ``WorldGate`` follows one strategy of a paper world
in this process.  Each flip sends ``PUT /worlds/w/activation`` (off, then on, ...) and watches
``state()`` (every 0.5 ms) until the gate's answer changes: the latency is from sending the request to
the new answer.  The baseline, measured in the same run, is that request's own round trip (the time
until the operator's change is acknowledged); the ratio says how long after the acknowledgement a
live process stops or resumes its orders.  Bounded: ``flips`` changes, each waited for at most 10 s.
"""

from __future__ import annotations

import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks._machine import machine  # noqa: E402
from qmtl.live.gate import WorldGate  # noqa: E402

METRICS = {"sharpe": 2.0, "max_drawdown": 0.05, "trades": 100, "win_rate": 0.6, "profit_factor": 2.0}
EVIDENCE = {"as_of": "2024-06-01T00:00:00Z", "dataset_fingerprint": "blake3:" + "f1" * 32}


def _serve(home: str) -> tuple[subprocess.Popen, str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    env.pop("QMTL_CONFIG", None)
    proc = subprocess.Popen([sys.executable, "-m", "qmtl.services.app", "--port", str(port), "--home", home],
                            cwd=home, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            time.sleep(0.1)
    proc.kill()
    raise SystemExit("the gateway did not start within 60 s")


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def main(flips: int = 200) -> None:
    with tempfile.TemporaryDirectory() as home:
        proc, url = _serve(home)
        try:
            with httpx.Client(base_url=url, timeout=10) as client:
                client.post("/worlds", json={"id": "w"}).raise_for_status()
                client.post("/worlds/w/evaluate", json={
                    "strategies": [{"strategy_id": "s", "metrics": METRICS}], **EVIDENCE}).raise_for_status()
                acknowledged, followed = [], []
                with WorldGate(url, "w", "s") as gate:
                    for i in range(flips):
                        active = i % 2 == 0
                        started = time.perf_counter()
                        client.put("/worlds/w/activation",
                                   json={"strategy_id": "s", "active": active}).raise_for_status()
                        acknowledged.append(time.perf_counter() - started)
                        deadline = started + 10
                        while gate.state().open != active:
                            if time.perf_counter() > deadline:
                                raise SystemExit(f"flip {i}: the gate did not follow within 10 s")
                            time.sleep(0.0005)
                        followed.append(time.perf_counter() - started)
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(10)
    ms = 1e3
    print(f"# order gate: a world's change to the gate's answer, {flips} activation flips ({machine()})")
    print("| from sending `PUT /worlds/w/activation` to | p50 ms | p99 ms | max ms |")
    print("|---|---|---|---|")
    for name, values in (("its acknowledgement (baseline)", acknowledged),
                         ("the gate's new answer", followed)):
        print(f"| {name} | {statistics.median(values) * ms:.1f} | {_percentile(values, 0.99) * ms:.1f} "
              f"| {max(values) * ms:.1f} |")
    print(f"\ngate / acknowledgement, p50 = **{statistics.median(followed) / statistics.median(acknowledged):.2f}x**")


if __name__ == "__main__":
    main(*(int(a) for a in sys.argv[1:]))
