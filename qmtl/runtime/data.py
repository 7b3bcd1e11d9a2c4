"""Bar data in, validated column arrays out: the runtime's only door for market data.

``load`` accepts a pandas DataFrame, a pyarrow Table, or a path to a CSV, Parquet or Arrow IPC/Feather
file, and returns a ``Dataset``: one ``Stream`` of column arrays per instrument (``ts`` as int64 epoch
seconds, every other numeric column as float64).  Arrays are views of the source wherever that is
possible (a single-chunk Arrow column without nulls, a float64 pandas column, a contiguous run of one
symbol), because the runtime moves them straight into Numba kernels and a copy of a large history is
the cost we are trying not to pay.

Everything the user can get wrong raises ``DataError`` with a ``Diagnostic`` whose ``loc`` names the
file (or ``<DataFrame>``/``<Table>``) and whose message names the problem: E501 no usable ``ts``
column (including integers that are milliseconds, not seconds), E502 unsorted or duplicate
timestamps, E503 NaN/null/infinite in a required field, prices that are not a bar's (high below
low, open or close outside [low, high]: ``bar_shape``, the live feed's rule too) or no bars at all,
E505 unreadable file or unknown format.  ``loc`` points at the strategy line that needs the data when there is one (E506, raised by
``binding``; its message then names the data source).
(E504, a binding that selects nothing, is raised by ``qmtl.runtime.binding``.)
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Collection, Iterator, Mapping

import numpy as np
import pandas as pd
import pyarrow as pa

from qmtl.ir.diagnostics import CompileError, Diagnostic
from qmtl.ir.module import Loc

from .bar_shape import first_misshapen, ohlc_problem
from .column_checks import first_not_finite, first_outside, scan_times

BAR_FIELDS = ("open", "high", "low", "close", "volume")
#: Fields that may never hold NaN/null: a bar without a price is a data error, not a missing value.
#: Extra columns (signals, sentiment scores, …) may be sparse, so they are not checked.
REQUIRED_FIELDS = BAR_FIELDS
_NS_PER_S = 1_000_000_000
#: Integer ``ts`` outside [1900-01-01, 2286-11-20] cannot be epoch seconds of a real bar: it is almost
#: always milliseconds (or micro/nanoseconds) loaded as-is, which would only fail much later when a
#: service turns it into a date.  Checked at load so the error names the file and the fix.
_MIN_EPOCH_S = -2_208_988_800
_MAX_EPOCH_S = 10_000_000_000
_INT64 = np.iinfo(np.int64)


class DataError(CompileError):
    """Bad market data: carries one ``Diagnostic`` (E501–E505) naming the source and the problem."""

    def __init__(self, code: str, source: str, message: str, loc: Loc | None = None):
        self.code = code
        self.source = source
        # The location names the data source unless the error points elsewhere (E506 points at the
        # strategy line); only then does the message need to say which data it is about.
        text = message if loc is None or loc.file == source else f"{source}: {message}"
        super().__init__(Diagnostic(code, text, loc or Loc(source, 0)))


@dataclass(frozen=True)
class Stream:
    """One instrument's bars: ``columns['ts']`` (int64, strictly increasing) plus numeric fields
    (float64, or integers as the source had them).

    ``tags`` are what bindings and tag queries match against (the symbol and, for data bound by a
    dict, the dict key).  ``key`` names the stream in results (the symbol, else the first tag).
    ``grid``: the greatest common divisor of the first ``ts`` and every step between bars, found by
    the loader's one pass over ``ts`` (``scan_times``), so that binding can tell the bars already lie
    on an interval's grid without another pass over millions of timestamps; 0 when not known.
    """

    columns: Mapping[str, np.ndarray]
    symbol: str | None = None
    tags: tuple[str, ...] = ()
    grid: int = 0

    @property
    def ts(self) -> np.ndarray:
        return self.columns["ts"]

    @property
    def fields(self) -> tuple[str, ...]:
        return tuple(c for c in self.columns if c != "ts")

    @property
    def key(self) -> str | None:
        return self.symbol if self.symbol is not None else (self.tags[0] if self.tags else None)

    def __len__(self) -> int:
        return len(self.ts)

    def with_tags(self, tags: tuple[str, ...]) -> "Stream":
        return Stream(self.columns, self.symbol, tags, self.grid)

    def on_grid_known(self, interval: int) -> bool | None:
        """Whether every bar opens on a multiple of ``interval`` seconds, from ``grid`` (None: not
        known; the caller looks at the timestamps)."""
        return self.grid % interval == 0 if self.grid > 0 else None

    def to_frame(self) -> pd.DataFrame:
        """The bars as a DataFrame indexed by ``ts`` (what a compute function's view shows)."""
        fields = {c: self.columns[c] for c in self.fields}
        return pd.DataFrame(fields, index=pd.Index(self.ts, name="ts"))


@dataclass(frozen=True)
class Dataset:
    """Validated bars of one source, one ``Stream`` per symbol (a single stream when there is no
    ``symbol`` column)."""

    source: str
    streams: tuple[Stream, ...]
    has_symbols: bool = False
    fields: tuple[str, ...] = field(default=())

    @property
    def symbols(self) -> tuple[str, ...]:
        return tuple(s.symbol for s in self.streams if s.symbol is not None)

    def stream(self, symbol: str | None = None) -> Stream:
        if symbol is None and len(self.streams) == 1:
            return self.streams[0]
        for s in self.streams:
            if s.symbol == symbol:
                return s
        raise KeyError(f"{self.source}: no symbol {symbol!r} (have {list(self.symbols)})")


# --- reading -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Bars:
    """A data location and a time range: only bars with ``start <= ts < end`` (epoch seconds; None:
    unbounded) are read, filtered while the files are scanned (a hive tree's partitions and a Parquet
    file's row groups outside the range are skipped).  Build it with ``Bars.between``."""

    location: str
    start: int | None = None
    end: int | None = None
    #: a directory's files as one ``pyarrow.dataset``, listed once (``opened``), not part of its identity
    dataset: Any = field(default=None, compare=False, repr=False)

    @classmethod
    def between(cls, location: str | Path, start: Any = None, end: Any = None) -> "Bars":
        """``start``/``end`` as epoch seconds, or anything ``pandas.Timestamp`` reads (naive is UTC)."""
        lo, hi = _epoch_s(start, "start"), _epoch_s(end, "end")
        if lo is not None and hi is not None and hi <= lo:
            raise ValueError(f"end ({end}) must be after start ({start})")
        return cls(str(location), lo, hi)

    def __str__(self) -> str:
        if self.start is None and self.end is None:
            return self.location
        return f"{self.location} [{self.start if self.start is not None else '…'}, " \
               f"{self.end if self.end is not None else '…'})"


def opened(location: Any) -> Any:
    """``location`` with a directory's (or prefix's) file listing resolved once, for a caller that
    reads it many times — a cluster process loads one slice per instrument, and listing a tree of
    thousands of files for each would cost more than reading the slice.  Anything else unchanged."""
    bars = location if isinstance(location, Bars) else Bars(str(location)) if isinstance(location, (str, Path)) else None
    if bars is None or not _is_tree(bars.location):
        return location
    return replace(bars, dataset=bars.dataset if bars.dataset is not None else _open_dataset(bars.location))


def scan(location: Any, fields: Collection[str] | None, symbol: str | None,
         since: int | None = None) -> Iterator[Stream] | None:
    """One symbol's bars (every row when ``symbol`` is None) with ``ts >= since``, in time order, one
    validated ``Stream`` per piece of the data — a Parquet row group, or a whole CSV/IPC file — so
    memory stays at one piece whatever the history's length.  Pieces are put in time order by their
    ``ts`` statistics and must not overlap (each piece is sorted on its own); None when that cannot
    be known — overlapping or statistics-less pieces, an Arrow IPC *stream* — and the caller reads
    the symbol whole (``load``) instead."""
    bars = location if isinstance(location, Bars) else Bars(str(location))
    dataset = _dataset_of(bars)
    if dataset is None:
        return None
    import pyarrow.compute as pc
    names = dataset.schema.names
    start = bars.start if since is None else since if bars.start is None else max(bars.start, since)
    wanted = _span_filter(dataset.schema.field("ts").type, start, bars.end) if "ts" in names else None
    if symbol is not None and "symbol" in names:
        mine = pc.field("symbol").cast(pa.string()) == symbol
        wanted = mine if wanted is None else wanted & mine
    try:
        pieces = _time_ordered_pieces(dataset, wanted)
    except (pa.ArrowException, OSError, ValueError) as exc:
        raise DataError("E505", str(bars), f"cannot read the data files: {exc}") from None
    if pieces is None:
        return None
    # a directory's rows are ordered by the reader (as ``load`` sorts them); a file must be in order
    return _scanned(dataset, pieces, _kept(names, fields), wanted, str(bars), _is_tree(bars.location))


def _time_ordered_pieces(dataset: Any, wanted: Any) -> list | None:
    """The fragments (Parquet: row groups) holding rows ``wanted`` selects, in time order; None when
    their order cannot be told from statistics, or their time ranges overlap."""
    import pyarrow.dataset as pads
    pieces: list[tuple[Any, Any, Any]] = []
    for fragment in dataset.get_fragments(filter=wanted):
        if isinstance(fragment, pads.ParquetFileFragment):
            for group in fragment.split_by_row_group(filter=wanted, schema=dataset.schema):
                stats = (group.row_groups[0].statistics or {}).get("ts") if group.row_groups else None
                lo, hi = (stats["min"], stats["max"]) if stats else (None, None)
                pieces.append((group, lo, hi))
        else:
            pieces.append((fragment, None, None))
    if len(pieces) <= 1:
        return [p[0] for p in pieces]
    if any(lo is None for _, lo, _ in pieces):
        return None
    pieces.sort(key=lambda p: p[1])
    # touching ranges are fine: one symbol's bar at the shared instant in both would be a duplicate,
    # which reading them in this order reports (E502) as a whole read would
    if any(a[2] > b[1] for a, b in zip(pieces, pieces[1:])):
        return None
    return [p[0] for p in pieces]


def _scanned(dataset: Any, pieces: list, columns: list[str] | None, wanted: Any, source: str,
             sort: bool) -> Iterator[Stream]:
    import pyarrow.dataset as pads
    try:
        for piece in pieces:
            table = pads.Scanner.from_fragment(piece, schema=dataset.schema, columns=columns, filter=wanted).to_table()
            if table.num_rows:
                yield _from_columns(_arrow_columns(table.sort_by("ts") if sort else table, source), source).streams[0]
    except (pa.ArrowException, OSError) as exc:
        raise DataError("E505", source, f"cannot read the data files: {exc}") from None


def version(location: Any) -> str:
    """A digest of a location's files as listed now (path, size, modification time): it changes when
    a file is added, removed or rewritten, so outputs planned from other data are not mixed in."""
    import hashlib
    import pyarrow.fs as pafs
    bars = opened(location)
    if not isinstance(bars, Bars):
        return ""
    if bars.dataset is not None:
        fs, paths = bars.dataset.filesystem, sorted(bars.dataset.files)
    else:
        fs, paths = pafs.LocalFileSystem(), [str(Path(bars.location).resolve())]
    h = hashlib.blake2b(digest_size=16)
    for info in fs.get_file_info(paths):
        h.update(f"{info.path}\0{info.size}\0{info.mtime_ns}\n".encode())
    return h.hexdigest()


def _epoch_s(value: Any, what: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        return int(value)
    try:
        stamp = pd.Timestamp(value)
    except (ValueError, TypeError):
        raise ValueError(f"{what}: {value!r} is not a time (epoch seconds or e.g. 2024-01-31)") from None
    stamp = stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")
    return int(stamp.timestamp())


def _span_filter(ts_type: pa.DataType, start: int | None, end: int | None) -> Any:
    """The scan filter ``start <= ts < end`` for a ``ts`` column of ``ts_type`` (None: no bound)."""
    import pyarrow.compute as pc

    def bound(seconds: int) -> Any:
        if pa.types.is_timestamp(ts_type):
            return pa.scalar(seconds, pa.int64()).cast(pa.timestamp("s", tz=ts_type.tz)).cast(ts_type)
        if pa.types.is_date(ts_type):
            return pa.scalar(seconds, pa.int64()).cast(pa.timestamp("s")).cast(ts_type)
        return pa.scalar(seconds, ts_type) if pa.types.is_integer(ts_type) else seconds

    parts = ([pc.field("ts") >= bound(start)] if start is not None else []) + \
        ([pc.field("ts") < bound(end)] if end is not None else [])
    if not parts:
        return None
    return parts[0] if len(parts) == 1 else parts[0] & parts[1]


def load(source: Any, fields: Collection[str] | None = None, symbols: Collection[str] | None = None,
         exact: bool = False) -> Dataset:
    """Read and validate bars from a DataFrame, pyarrow Table, or CSV/Parquet/Arrow/Feather path.

    ``fields``: the bar fields a strategy reads (None: all).  A file is then kept to ``ts``,
    ``symbol`` and those columns (a Parquet file reads only them from disk); when one of them is
    missing, every column is kept so that the error can list what the file has.  ``symbols``: the
    only symbols wanted (compared ignoring case; None: all) — rows of others are dropped while the
    file or directory is scanned, and when none is left the whole data is read instead, so the
    binding can say what the data has (``exact``: never; a caller that planned from a ``survey``
    knows the symbols are there)."""
    if isinstance(source, Dataset):
        return source
    if isinstance(source, pd.DataFrame):
        return _from_columns(_own_ts(_pandas_columns(source)), "<DataFrame>")
    if isinstance(source, (pa.Table, pa.RecordBatch)):
        return _from_columns(_own_ts(_arrow_columns(source, "<Table>")), "<Table>")
    if isinstance(source, (str, Path, Bars)):
        bars = source if isinstance(source, Bars) else Bars(str(source))
        name = str(bars)
        wanted = frozenset(s.casefold() for s in symbols) if symbols else None
        table = _read_path(bars, fields, wanted)
        if wanted and table.num_rows == 0 and not exact:  # none here: all of it, so binding says what it has
            table = _read_path(bars, fields, None)
        return _from_columns(_arrow_columns(table, name), name)
    raise DataError("E505", f"<{type(source).__name__}>",
                    "cannot read data of this type; pass a DataFrame, a pyarrow Table, or a path to a "
                    ".csv, .parquet, .arrow/.ipc or .feather file, or to a directory of them")


def survey(location: str | Path | Bars) -> Dataset:
    """What a file, directory or object-store prefix holds, without reading its bars: one empty
    stream per symbol, with the numeric columns a full ``load`` would keep.  Only the ``symbol``
    column is read (a partition key of a hive tree costs next to nothing), so a cluster can plan its
    partitions — and binding can refuse a strategy the data cannot serve (E504, E506) — before any
    process reads a bar.  The bars themselves are validated when each partition loads its slice."""
    bars = location if isinstance(location, Bars) else Bars(str(location))
    name = str(bars)
    dataset = _dataset_of(bars)
    if dataset is None:  # an Arrow IPC stream (no random access): read it whole
        full = load(bars)
        return Dataset(name, tuple(Stream({c: a[:0] for c, a in s.columns.items()}, s.symbol, s.tags)
                                   for s in full.streams), full.has_symbols, full.fields)
    schema = dataset.schema
    if "ts" not in schema.names:
        raise DataError("E501", name, f"no 'ts' column (columns: {', '.join(schema.names) or 'none'}); "
                        "bars need a 'ts' column of epoch seconds or timestamps")
    empty = {"ts": np.array([], np.int64)}
    for f in schema:
        if f.name not in ("ts", "symbol") and (pa.types.is_integer(f.type) or pa.types.is_floating(f.type)
                                               or pa.types.is_boolean(f.type)):
            empty[f.name] = np.array([], np.int64 if pa.types.is_integer(f.type) else np.float64)
    fields = tuple(c for c in empty if c != "ts")
    if bars.start is not None or bars.end is not None:
        span = _span_filter(schema.field("ts").type, bars.start, bars.end)
        if not dataset.count_rows(filter=span):
            raise DataError("E503", name, "no bars: none of the data's bars falls in this time range")
    if "symbol" not in schema.names:
        return Dataset(name, (Stream(empty),), False, fields)
    import pyarrow.compute as pc
    try:
        span = _span_filter(schema.field("ts").type, bars.start, bars.end)
        column = dataset.to_table(columns=["symbol"], filter=span).column("symbol")
    except (pa.ArrowException, OSError, ValueError) as exc:
        raise DataError("E505", name, f"cannot read the data: {exc}") from None
    if column.null_count:
        raise DataError("E503", name, "column 'symbol' is null on some rows")
    seen = [str(s) for s in pc.unique(column.cast(pa.string())).to_pylist()]  # in order of first appearance
    # in the order ``load`` gives the streams, which is the run keys' order (a cap's step sums the
    # instruments of an instant in it): a tree's rows are sorted by symbol, a file's keep their order
    symbols = sorted(seen) if _is_tree(bars.location) else seen
    return Dataset(name, tuple(Stream(empty, s, (s,)) for s in symbols), True, fields)


def _is_tree(location: str) -> bool:
    """A directory or an object-store prefix (read as a dataset of files), not one file."""
    return "://" in location or Path(location).is_dir()


def _dataset_of(bars: Bars) -> Any:
    """``bars`` as a ``pyarrow.dataset``: the one ``opened`` resolved, else its tree or its file (None
    for an Arrow IPC *stream*, which has no random access)."""
    if bars.dataset is not None:
        return bars.dataset
    return _open_dataset(bars.location) if _is_tree(bars.location) else _open_file_dataset(Path(bars.location))


def _open_file_dataset(path: Path) -> Any:
    """One data file as a ``pyarrow.dataset`` (None for an Arrow IPC *stream*, which has none)."""
    import pyarrow.dataset as pads
    fmt = _DATASET_FORMATS.get(path.suffix.lower())
    if fmt is None or not path.is_file():
        _read_file(path)  # the same E505 a load gives (unknown format, no such file)
    if fmt == "ipc":
        with open(path, "rb") as f:
            head = f.read(6)
        if not (head == b"ARROW1" or head[:4] == b"FEA1"):
            return None
    try:
        return pads.dataset(str(path), format=fmt)
    except (pa.ArrowException, OSError, ValueError) as exc:
        raise DataError("E505", str(path), f"cannot read {path.suffix} file: {exc}") from None


def _read_path(bars: Bars, fields: Collection[str] | None, symbols: frozenset[str] | None) -> pa.Table:
    """A file, a directory or an object-store prefix, as one table (only ``bars``' time range)."""
    name = bars.location
    if _is_tree(name):
        return _read_dataset(name, fields, symbols, bars)
    table = _read_file(Path(name), fields, symbols)
    span = _span_filter(table.schema.field("ts").type, bars.start, bars.end) if "ts" in table.column_names \
        else None
    return table if span is None else table.filter(span)


def _symbol_filter(symbols: frozenset[str]) -> Any:
    import pyarrow.compute as pc
    return pc.is_in(pc.utf8_lower(pc.field("symbol").cast(pa.string())), value_set=pa.array(sorted(symbols)))


_DATASET_FORMATS = {".parquet": "parquet", ".pq": "parquet", ".csv": "csv", ".arrow": "ipc", ".ipc": "ipc",
                    ".feather": "ipc"}


def _read_dataset(location: str, fields: Collection[str] | None = None,
                  symbols: frozenset[str] | None = None, bars: Bars | None = None) -> pa.Table:
    """A directory (or object-store prefix, ``s3://bucket/bars/``) of data files through
    ``pyarrow.dataset`` (``_open_dataset``); only the columns a strategy reads are read, only the
    rows of ``symbols`` (when given) are kept while scanning."""
    dataset = bars.dataset if bars is not None and bars.dataset is not None else _open_dataset(location)
    try:
        wanted = _symbol_filter(symbols) if symbols and "symbol" in dataset.schema.names else None
        if bars is not None and "ts" in dataset.schema.names:
            span = _span_filter(dataset.schema.field("ts").type, bars.start, bars.end)
            wanted = span if wanted is None else (wanted if span is None else wanted & span)
        table = dataset.to_table(columns=_kept(dataset.schema.names, fields), filter=wanted)
    except (pa.ArrowException, OSError, ValueError) as exc:
        raise DataError("E505", location, f"cannot read the data files: {exc}") from None
    # files come in path order, which says nothing about time (date=2024-1-10 sorts before 2024-1-9):
    # order the rows by symbol and ts (a duplicate bar is still refused, E502)
    keys = [(c, "ascending") for c in ("symbol", "ts") if c in table.column_names]
    return table.sort_by(keys) if "ts" in table.column_names else table


def _open_dataset(location: str) -> Any:
    """A directory (or object-store prefix) of data files as one ``pyarrow.dataset``: flat, or
    partitioned by directory (``symbol=AAPL/date=2024-01-02/…``, whose keys become columns).  The
    files' format is their extension (one format per tree)."""
    import pyarrow.dataset as pads
    import pyarrow.fs as pafs

    try:
        fs, root = pafs.FileSystem.from_uri(location) if "://" in location else (pafs.LocalFileSystem(), location)
        files = [i for i in fs.get_file_info(pafs.FileSelector(root.rstrip("/"), recursive=True))
                 if i.type == pafs.FileType.File and not i.base_name.startswith((".", "_"))]
    except (pa.ArrowException, OSError, ValueError) as exc:
        raise DataError("E505", location, f"cannot list the data: {exc}") from None
    suffixes = sorted({Path(i.base_name).suffix.lower() for i in files})
    if not files:
        raise DataError("E505", location, "no data files under this directory")
    unknown = [s or "(none)" for s in suffixes if s not in _DATASET_FORMATS]
    formats = {_DATASET_FORMATS[s] for s in suffixes if s in _DATASET_FORMATS}
    if unknown or len(formats) != 1:
        raise DataError("E505", location, f"a data directory holds files of one format "
                        f"({', '.join(sorted(_DATASET_FORMATS))}); found {', '.join(suffixes)}")
    try:
        return pads.dataset([i.path for i in files], filesystem=fs, format=formats.pop(),
                            partitioning=pads.partitioning(flavor="hive"), partition_base_dir=root.rstrip("/"))
    except (pa.ArrowException, OSError, ValueError) as exc:
        raise DataError("E505", location, f"cannot read the data files: {exc}") from None


def _read_file(path: Path, fields: Collection[str] | None = None,
               symbols: frozenset[str] | None = None) -> pa.Table:
    readers = {".csv": _read_csv, ".parquet": _read_parquet, ".pq": _read_parquet,
               ".arrow": _read_ipc, ".arrows": _read_ipc, ".ipc": _read_ipc, ".feather": _read_ipc}
    reader = readers.get(path.suffix.lower())
    if reader is None:
        raise DataError("E505", str(path), f"unknown data format {path.suffix!r}; expected one of "
                        f"{', '.join(sorted(readers))}")
    if not path.is_file():
        raise DataError("E505", str(path), "no such file")
    try:
        table = reader(path, fields)
        if symbols and "symbol" in table.column_names:
            table = table.filter(_symbol_filter(symbols))
        return table
    except (pa.ArrowException, OSError, ValueError) as exc:
        raise DataError("E505", str(path), f"cannot read {path.suffix} file: {exc}") from None


def _read_csv(path: Path, fields: Collection[str] | None = None) -> pa.Table:
    import pyarrow.csv as pacsv
    return _pruned(pacsv.read_csv(path), fields)


def _read_parquet(path: Path, fields: Collection[str] | None = None) -> pa.Table:
    """One Parquet file through its own reader, not ``pq.read_table``: that goes through the dataset
    scanner, which hands each column back in chunks of at most 128Ki rows, and joining them into the
    one array the kernels read copies the whole history (on 2M bars, about as long as the kernels).
    The file reader decodes each column into one array, which numpy then views as it is.  Unread
    columns stay on disk."""
    import pyarrow.parquet as pq
    with pq.ParquetFile(path) as file:
        return file.read(columns=_kept(file.schema_arrow.names, fields))


def _kept(names: list[str], fields: Collection[str] | None) -> list[str] | None:
    """The columns to read for ``fields`` (None: every column)."""
    if fields is None or not set(fields) <= set(names):
        return None
    return [n for n in names if n in ("ts", "symbol") or n in fields]


def _pruned(table: pa.Table, fields: Collection[str] | None) -> pa.Table:
    keep = _kept(table.column_names, fields)
    return table if keep is None or len(keep) == table.num_columns else table.select(keep)


def _read_ipc(path: Path, fields: Collection[str] | None = None) -> pa.Table:
    """Arrow IPC in either framing: the random-access *file* format (Feather v2, what
    ``feather.write_feather`` writes) or the *stream* format (what ``pa.ipc.new_stream`` writes, and what
    most producers that pipe Arrow emit).  The extension does not say which, so the magic bytes do."""
    import pyarrow.feather as feather
    import pyarrow.ipc as ipc
    with open(path, "rb") as f:
        head = f.read(6)
    if head == b"ARROW1" or head[:4] == b"FEA1":
        # memory-mapped so that columns stay views of the file
        return _pruned(feather.read_table(str(path), memory_map=True), fields)
    with pa.memory_map(str(path)) as source:
        return _pruned(ipc.open_stream(source).read_all(), fields)


# --- columns → numpy ---------------------------------------------------------------------------------

# A raw column before validation: (numpy array, null mask or None).
_Raw = tuple[np.ndarray, "np.ndarray | None"]


def _arrow_columns(table: pa.Table | pa.RecordBatch, source: str) -> dict[str, _Raw]:
    if isinstance(table, pa.RecordBatch):
        table = pa.Table.from_batches([table])
    out: dict[str, _Raw] = {}
    for name, col in zip(table.column_names, table.columns):
        if name == "symbol" and col.null_count == 0 and (pa.types.is_string(col.type) or pa.types.is_large_string(
                col.type) or pa.types.is_dictionary(col.type)):
            out["symbol"] = (_arrow_symbols(col), None)
        else:
            out[str(name)] = _arrow_to_numpy(col, str(name), source)
    return out


def _own_ts(raw: dict[str, _Raw]) -> dict[str, _Raw]:
    """``raw`` with its ``ts`` column copied when it may share memory with the caller's own frame or
    arrays: a run's results keep views of the bound timestamps (``key_runtime._Rows``), which must not
    change when the caller later edits its data.  A file's columns are the loader's own."""
    if "ts" in raw:
        arr, mask = raw["ts"]
        raw = {**raw, "ts": (np.array(arr, copy=True), mask)}
    return raw


def _arrow_symbols(col: pa.ChunkedArray) -> pd.Categorical:
    """A symbol column as codes in order of first appearance (Arrow's dictionary encoding): grouping
    millions of rows by symbol then sorts small integers, never strings."""
    import pyarrow.compute as pc
    flat = col.cast(col.type.value_type) if pa.types.is_dictionary(col.type) else col
    encoded = pc.dictionary_encode(flat.combine_chunks() if flat.num_chunks != 1 else flat.chunk(0))
    codes = encoded.indices.to_numpy(zero_copy_only=False)
    return pd.Categorical.from_codes(codes, categories=pd.Index(encoded.dictionary.to_pylist(), dtype=object))


def _arrow_to_numpy(col: pa.ChunkedArray, name: str, source: str) -> _Raw:
    """A ChunkedArray as one numpy array: a free view when it is one null-free chunk, otherwise
    converted chunk by chunk (nulls force a copy; they are reported as a mask)."""
    t = col.type
    if pa.types.is_timestamp(t) or pa.types.is_date(t):
        col = _arrow_time_to_seconds(col)
    elif pa.types.is_dictionary(t):
        col = col.cast(t.value_type)
    chunks = col.chunks or [pa.array([], type=col.type)]
    arrays, masks = [], []
    for chunk in chunks:
        if chunk.null_count == 0 and (pa.types.is_integer(chunk.type) or pa.types.is_floating(chunk.type)):
            arrays.append(chunk.to_numpy(zero_copy_only=True))
            masks.append(None)
        else:
            mask = np.asarray(chunk.is_null().to_numpy(zero_copy_only=False), dtype=bool)
            arrays.append(chunk.to_numpy(zero_copy_only=False))
            masks.append(mask)
    arr = arrays[0] if len(arrays) == 1 else np.concatenate(arrays)
    if all(m is None for m in masks):
        return arr, None
    mask = np.concatenate([m if m is not None else np.zeros(len(a), bool) for m, a in zip(masks, arrays)])
    return arr, mask


def _arrow_time_to_seconds(col: pa.ChunkedArray) -> pa.ChunkedArray:
    import pyarrow.compute as pc
    ts = col.cast(pa.timestamp("s", tz=getattr(col.type, "tz", None)), safe=False) \
        if pa.types.is_timestamp(col.type) else pc.cast(col, pa.timestamp("s"))
    return pc.cast(ts, pa.int64())


def _pandas_columns(df: pd.DataFrame) -> dict[str, _Raw]:
    out: dict[str, _Raw] = {}
    frame = df.reset_index() if _ts_in_index(df) else df
    for name in frame.columns:
        s = frame[name]
        mask = s.isna().to_numpy() if s.hasnans else None
        if pd.api.types.is_datetime64_any_dtype(s.dtype):
            arr = _datetimes_to_seconds(s)
        elif pd.api.types.is_numeric_dtype(s.dtype) and not pd.api.types.is_bool_dtype(s.dtype):
            na = np.nan if mask is not None or pd.api.types.is_float_dtype(s.dtype) else None
            arr = s.to_numpy(na_value=na) if na is not None else s.to_numpy()
        else:
            arr = s.to_numpy(dtype=object)
        out[str(name)] = (arr, mask)
    return out


def _ts_in_index(df: pd.DataFrame) -> bool:
    return "ts" not in df.columns and (df.index.name == "ts" or isinstance(df.index, pd.DatetimeIndex))


def _datetimes_to_seconds(s: pd.Series) -> np.ndarray:
    values = s.dt.tz_convert("UTC").dt.tz_localize(None) if s.dt.tz is not None else s
    return values.to_numpy(dtype="datetime64[s]", na_value=np.datetime64("NaT")).astype(np.int64)


# --- validation --------------------------------------------------------------------------------------


def _from_columns(raw: dict[str, _Raw], source: str) -> Dataset:
    if "ts" not in raw:
        raise DataError("E501", source, f"no 'ts' column (columns: {', '.join(raw) or 'none'}); "
                        "bars need a 'ts' column of epoch seconds or timestamps")
    if len(raw["ts"][0]) == 0:
        # checked first: a header-only CSV has untyped (null) columns, which would otherwise be
        # reported as "not numeric" — true, but not the user's problem
        raise DataError("E503", source, f"no bars: the data has columns ({', '.join(raw)}) but no rows")
    arr, mask = raw["ts"]
    # one stream of int64 epoch seconds (a file's usual ts): range, order and grid in one pass
    scanned = scan_times(arr, _MIN_EPOCH_S, _MAX_EPOCH_S) \
        if "symbol" not in raw and arr.dtype == np.int64 and mask is None else None
    ts = _ts_seconds(arr, mask, source, None if scanned is None else scanned[0])
    symbols = _symbol_column(raw.get("symbol"), source)
    fields = {name: _field(name, arr, source) for name, (arr, _) in raw.items()
              if name not in ("ts", "symbol")}
    fields = {k: v for k, v in fields.items() if v is not None}
    for name in REQUIRED_FIELDS:
        if name in fields:
            _check_no_nan(name, fields[name], raw[name][1], ts, symbols, source)
    _check_shape(fields, ts, symbols, source)
    if symbols is None:
        streams = (_stream(ts, fields, None, np.arange(0), source, None if scanned is None else scanned[1:]),)
    else:
        streams = tuple(_stream(ts, fields, sym, idx, source) for sym, idx in _groups(symbols))
    return Dataset(source, streams, has_symbols=symbols is not None, fields=tuple(fields))


def _ts_seconds(arr: np.ndarray, mask: np.ndarray | None, source: str, outside: int | None = None) -> np.ndarray:
    """``ts`` as int64 epoch seconds, checked; ``outside``: the first row outside the epoch range
    when the caller's scan already found it (−1: none)."""
    if mask is not None and mask.any():
        row = int(np.flatnonzero(mask)[0])
        raise DataError("E503", source, f"column 'ts' is null at row {row}")
    if arr.dtype.kind in "iu":
        _check_epoch_range(arr, source, outside)
        return arr if arr.dtype == np.int64 else arr.astype(np.int64)
    if arr.dtype.kind == "M":
        return arr.astype("datetime64[s]").astype(np.int64)
    if arr.dtype.kind == "f":
        if np.isnan(arr).any():
            raise DataError("E503", source, f"column 'ts' is NaN at row {int(np.flatnonzero(np.isnan(arr))[0])}")
        if np.all(arr == np.floor(arr)):
            _check_epoch_range(arr, source)
            return arr.astype(np.int64)
        raise DataError("E501", source, "column 'ts' holds fractional numbers; expected whole epoch seconds")
    if arr.dtype.kind == "O":
        try:
            with warnings.catch_warnings():
                # pandas warns when it falls back to per-element parsing; a bad value raises below
                warnings.simplefilter("ignore", UserWarning)
                parsed = pd.to_datetime(pd.Series(arr), utc=True)
        except (ValueError, TypeError) as exc:
            raise DataError("E501", source, f"column 'ts' is not a timestamp: {exc}") from None
        return _datetimes_to_seconds(parsed)
    raise DataError("E501", source, f"column 'ts' has type {arr.dtype}; expected epoch seconds or timestamps")


def _check_epoch_range(arr: np.ndarray, source: str, row: int | None = None) -> None:
    """Numeric ``ts`` must be plausible epoch *seconds*; name the unit it probably is otherwise.
    ``row``: the first row outside the range, when already known."""
    if row is None:
        row = first_outside(arr, _MIN_EPOCH_S, _MAX_EPOCH_S) if len(arr) else -1
    if row < 0:
        return
    value = int(arr[row]) if np.isfinite(arr[row]) else float(arr[row])
    where = (f"column 'ts' at row {row} is {value}, outside the range of epoch seconds "
             "(years 1900-2286)")
    unit = _likely_unit(abs(value))
    hint = (f"; it looks like epoch {unit[0]}: divide 'ts' by {unit[1]} or pass datetime values instead"
            if unit else "; pass epoch seconds or datetime values")
    raise DataError("E501", source, where + hint)


def _likely_unit(magnitude: int) -> tuple[str, int] | None:
    """The sub-second unit whose conversion to seconds lands ``magnitude`` in the plausible range."""
    for unit, per_second in (("milliseconds", 1000), ("microseconds", 10**6), ("nanoseconds", 10**9)):
        if magnitude // per_second <= _MAX_EPOCH_S:
            return (unit, per_second) if magnitude > _MAX_EPOCH_S else None
    return None


def _symbol_column(raw: _Raw | None, source: str) -> pd.Categorical | None:
    """The symbols as codes (categories in order of first appearance), each name a string."""
    if raw is None:
        return None
    arr, mask = raw
    if mask is not None and mask.any():
        raise DataError("E503", source, f"column 'symbol' is null at row {int(np.flatnonzero(mask)[0])}")
    if isinstance(arr, pd.Categorical):
        return arr
    codes, names = pd.factorize(np.asarray(arr).astype(str) if np.asarray(arr).dtype.kind != "O" else
                                np.asarray([str(s) for s in arr], dtype=object))
    return pd.Categorical.from_codes(codes, categories=pd.Index(names, dtype=object))


def _field(name: str, arr: np.ndarray, source: str) -> np.ndarray | None:
    """A numeric column as a field: integers stay integers (an opaque function reads ``volume`` as the
    file has it; kernels read every field as float64), other numbers become float64; non-numeric
    extra columns are not fields."""
    if arr.dtype == np.float64 or arr.dtype.kind in "iu":
        return arr
    if arr.dtype.kind in "fb":
        return arr.astype(np.float64)
    if name in REQUIRED_FIELDS:
        raise DataError("E503", source, f"column {name!r} is not numeric (type {arr.dtype})")
    return None


def _groups(symbols: pd.Categorical) -> Iterator[tuple[str, np.ndarray]]:
    """(symbol, row indices) in order of first appearance (the categories' order): one stable sort of
    the integer codes, then each symbol's rows are one slice of it (not a scan per symbol)."""
    codes = np.asarray(symbols.codes)
    rows = np.argsort(codes, kind="stable")
    counts = np.bincount(codes, minlength=len(symbols.categories))
    ends = np.cumsum(counts)
    for code, name in enumerate(symbols.categories):
        if counts[code]:
            yield str(name), rows[ends[code] - counts[code]:ends[code]]


def _take(arr: np.ndarray, idx: np.ndarray | None) -> np.ndarray:
    """Rows ``idx`` of ``arr``: a view when they are one contiguous run (the usual layout)."""
    if idx is None:
        return arr
    if len(idx) and idx[-1] - idx[0] + 1 == len(idx):
        return arr[idx[0]:idx[-1] + 1]
    return arr[idx]


def _stream(ts: np.ndarray, fields: dict[str, np.ndarray], symbol: str | None, idx: np.ndarray, source: str,
            scanned: tuple[int, int] | None = None) -> Stream:
    """One symbol's validated stream; ``scanned``: its ts's (first unsorted row, grid) when the
    caller's ``scan_times`` pass already found them."""
    rows = idx if symbol is not None else None
    sts = _take(ts, rows)
    unsorted, grid = scanned if scanned is not None else scan_times(sts, _INT64.min, _INT64.max)[1:]
    _check_sorted(sts, rows, symbol, source, unsorted)
    cols = {"ts": sts}
    for name, arr in fields.items():
        cols[name] = _take(arr, rows)
    return Stream(cols, symbol, (symbol,) if symbol is not None else (), grid)


def _where(symbol: str | None) -> str:
    return f" for symbol {symbol!r}" if symbol is not None else ""


def _check_sorted(ts: np.ndarray, rows: np.ndarray | None, symbol: str | None, source: str, i: int) -> None:
    """E502 for the first row ``i`` whose ts does not follow its predecessor's (−1: none)."""
    if i < 0:
        return
    row = int(rows[i]) if rows is not None else i
    what = "duplicate" if ts[i] == ts[i - 1] else "unsorted"
    hint = ""
    if symbol is None and "://" not in source and Path(source.split(" [")[0]).is_dir():
        hint = (" (the directory's files are read as one table with no 'symbol' column: give each file a "
                "'symbol' column, or put each symbol's files under symbol=<name>/)")
    raise DataError("E502", source, f"{what} timestamp{_where(symbol)} at row {row}: ts={int(ts[i])} "
                    f"follows ts={int(ts[i - 1])}; bars must be strictly increasing in time per symbol{hint}")


def _check_no_nan(name: str, col: np.ndarray, mask: np.ndarray | None, ts: np.ndarray,
                  symbols: pd.Categorical | None, source: str) -> None:
    """Checked on the whole column so the error names the first bad row of the file.  Infinite values
    (``inf``, or ``1e309`` in a CSV) are refused too: no price or volume is infinite, and one would
    poison every metric downstream."""
    row = first_not_finite(col) if col.dtype.kind == "f" and len(col) else -1
    if mask is not None and mask.any():
        null = int(np.argmax(mask))
        row = null if row < 0 else min(row, null)
    if row < 0:
        return
    symbol = None if symbols is None else str(symbols[row])
    what = "infinite" if np.isinf(col[row]) and (mask is None or not mask[row]) else "NaN/null"
    raise DataError("E503", source, f"column {name!r} is {what}{_where(symbol)}, first at row {row} "
                    f"(ts={int(ts[row])}); required bar fields must be present and finite on every bar")


def _check_shape(fields: dict[str, np.ndarray], ts: np.ndarray, symbols: pd.Categorical | None,
                 source: str) -> None:
    """A bar's prices must be a bar's (``bar_shape``, the rule a live feed applies too): checked on the
    whole columns (already finite) when the data has both ``high`` and ``low``."""
    if "high" not in fields or "low" not in fields:
        return
    high, low, open_, close = fields["high"], fields["low"], fields.get("open"), fields.get("close")
    row = first_misshapen(high, low, open_, close)
    if row < 0:
        return
    problem = ohlc_problem(None if open_ is None else float(open_[row]), float(high[row]), float(low[row]),
                           None if close is None else float(close[row]))
    symbol = None if symbols is None else str(symbols[row])
    raise DataError("E503", source, f"bar{_where(symbol)} at row {row} (ts={int(ts[row])}): {problem}; "
                    "a bar's prices must satisfy low <= open, close <= high")


# --- batching ----------------------------------------------------------------------------------------


def iter_batches(stream: Stream, batch_size: int) -> Iterator[dict[str, np.ndarray]]:
    """Column-dict views of consecutive ``batch_size`` rows: the unit the runtime feeds its kernels."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be ≥ 1, got {batch_size}")
    n = len(stream)
    for start in range(0, n, batch_size):
        stop = min(start + batch_size, n)
        yield {name: arr[start:stop] for name, arr in stream.columns.items()}
