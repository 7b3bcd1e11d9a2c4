"""Putting a world into a state over HTTP (through the gateway), as an operator would."""

from __future__ import annotations

from typing import Any

import httpx

GOOD = {"sharpe": 2.0, "max_drawdown": 0.05, "trades": 100, "win_rate": 0.6, "profit_factor": 2.0}
FP = "blake3:" + "f1" * 32


def trading_world(client: httpx.Client, world: str, strategy: str, *, live: bool = False,
                  **extra: Any) -> None:
    """A world whose decision for ``strategy`` is paper (sandbox preset) or live, with it active."""
    body: dict[str, Any] = {"id": world, **extra}
    if live:
        body |= {"allow_live": True, "policy": {"thresholds": {"sharpe": {"min": 1.0}}}}
    resp = client.post("/worlds", json=body)
    assert resp.status_code == 201, resp.text
    evaluate(client, world, strategy)
    activate(client, world, strategy, True)


def evaluate(client: httpx.Client, world: str, strategy: str) -> None:
    resp = client.post(f"/worlds/{world}/evaluate", json={
        "strategies": [{"strategy_id": strategy, "metrics": GOOD}],
        "as_of": "2024-06-01T00:00:00Z", "dataset_fingerprint": FP})
    assert resp.status_code == 200, resp.text


def activate(client: httpx.Client, world: str, strategy: str, active: bool) -> None:
    resp = client.put(f"/worlds/{world}/activation", json={"strategy_id": strategy, "active": active})
    assert resp.status_code == 200, resp.text
