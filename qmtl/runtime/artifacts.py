"""The feature artifact store: a value series per ``(NodeID, dataset_fingerprint)``, written once.

docs/design.md "Shared execution": a NodeID determines its values on a given dataset, so once a run
computed a node's value series over some bars, any later run (another strategy, another world) over
the same bars reads it instead of computing it.  An artifact holds one value's *series* (every entry,
not the rows a node emitted), per run key, as Parquet columns:

* ``key`` (the instrument, null for a single stream) and ``ts`` (the entry's bar-open time);
* ``value`` for a series, ``c:<column>`` per column of a frame, or ``row`` (JSON text) for the rows
  of an opaque function — kept only when every row survives JSON unchanged (numbers, booleans, None,
  and dicts of those), so a reused row is the row the function returned.

Layout under the root: ``<first 2 hex of the NodeID>/<NodeID hex>/<fingerprint hex>.parquet``, in
a directory or an object store (``artifact_files``: a reader sees a whole artifact or none, even
after ``kill -9`` mid-write; two writers of one key write the same bytes and the last one wins).
A file's mtime is when it was last written or read (``gc`` keeps what was used within its age).
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from typing import Any, Iterator

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from qmtl import paths

from .artifact_files import files_at

_FORMAT = "qmtl.artifact/1"
_PREFIX = "blake3:"


@dataclass(frozen=True)
class ArtifactInfo:
    """What ``qmtl artifacts ls`` shows of one artifact (read from its file's metadata)."""

    node_id: str
    fingerprint: str
    path: str          # a file path, or a URI in an object store
    bytes: int
    rows: int
    kind: str          # series | frame | opaque
    type: str          # the value's IR type
    interval: int      # the value's clock
    name: str          # the node (output) name it was written for
    strategy: str
    created_at: float
    last_used: float
    extent: dict[str, list] = field(default_factory=dict)  # source NodeID → [[key, last bar ts], …]
    key: str = ""      # its key under the store's root
    tags: tuple[str, ...] = ()   # the node's labels (``Node(tags=...)``): what tag queries select
    sources: tuple[dict, ...] = ()  # the sources its data comes from (``reuse.source_specs``)


@dataclass(frozen=True)
class Series:
    """One value's entries for every run key: ``columns`` maps ``value`` / ``c:<col>`` / ``row``."""

    keys: np.ndarray          # object array: run key per entry (None for a single stream)
    ts: np.ndarray            # int64 bar-open times
    columns: dict[str, Any]   # numpy arrays (numbers) or a list of rows (opaque)

    def for_key(self, key: Any) -> tuple[np.ndarray, dict[str, Any]]:
        """This key's entries, in time order (they were written per key, in order)."""
        mask = np.asarray(self.keys == key, dtype=bool)  # elementwise on the object array (None too)
        cols = {c: (v[mask] if isinstance(v, np.ndarray) else [r for r, m in zip(v, mask) if m])
                for c, v in self.columns.items()}
        return self.ts[mask], cols


class NotStorable(ValueError):
    """The rows of an opaque value cannot be stored exactly (objects JSON would change)."""


class ArtifactStore:
    """Artifacts under ``root``: a directory (the embedded default: ``$QMTL_HOME/artifacts``) or a
    URI pyarrow's filesystem layer opens (``s3://bucket/prefix?endpoint_override=…``)."""

    def __init__(self, root: str | os.PathLike[str] | None = None) -> None:
        self.files = files_at(root if root is not None else paths.home() / "artifacts")
        self.root = self.files.root

    # -- keys -----------------------------------------------------------------------------------------
    @staticmethod
    def key(node_id: str, fingerprint: str) -> str:
        node = _hex(node_id)
        return f"{node[:2]}/{node}/{_hex(fingerprint)}.parquet"

    def path(self, node_id: str, fingerprint: str) -> str:
        """Where the artifact is (or would be): a file path, or a URI in an object store."""
        return self.files.location(self.key(node_id, fingerprint))

    def has(self, node_id: str, fingerprint: str) -> bool:
        return self.files.exists(self.key(node_id, fingerprint))

    def size(self, node_id: str, fingerprint: str) -> int:
        return self.files.stat(self.key(node_id, fingerprint))[0]

    # -- write ----------------------------------------------------------------------------------------
    def write(self, node_id: str, fingerprint: str, series: Series, *, kind: str, type_: str,
              interval: int, name: str = "", strategy: str = "", extent: dict | None = None,
              tags: tuple[str, ...] = (), sources: list[dict] | None = None) -> str:
        """Store ``series`` under the key, whole or not at all (``artifact_files``)."""
        table = _to_table(series, kind)
        meta = {"format": _FORMAT, "node_id": node_id, "fingerprint": fingerprint, "kind": kind,
                "type": type_, "interval": interval, "name": name, "strategy": strategy,
                "created_at": time.time(), "extent": extent or {}, "tags": list(tags),
                "sources": sources or []}
        table = table.replace_schema_metadata({"qmtl": json.dumps(meta)})
        key = self.key(node_id, fingerprint)
        self.files.write(key, lambda out: pq.write_table(table, out, compression="zstd"))
        return self.files.location(key)

    # -- read -----------------------------------------------------------------------------------------
    def read(self, node_id: str, fingerprint: str) -> Series:
        key = self.key(node_id, fingerprint)
        table = pq.read_table(self.files.open(key))
        self.files.touch(key)  # last used: gc keeps what runs read
        meta = _meta(table.schema)
        if meta.get("node_id") != node_id or meta.get("fingerprint") != fingerprint:
            raise ValueError(f"{self.files.location(key)}: holds {meta.get('node_id')} / "
                             f"{meta.get('fingerprint')}, not {node_id} / {fingerprint}")
        return _from_table(table, meta["kind"])

    def ls(self) -> Iterator[ArtifactInfo]:
        for key in self.files.keys():
            info = self._info(key)
            if info is not None:
                yield info

    def _info(self, key: str) -> ArtifactInfo | None:
        try:
            size, mtime = self.files.stat(key)
        except OSError:
            return None  # vanished under a concurrent gc
        try:
            pf = pq.ParquetFile(self.files.open(key))
            meta = _meta(pf.schema_arrow)
        except (OSError, pa.ArrowException, ValueError, KeyError):
            # a damaged file (truncated, overwritten by hand): listed as such, so gc can remove it;
            # no run reads it (a run reading its key recomputes and rewrites it)
            parts = key.split("/")
            return ArtifactInfo(_PREFIX + parts[-2], _PREFIX + parts[-1].removesuffix(".parquet"),
                                self.files.location(key), size, 0, "damaged", "", 0, "", "", mtime, mtime,
                                {}, key)
        return ArtifactInfo(meta["node_id"], meta["fingerprint"], self.files.location(key), size,
                            pf.metadata.num_rows, meta["kind"], meta["type"], int(meta["interval"]),
                            meta.get("name", ""), meta.get("strategy", ""), float(meta["created_at"]),
                            mtime, meta.get("extent") or {}, key, tuple(meta.get("tags") or ()),
                            tuple(meta.get("sources") or ()))

    def of_node(self, node_id: str) -> list[ArtifactInfo]:
        """Every artifact of one NodeID (one per dataset it was computed on)."""
        node = _hex(node_id)
        infos = (self._info(k) for k in self.files.keys(f"{node[:2]}/{node}"))
        return [i for i in infos if i is not None]

    def gc(self, older_than_s: float, dry_run: bool = False,
           in_use: frozenset[str] | set[str] = frozenset()) -> list[ArtifactInfo]:
        """Remove artifacts neither written nor read for ``older_than_s`` seconds, except those of the
        NodeIDs ``in_use`` (a strategy bound to a world uses them; the gateway's index says which),
        damaged files, and leftover temporary files of writers that died; returns what was (or would
        be) removed."""
        cutoff = time.time() - older_than_s
        # a damaged file under an artifact's name is never one being written (writes are atomic):
        # it goes whatever its age
        removed = [a for a in self.ls()
                   if a.kind == "damaged" or (a.last_used < cutoff and a.node_id not in in_use)]
        if not dry_run:
            for a in removed:
                self.files.delete(a.key)
            for key in self.files.stale_temporaries(cutoff):
                self.files.delete(key)
        return removed


def _hex(digest_: str) -> str:
    text = digest_.removeprefix(_PREFIX)
    if not text or any(c not in "0123456789abcdef" for c in text):
        raise ValueError(f"not a BLAKE3 digest: {digest_!r}")
    return text


def _meta(schema: pa.Schema) -> dict[str, Any]:
    raw = (schema.metadata or {}).get(b"qmtl")
    meta = json.loads(raw) if raw else {}
    if meta.get("format") != _FORMAT:
        raise ValueError("not a qmtl artifact")
    return meta


def _to_table(series: Series, kind: str) -> pa.Table:
    cols: dict[str, Any] = {"key": pa.array([None if k is None else str(k) for k in series.keys],
                                            type=pa.string()),
                            "ts": pa.array(series.ts, type=pa.int64())}
    for name, values in series.columns.items():
        if kind == "opaque":
            cols[name] = pa.array([row_json(r) for r in values], type=pa.string())
        else:
            cols[name] = pa.array(values)
    return pa.table(cols)


def _from_table(table: pa.Table, kind: str) -> Series:
    keys = np.array(table.column("key").to_pylist(), dtype=object)
    ts = table.column("ts").to_numpy()
    columns: dict[str, Any] = {}
    for name in table.column_names:
        if name in ("key", "ts"):
            continue
        if kind == "opaque":
            columns[name] = [json.loads(r) for r in table.column(name).to_pylist()]
        else:
            columns[name] = table.column(name).to_numpy(zero_copy_only=False)
    return Series(keys, ts, columns)


_ROW_SCALARS = (float, int, bool, type(None), str)


def row_json(row: Any) -> str:
    """A row as JSON text, only when reading it back gives the same row (same values, same bits;
    numpy scalars come back as the Python numbers they equal)."""
    row = {k: _py(v) for k, v in row.items()} if type(row) is dict else _py(row)
    if not _plain(row):
        raise NotStorable(f"a row of type {type(row).__name__} does not survive JSON unchanged")
    return json.dumps(row, allow_nan=True)


def _py(v: Any) -> Any:
    return v.item() if isinstance(v, np.generic) else v


def _plain(row: Any) -> bool:
    """JSON gives back exactly these (floats by their shortest repr, NaN/±inf/-0.0 included)."""
    if type(row) is dict:
        return all(type(k) is str and type(v) in _ROW_SCALARS for k, v in row.items())
    return type(row) in _ROW_SCALARS
