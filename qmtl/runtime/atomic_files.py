"""Writing a file whole or not at all: into a temp file beside it, then a rename over it.

A reader never sees half a file, and a writer killed midway leaves only its temp file (which the
artifact store's ``gc`` recognises by name).  ``durable`` also fsyncs the file before the rename and
its directory after, so the rename survives a power loss, not only a killed process: artifacts are
shared across runs and machines and must be; a run's output files are rewritten by a resumed run.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import BinaryIO, Callable


def write_atomically(path: Path, data: bytes | Callable[[BinaryIO], None], temp: Path | None = None,
                     durable: bool = False) -> None:
    """``path`` holds ``data`` (bytes, or a function writing to the open file) whole or not at all;
    ``temp`` is the temp file's path, in ``path``'s directory, unique to this writer (by default
    named for this process and thread)."""
    temp = temp or path.with_name(f"{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    try:
        with open(temp, "wb") as fh:
            if isinstance(data, bytes):
                fh.write(data)
            else:
                data(fh)
            if durable:
                fh.flush()
                os.fsync(fh.fileno())
        os.replace(temp, path)
    finally:
        temp.unlink(missing_ok=True)
    if durable:
        fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
