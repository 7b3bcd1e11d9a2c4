"""Both buses: strictly increasing seq per topic, idempotent publish, read-after, blocking read."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator

import pytest

from qmtl.services.bus import Bus, BusError, InProcessBus, RedisStreamBus, make_bus
from tests.services.conftest import REDIS_URL, unavailable

def _redis_bus() -> RedisStreamBus:
    try:
        return RedisStreamBus(REDIS_URL, prefix=f"qmtl-test:{uuid.uuid4().hex[:10]}")
    except BusError as exc:
        unavailable(f"Redis not reachable at {REDIS_URL}: {exc}")


@pytest.fixture(params=["inprocess", "redis"])
def bus(request) -> Iterator[Bus]:
    if request.param == "inprocess":
        yield InProcessBus()
        return
    b = _redis_bus()
    yield b
    keys = list(b._redis.scan_iter(f"{b.prefix}:*"))
    if keys:
        b._redis.delete(*keys)
    b.close()


def test_seq_strictly_increases_per_topic(bus: Bus) -> None:
    a1 = bus.publish("a", "T", {"i": 1}, "k1")
    b1 = bus.publish("b", "T", {"i": 1}, "k1")  # same key, other topic: a separate event
    a2 = bus.publish("a", "T", {"i": 2}, "k2")
    assert (a1.seq, a2.seq, b1.seq) == (1, 2, 1)
    assert [e.data["i"] for e in bus.read("a")] == [1, 2]


def test_idempotent_publish_returns_original(bus: Bus) -> None:
    first = bus.publish("t", "X", {"v": 1}, "same")
    again = bus.publish("t", "Y", {"v": 999}, "same")
    assert again == first
    assert len(bus.read("t")) == 1


def test_read_after_seq(bus: Bus) -> None:
    for i in range(5):
        bus.publish("t", "T", {"i": i}, f"k{i}")
    events = bus.read("t", after_seq=3)
    assert [e.seq for e in events] == [4, 5]
    assert events[0].to_json() == {"topic": "t", "type": "T", "data": {"i": 3},
                                   "idempotency_key": "k3", "seq": 4}
    assert bus.read("t", after_seq=5) == []
    assert bus.read("never-published") == []


def test_last_seq_is_the_latest_event_of_the_topic(bus: Bus) -> None:
    assert bus.last_seq("t") == 0
    for i in range(3):
        bus.publish("t", "T", {"i": i}, f"k{i}")
    bus.publish("t", "T", {"i": 0}, "k0")  # a repeat appends nothing
    bus.publish("other", "T", {}, "k")
    assert bus.last_seq("t") == 3 and bus.last_seq("other") == 1


def test_blocking_read_wakes_on_publish(bus: Bus) -> None:
    timer = threading.Timer(0.2, lambda: bus.publish("t", "T", {"late": True}, "late"))
    timer.start()
    start = time.monotonic()
    events = bus.read("t", after_seq=0, timeout=5.0)
    timer.join()
    assert [e.data for e in events] == [{"late": True}]
    assert time.monotonic() - start < 4.0


def test_blocking_read_times_out_empty(bus: Bus) -> None:
    start = time.monotonic()
    assert bus.read("quiet", timeout=0.3) == []
    assert time.monotonic() - start >= 0.25


def test_concurrent_publish_gives_unique_gapless_seq(bus: Bus) -> None:
    def worker(w: int) -> None:
        for i in range(25):
            bus.publish("c", "T", {"w": w, "i": i}, f"{w}:{i}")
            bus.publish("c", "T", {"w": w, "i": i}, f"{w}:{i}")  # duplicate: no new event

    threads = [threading.Thread(target=worker, args=(w,)) for w in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [e.seq for e in bus.read("c")] == list(range(1, 101))


def test_stored_event_is_a_copy(bus: Bus) -> None:
    data = {"x": [1]}
    bus.publish("t", "T", data, "k")
    data["x"].append(2)
    assert bus.read("t")[0].data == {"x": [1]}


def test_bad_publish_arguments(bus: Bus) -> None:
    with pytest.raises(BusError, match="idempotency_key"):
        bus.publish("t", "T", {}, "")
    with pytest.raises(BusError, match="not JSON-serialisable"):
        bus.publish("t", "T", {"f": object()}, "k")
    with pytest.raises(BusError, match="must be a dict"):
        bus.publish("t", "T", [1], "k")  # type: ignore[arg-type]


def test_make_bus_choices() -> None:
    assert isinstance(make_bus(None), InProcessBus)

    class Section:
        redis_dsn = None

    class Cfg:
        profile = "prod"
        worldservice = Section()
        gateway = Section()

    with pytest.raises(BusError, match="prod"):
        make_bus(Cfg())
    Cfg.profile = "dev"
    assert isinstance(make_bus(Cfg()), InProcessBus)


def test_redis_bus_unreachable_is_clear() -> None:
    with pytest.raises(BusError, match="cannot reach Redis"):
        RedisStreamBus("redis://127.0.0.1:1/0")
