"""The gateway (world service behind it) as a real process, ``python -m qmtl.services.app``, for tests
that kill it: ``start_gateway(home, port)`` waits until it answers ``/health``; ``stop_gateway`` ends it
(SIGTERM, then SIGKILL)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_gateway(home: Path, port: int, workers: int = 1) -> subprocess.Popen:
    """Dev defaults (or ``home/qmtl.yml``), databases under ``home``; ``workers`` serving processes."""
    env = dict(os.environ, PYTHONPATH=str(REPO))
    env.pop("QMTL_CONFIG", None)
    proc = subprocess.Popen([sys.executable, "-m", "qmtl.services.app", "--port", str(port),
                             "--home", str(home), "--workers", str(workers)], cwd=home, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"gateway exited early: {proc.stderr.read().decode()[-2000:]}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                return proc
        except httpx.HTTPError:
            time.sleep(0.1)
    proc.kill()
    raise AssertionError("gateway did not become healthy within 30 s")


def stop_gateway(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
