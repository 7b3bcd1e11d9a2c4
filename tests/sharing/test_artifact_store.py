"""The artifact store on its own: round trips are exact, a writer killed with SIGKILL mid-write never
leaves a file a reader would take for an artifact, ``gc`` removes only what was unused for its age."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from qmtl.runtime.artifacts import ArtifactStore, NotStorable, Series

NODE = "blake3:" + "ab" * 32
DATA = "blake3:" + "cd" * 32


def _series(n: int) -> Series:
    rng = np.random.default_rng(n)
    values = rng.standard_normal(n)
    values[::7] = np.nan
    values[3::11] = -0.0
    return Series(np.array(["X"] * (n // 2) + [None] * (n - n // 2), dtype=object),
                  np.arange(n, dtype=np.int64) * 60, {"value": values})


def test_a_round_trip_is_bit_exact(tmp_path):
    store = ArtifactStore(tmp_path)
    s = _series(1001)
    store.write(NODE, DATA, s, kind="series", type_="series<f64>", interval=60)
    back = store.read(NODE, DATA)
    assert back.ts.tobytes() == s.ts.tobytes()
    assert back.columns["value"].tobytes() == s.columns["value"].tobytes()
    assert list(back.keys) == list(s.keys)
    [info] = store.ls()
    assert (info.node_id, info.fingerprint, info.rows) == (NODE, DATA, 1001)


def test_opaque_rows_are_stored_only_when_json_gives_them_back(tmp_path):
    store = ArtifactStore(tmp_path)
    rows = [1.5, float("nan"), {"a": -0.0, "b": True, "c": None}, 7, np.float64(0.1)]
    s = Series(np.array([None] * 5, dtype=object), np.arange(5, dtype=np.int64), {"row": rows})
    store.write(NODE, DATA, s, kind="opaque", type_="opaque", interval=60)
    back = store.read(NODE, DATA).columns["row"]
    assert back[0] == 1.5 and np.isnan(back[1]) and back[3] == 7 and back[4] == 0.1
    assert back[2] == {"a": 0.0, "b": True, "c": None} and str(back[2]["a"]) == "-0.0"
    bad = Series(np.array([None], dtype=object), np.zeros(1, np.int64), {"row": [(1, 2)]})
    with pytest.raises(NotStorable):
        store.write(NODE, "blake3:" + "ee" * 32, bad, kind="opaque", type_="opaque", interval=60)
    assert not store.has(NODE, "blake3:" + "ee" * 32)


_WRITER = """
import sys
import numpy as np
from qmtl.runtime.artifacts import ArtifactStore, Series
store = ArtifactStore(sys.argv[1])
n = 400_000
s = Series(np.array([None] * n, dtype=object), np.arange(n, dtype=np.int64), {"value": np.arange(n) * 0.5})
i = 0
print("ready", flush=True)
while True:
    store.write("blake3:" + f"{i % 50:02x}" * 32, "blake3:" + "cd" * 32, s, kind="series",
                type_="series<f64>", interval=60)
    i += 1
"""


def test_a_writer_killed_mid_write_leaves_only_whole_artifacts(tmp_path):
    root = tmp_path / "store"
    for delay in (0.3, 0.7, 1.1):
        proc = subprocess.Popen([sys.executable, "-c", _WRITER, str(root)], stdout=subprocess.PIPE,
                                text=True)
        try:
            assert proc.stdout.readline().strip() == "ready"
            time.sleep(delay)
        finally:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)
    store = ArtifactStore(root)
    found = list(store.ls())
    assert found, "the writer wrote nothing before it was killed"
    for info in found:  # everything listed is whole and readable
        s = store.read(info.node_id, info.fingerprint)
        assert len(s.ts) == 400_000 and s.columns["value"][-1] == 399_999 * 0.5
    assert not any(Path(info.path).name.startswith(".") for info in found)  # temporary files are not listed
    removed = store.gc(0.0)  # a killed writer's temporary file goes with everything unused for 0 s
    assert not list(root.glob("*/*/.tmp-*")) and len(removed) == len(found)


def test_gc_keeps_what_was_used_within_its_age(tmp_path):
    store = ArtifactStore(tmp_path)
    old, fresh = "blake3:" + "01" * 32, "blake3:" + "02" * 32
    for node in (old, fresh):
        store.write(node, DATA, _series(10), kind="series", type_="series<f64>", interval=60)
    past = time.time() - 10 * 86400
    os.utime(store.path(old, DATA), (past, past))
    os.utime(store.path(fresh, DATA), (past, past))
    store.read(fresh, DATA)  # reading it marks it used
    assert [a.node_id for a in store.gc(86400, dry_run=True)] == [old]
    assert store.has(old, DATA)
    removed = store.gc(86400)
    assert [a.node_id for a in removed] == [old] and removed[0].bytes > 0
    assert not store.has(old, DATA) and store.has(fresh, DATA)


def test_a_damaged_file_is_listed_as_such_and_removed_by_gc(tmp_path):
    store = ArtifactStore(tmp_path)
    store.write(NODE, DATA, _series(50), kind="series", type_="series<f64>", interval=60)
    path = Path(store.path(NODE, DATA))
    path.write_bytes(path.read_bytes()[:40])  # truncated
    stray = tmp_path / "zz" / "notanid" / "foo.parquet"  # not an artifact's key: left alone
    stray.parent.mkdir(parents=True)
    stray.write_bytes(b"x")
    [info] = list(store.ls())
    assert (info.kind, info.node_id, info.fingerprint) == ("damaged", NODE, DATA)
    assert [a.kind for a in store.gc(30 * 86400)] == ["damaged"] and not path.exists()  # whatever its age
    assert stray.exists()
