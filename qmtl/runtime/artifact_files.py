"""Where artifact files live: a local directory, or any filesystem pyarrow reaches (S3-compatible
object stores, GCS, HDFS) named by a URI.  ``files_at(root)`` picks one; both take keys relative to
the root (``ab/abcd…/ef01….parquet``) and offer the few operations the store needs.

A whole artifact or none is what a reader must see:

* locally, a file is written under a temporary name in its final directory, fsync'd, renamed over
  the final name, and the directory fsync'd (``kill -9`` at any point leaves at most a temporary
  file, which no listing returns and ``gc`` removes);
* in an object store, an object becomes visible only when its upload completes, so it is written
  under its final key directly.  Object stores cannot touch an object's time on read, so there "last
  used" is when it was written.
"""

from __future__ import annotations

import os
import re
import time
import uuid
from pathlib import Path
from typing import Any, Callable, Iterator, Protocol

import pyarrow.fs as pafs

from .atomic_files import write_atomically

TEMP_PREFIX = ".tmp-"
#: an artifact's key: ``<2 hex>/<64 hex NodeID>/<64 hex fingerprint>.parquet`` (anything else under
#: the root is not an artifact and is left alone)
_KEY = re.compile(r"^([0-9a-f]{2})/\1[0-9a-f]{62}/[0-9a-f]{64}\.parquet$")


def is_key(key: str) -> bool:
    return bool(_KEY.match(key))


class ArtifactFiles(Protocol):
    root: str

    def location(self, key: str) -> str: ...
    def exists(self, key: str) -> bool: ...
    def write(self, key: str, write: Callable[[Any], None]) -> None: ...
    def open(self, key: str) -> Any: ...
    def stat(self, key: str) -> tuple[int, float]: ...
    def touch(self, key: str) -> None: ...
    def keys(self, under: str = "") -> Iterator[str]: ...
    def delete(self, key: str) -> None: ...
    def stale_temporaries(self, before: float) -> list[str]: ...


def files_at(root: str | os.PathLike[str]) -> ArtifactFiles:
    text = os.fspath(root)
    if "://" in text and not text.startswith("file://"):
        fs, base = pafs.FileSystem.from_uri(text)
        return ObjectFiles(fs, base.rstrip("/"), text)
    return LocalFiles(Path(text.removeprefix("file://")))


class LocalFiles:
    def __init__(self, root: Path) -> None:
        self.base = root
        self.root = str(root)

    def location(self, key: str) -> str:
        return str(self.base / key)

    def exists(self, key: str) -> bool:
        return (self.base / key).is_file()

    def write(self, key: str, write: Callable[[Any], None]) -> None:
        final = self.base / key
        final.parent.mkdir(parents=True, exist_ok=True)
        write_atomically(final, write, final.parent / f"{TEMP_PREFIX}{uuid.uuid4().hex}{final.suffix}",
                         durable=True)

    def open(self, key: str) -> Any:
        return str(self.base / key)

    def stat(self, key: str) -> tuple[int, float]:
        st = (self.base / key).stat()
        return st.st_size, st.st_mtime

    def touch(self, key: str) -> None:
        os.utime(self.base / key)

    def keys(self, under: str = "") -> Iterator[str]:
        top = self.base / under
        if not top.is_dir():
            return
        pattern = "*.parquet" if under else "*/*/*.parquet"
        for path in sorted(top.glob(pattern)):
            key = path.relative_to(self.base).as_posix()
            if is_key(key):
                yield key

    def delete(self, key: str) -> None:
        path = self.base / key
        path.unlink(missing_ok=True)
        for folder in (path.parent, path.parent.parent):  # drop directories left empty
            try:
                folder.rmdir()
            except OSError:
                break

    def stale_temporaries(self, before: float) -> list[str]:
        if not self.base.is_dir():
            return []
        return [str(p.relative_to(self.base)) for p in self.base.glob(f"*/*/{TEMP_PREFIX}*")
                if p.stat().st_mtime < before]


class ObjectFiles:
    def __init__(self, fs: pafs.FileSystem, base: str, uri: str) -> None:
        self.fs, self.base, self.root = fs, base, uri

    def _path(self, key: str) -> str:
        return f"{self.base}/{key}"

    def location(self, key: str) -> str:
        return f"{self.root.split('?', 1)[0].rstrip('/')}/{key}"

    def exists(self, key: str) -> bool:
        return self.fs.get_file_info(self._path(key)).type == pafs.FileType.File

    def write(self, key: str, write: Callable[[Any], None]) -> None:
        with self.fs.open_output_stream(self._path(key)) as out:  # visible once the upload completes
            write(out)

    def open(self, key: str) -> Any:
        return self.fs.open_input_file(self._path(key))

    def stat(self, key: str) -> tuple[int, float]:
        info = self.fs.get_file_info(self._path(key))
        return info.size, info.mtime.timestamp() if info.mtime else time.time()

    def touch(self, key: str) -> None:
        pass  # object stores keep no access time; "last used" is the write time

    def keys(self, under: str = "") -> Iterator[str]:
        selector = pafs.FileSelector(self._path(under).rstrip("/"), recursive=True, allow_not_found=True)
        for info in sorted(self.fs.get_file_info(selector), key=lambda i: i.path):
            key = info.path[len(self.base) + 1:]
            if info.type == pafs.FileType.File and is_key(key):
                yield key

    def delete(self, key: str) -> None:
        try:
            self.fs.delete_file(self._path(key))
        except FileNotFoundError:
            pass

    def stale_temporaries(self, before: float) -> list[str]:
        return []  # nothing is written under a temporary name here
