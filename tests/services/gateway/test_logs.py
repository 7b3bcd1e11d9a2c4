"""Issue 8 section 5: structured JSON logs carry the request, strategy and world ids."""

from __future__ import annotations

import json
import logging
from typing import Any, Iterator

import pytest

from qmtl.services.gateway.sample_dags import chain_dag
from qmtl.services.logs import JsonFormatter

Stack = Any


class _Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.setFormatter(JsonFormatter())
        self.lines: list[dict] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(json.loads(self.format(record)))


@pytest.fixture
def lines() -> Iterator[list[dict]]:
    handler = _Lines()
    logger = logging.getLogger("qmtl")
    old = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    yield handler.lines
    logger.removeHandler(handler)
    logger.setLevel(old)


def test_log_lines_carry_request_strategy_and_world_ids(stack: Stack, lines: list[dict]) -> None:
    stack.make_world("w1")
    resp = stack.client.post("/strategies", json={"dag": chain_dag("logs", 4), "world_ids": ["w1"]},
                             headers={"X-Request-ID": "req-42"})
    assert resp.status_code == 201 and resp.headers["x-request-id"] == "req-42"
    mine = [line for line in lines if line.get("request_id") == "req-42"]
    assert any(line["message"].startswith("submission") for line in mine), lines
    line = next(line for line in mine if line["message"].startswith("submission"))
    assert line["strategy_id"] == resp.json()["strategy_id"] and line["world_ids"] == ["w1"]
    assert line["level"] == "info" and line["logger"] == "qmtl.services.gateway.app"
    # through the proxy the world service logs under the gateway's request id, with the world id
    r = stack.client.post("/worlds/w1/evaluate", json={"strategies": [{"strategy_id": "s"}]})
    rid = r.headers["x-request-id"]
    world_lines = [line for line in lines if line.get("request_id") == rid and line["message"].startswith("evaluation")]
    assert world_lines and world_lines[0]["world_id"] == "w1"
    bad = stack.client.get("/health", headers={"X-Request-ID": "bad id with spaces"})
    assert bad.headers["x-request-id"] != "bad id with spaces"  # never echo what is not an id
