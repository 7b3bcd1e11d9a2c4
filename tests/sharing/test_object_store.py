"""The artifact store in an S3-compatible object store, through pyarrow's filesystem layer, against a
local moto S3 server (MinIO does not install here): a run fills it, a second run reads every node
from it and calls no opaque function, ``ls`` and ``gc`` work on it."""

from __future__ import annotations

import socket

import pandas as pd
import pytest

from qmtl.runtime.artifacts import ArtifactStore
from tests.sharing.test_shared_nodes import CALLS, FeatureB, _bars, compile_counted

moto_server = pytest.importorskip("moto.server", reason="moto[server] (a dev dependency) is not installed")


@pytest.fixture
def s3_uri(monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "qmtl-test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "qmtl-test")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        import pyarrow.fs as pafs
        fs = pafs.S3FileSystem(endpoint_override=f"127.0.0.1:{port}", scheme="http", region="us-east-1",
                               allow_bucket_creation=True)
        fs.create_dir("qmtl-artifacts")
        yield f"s3://qmtl-artifacts/team?endpoint_override=127.0.0.1:{port}&scheme=http&region=us-east-1"
    finally:
        server.stop()


def test_runs_share_nodes_through_an_object_store(s3_uri):
    program = compile_counted(FeatureB)
    bars = _bars(11, 400)
    scratch = program.run(bars)
    store = ArtifactStore(s3_uri)
    first = program.run(bars, store=store)
    assert set(first.sharing.written) == {"zz", "zz_s", "sig"}
    assert all(p.startswith("s3://qmtl-artifacts/team/") for p in first.sharing.written.values())
    CALLS["n"] = 0
    again = program.run(bars, store=ArtifactStore(s3_uri))
    assert CALLS["n"] == 0 and set(again.sharing.reused) == {"zz", "zz_s", "sig"}
    for name in scratch.outputs:
        pd.testing.assert_frame_equal(again[name], scratch[name], check_exact=True)
    listed = list(store.ls())
    assert {a.name for a in listed} == {"zz", "zz_s", "sig"} and all(a.bytes > 0 for a in listed)
    assert store.gc(3600) == []
    assert len(store.gc(0.0)) == 3 and list(store.ls()) == []
