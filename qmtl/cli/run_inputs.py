"""What `qmtl run` and `qmtl replay` check before anything runs, and how they write outputs: a
``FILE::Class`` strategy argument, a data location (path or object-store URI), an output directory."""

from __future__ import annotations

from pathlib import Path
from typing import Mapping

import pandas as pd
import typer

from .output import err


def _fail(message: str) -> None:
    err.print(message, style="bold red", markup=False)
    raise typer.Exit(1)


def strategy_target(arg: str) -> tuple[Path, str | None]:
    """``file.py`` or ``file.py::Class`` → (the file, the class name or None); E301 if no such file."""
    file, _, cls = arg.partition("::")
    if not Path(file).is_file():
        _fail(f"error[E301]: {file}: no such file")
    return Path(file), cls or None


def check_data(data: str) -> None:
    """A local path must exist (a URI is the filesystem's to judge when it is read)."""
    if "://" not in data and not Path(data).exists():
        _fail(f"error[E505]: {data}: no such data file or directory")


def check_out_dir(path: Path | None) -> None:
    if path is not None and path.exists() and not path.is_dir():
        _fail(f"error: --out {path}: exists and is not a directory")


def write_frames(frames: Mapping[str, pd.DataFrame], folder: Path) -> list[Path]:
    """Each output as ``<folder>/<node>.parquet``."""
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for name, frame in frames.items():
        frame.to_parquet(folder / f"{name}.parquet")
        written.append(folder / f"{name}.parquet")
    return written
