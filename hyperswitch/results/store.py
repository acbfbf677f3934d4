"""Writing a study's results so that a crash loses nothing finished.

Each trial writes its own part files (``parts/<trial_id>.steps|events|trials.parquet``), each atomically
(temporary file + rename; on an object store one upload of the whole object, :mod:`hyperswitch.results.fs`), the
trial row last: a trial part is the commit marker. While a trial runs its
row says ``status: running``; finished statuses are completed, diverged, stopped (by the scheduler) and
error. The sweep driver compacts finished parts into the three study tables (again temp + rename) and
deletes them; readers union the tables with any finished parts not yet compacted, parts winning, so a
crash at any point neither loses nor duplicates a trial.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from hyperswitch.errors import ConfigError
from hyperswitch.results.files import temp_file, write_bytes_atomic
from hyperswitch.results.fs import ObjectPath, StudyPath, glob, read_consistent, study_path
from hyperswitch.results.schema import (
    EVENTS_SCHEMA,
    FINISHED_STATUSES,
    STEPS_SCHEMA,
    TRIAL_ID_COLUMNS,
    TRIAL_METRIC_COLUMNS,
)

TABLES = ("trials", "steps", "events")
# String columns of steps/events read dictionary-encoded when asked (few distinct values, millions of rows).
DICTIONARY_COLUMNS = frozenset({"trial_id", "optimizer", "kind"})


class StudyFileError(ConfigError):
    """A file of a study that cannot be read (a truncated or corrupt table, part or study.json). One line,
    ``FILE: PROBLEM``; the CLI prints it and exits 2. Raised before anything in the study is changed."""

    def __init__(self, path: str | os.PathLike[str] | ObjectPath, problem: str) -> None:
        self.problem = problem
        super().__init__("", problem, None, file=str(path))

    def _format(self) -> str:
        return f"{self.file}: {self.problem}"


def _reason(exc: BaseException) -> str:
    return " ".join(str(exc).split())[:300] or type(exc).__name__


def read_parquet(path: StudyPath, columns: Sequence[str] | None = None,
                 dictionary: Sequence[str] = ()) -> pa.Table | None:
    """Read one Parquet file through one open handle, or None if it is gone; :class:`StudyFileError` if it is
    not readable Parquet. ``columns``: only those (the ones the file has; None: all); ``dictionary``: columns
    to read dictionary-encoded (cheap on millions of rows of a few distinct strings).

    One handle matters: writers replace files atomically, and a reader that opened the path twice (footer,
    then pages) could mix the old file's footer with the new file's pages. On an object store the whole object is
    read and parsed in memory, and read again if it was replaced meanwhile
    (:func:`~hyperswitch.results.fs.read_consistent`).
    """

    def parse(f: Any) -> pa.Table:
        pf = pq.ParquetFile(f, read_dictionary=list(dictionary) or None)
        cols = None
        if columns is not None:
            names = set(pf.schema_arrow.names)
            cols = [c for c in columns if c in names]
        return pf.read(columns=cols)

    try:
        if isinstance(path, ObjectPath):
            return read_consistent(path, lambda data: parse(pa.BufferReader(data)), arrow=True)
        # An Arrow-native handle, not Python's open(): Parquet pages read through a Python file are Python-owned
        # buffers, and Arrow's pool threads may drop the last of them after read() returns; if that happens as
        # the interpreter exits, the thread cannot take the GIL and the process aborts ("terminate called
        # without an active exception").
        with pa.OSFile(str(path)) as f:
            return parse(f)
    except FileNotFoundError:
        return None
    except (pa.ArrowException, OSError) as exc:
        raise StudyFileError(path, f"not a readable Parquet file ({_reason(exc)})") from None


def write_table_atomic(table: pa.Table, path: StudyPath) -> None:
    """Write ``table`` to ``path`` through a temporary file and a rename, with the mode the umask gives; on an
    object store, one upload of the whole object."""
    if isinstance(path, ObjectPath):
        buf = pa.BufferOutputStream()
        pq.write_table(table, buf, compression="zstd")
        path.write_bytes(buf.getvalue().to_pybytes())
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = temp_file(path)
    os.close(fd)
    try:
        pq.write_table(table, tmp, compression="zstd")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_json_atomic(obj: Any, path: StudyPath) -> None:
    """Write ``obj`` as JSON to ``path`` through a temporary file and a rename, with the mode the umask gives."""
    text = json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n"
    write_bytes_atomic(text.encode(), path)


def trial_table(row: Mapping[str, Any]) -> pa.Table:
    """One trial row as a table: identity columns, parameters, then metrics with fixed types."""
    fields, values = [], []
    for name in TRIAL_ID_COLUMNS:
        typ = pa.int64() if name == "seed" else pa.string()
        fields.append(pa.field(name, typ))
        values.append([row.get(name)])
    for name, value in row.items():
        if name in TRIAL_ID_COLUMNS or name in TRIAL_METRIC_COLUMNS:
            continue
        arr = pa.array([value])
        if pa.types.is_null(arr.type):
            arr = pa.array([None], type=pa.float64())
        fields.append(pa.field(name, arr.type))
        values.append(arr)
    for name, typ in TRIAL_METRIC_COLUMNS.items():
        fields.append(pa.field(name, typ))
        values.append(pa.array([row.get(name)], type=typ))
    return pa.Table.from_arrays([pa.array(v, type=f.type) if not isinstance(v, pa.Array) else v
                                 for v, f in zip(values, fields, strict=True)], schema=pa.schema(fields))


def rows_table(rows: Sequence[Mapping[str, Any]], trial_id: str, schema: pa.Schema) -> pa.Table:
    cols = {f.name: [trial_id if f.name == "trial_id" else r.get(f.name) for r in rows] for f in schema}
    return pa.Table.from_pydict(cols, schema=schema)


def concat(tables: Iterable[pa.Table]) -> pa.Table | None:
    tables = [t for t in tables if t is not None]
    if not tables:
        return None
    return pa.concat_tables(tables, promote_options="permissive")


class StudyStore:
    """Paths and writes of one study folder ``<storage>/<name>/``: a local folder, or a URI of a file system
    that pyarrow.fs opens (``s3://bucket/prefix/name``; :func:`~hyperswitch.results.fs.open_storage`)."""

    def __init__(self, root: str | os.PathLike[str] | ObjectPath) -> None:
        self.root = study_path(root)

    @property
    def name(self) -> str:
        return self.root.name

    @property
    def parts(self) -> StudyPath:
        return self.root / "parts"

    def table_path(self, table: str) -> StudyPath:
        return self.root / f"{table}.parquet"

    def part_path(self, trial_id: str, table: str) -> StudyPath:
        return self.parts / f"{trial_id}.{table}.parquet"

    # --- study.json ---------------------------------------------------------------------------------
    @property
    def meta_path(self) -> StudyPath:
        return self.root / "study.json"

    def read_meta(self) -> dict[str, Any]:
        try:
            meta = (read_consistent(self.meta_path, json.loads) if isinstance(self.meta_path, ObjectPath)
                    else json.loads(self.meta_path.read_text()))
        except FileNotFoundError:
            raise
        except (OSError, ValueError) as exc:
            raise StudyFileError(self.meta_path, f"not a readable study.json ({_reason(exc)})") from None
        if not isinstance(meta, dict):
            raise StudyFileError(self.meta_path, f"not a readable study.json (a JSON {type(meta).__name__}, "
                                 "not an object)")
        return meta

    def check_readable(self) -> None:
        """Raise :class:`StudyFileError` naming the first file of the study that cannot be read: study.json,
        a table or a part file (its Parquet footer and schema). Reads no data pages: cheap on a large study;
        commands that write somewhere call it first, so that a broken study changes nothing."""
        self.read_meta()
        files = [self.table_path(t) for t in TABLES]
        if self.parts.is_dir():
            files += glob(self.parts, "*.parquet")
        for path in files:
            try:
                if isinstance(path, ObjectPath):
                    read_consistent(path, lambda data: pq.ParquetFile(pa.BufferReader(data)).schema_arrow,
                                    arrow=True)
                    continue
                with pa.OSFile(str(path)) as f:
                    pq.ParquetFile(f).schema_arrow  # noqa: B018  (parses the footer)
            except FileNotFoundError:
                continue
            except (pa.ArrowException, OSError) as exc:
                raise StudyFileError(path, f"not a readable Parquet file ({_reason(exc)})") from None

    def write_meta(self, meta: Mapping[str, Any]) -> None:
        write_json_atomic(dict(meta), self.meta_path)

    def update_meta(self, **changes: Any) -> dict[str, Any]:
        meta = self.read_meta()
        meta.update(changes)
        self.write_meta(meta)
        return meta

    # --- a trial's parts ----------------------------------------------------------------------------
    def write_trial_parts(self, row: Mapping[str, Any], steps: Sequence[Mapping[str, Any]] | None,
                          events: Sequence[Mapping[str, Any]] | None) -> None:
        """Write a trial's steps and events, then its row (the commit marker), each atomically."""
        tid = str(row["trial_id"])
        if steps is not None:
            write_table_atomic(rows_table(steps, tid, STEPS_SCHEMA), self.part_path(tid, "steps"))
        if events is not None:
            write_table_atomic(rows_table(events, tid, EVENTS_SCHEMA), self.part_path(tid, "events"))
        write_table_atomic(trial_table(row), self.part_path(tid, "trials"))

    def read_trial_part(self, trial_id: str) -> dict[str, Any] | None:
        table = read_parquet(self.part_path(trial_id, "trials"))
        return table.to_pylist()[0] if table is not None else None

    def find_trial(self, trial_id: str) -> dict[str, Any] | None:
        """A trial's row from its part, else from the compacted table (another trial's settling may already
        have folded it in), else None."""
        row = self.read_trial_part(trial_id)
        if row is not None or not self.table_path("trials").exists():
            return row
        table = read_parquet(self.table_path("trials"))
        if table is None:
            return None
        table = table.filter(pc.equal(table.column("trial_id"), trial_id))
        return table.to_pylist()[0] if table.num_rows else None

    def part_trial_ids(self, finished_only: bool = True) -> list[str]:
        if not self.parts.exists():
            return []
        ids = []
        for p in glob(self.parts, "*.trials.parquet"):
            tid = p.name[: -len(".trials.parquet")]
            if finished_only:
                table = read_parquet(p, columns=["status"])
                if table is None or table.column("status")[0].as_py() not in FINISHED_STATUSES:
                    continue
            ids.append(tid)
        return ids

    def discard_unfinished_parts(self) -> list[str]:
        """Remove parts of trials that never finished (the driver died while they ran)."""
        finished = set(self.part_trial_ids(finished_only=True))
        gone = []
        for tid in self.part_trial_ids(finished_only=False):
            if tid not in finished:
                for table in TABLES:
                    self.part_path(tid, table).unlink(missing_ok=True)
                gone.append(tid)
        return gone

    # --- tables -------------------------------------------------------------------------------------
    def read_table(self, table: str, columns: Sequence[str] | None = None, *, include_running: bool = False,
                   dictionary: bool = False, ids: Sequence[str] | None = None) -> pa.Table | None:
        """One table: compacted rows plus finished (and, if asked, running) parts; parts win. ``columns``: only
        those that the files have (None: all). ``dictionary``: the :data:`DICTIONARY_COLUMNS` of steps/events
        read dictionary-encoded. ``ids``: the part trial ids to read, when the caller listed them already.

        Safe while trials write and the driver compacts: parts are read before the compacted table, so a
        compaction in between can only show a trial twice (and the part copy wins), never lose it.
        """
        if ids is None:
            ids = self.part_trial_ids(finished_only=not include_running)
        wanted = columns
        if ids and columns is not None and "trial_id" not in columns:  # needed to let parts win over the table
            columns = [*columns, "trial_id"]
        encoded: list[str] = []
        if dictionary and table != "trials" and "trial_id" in (columns or ()):
            encoded = [c for c in DICTIONARY_COLUMNS if c in (columns or ())]
        parts: list[pa.Table] = []
        read_ids: list[str] = []
        for tid in ids:
            row = read_parquet(self.part_path(tid, "trials"), columns if table == "trials" else ["trial_id"])
            if row is None:  # compacted (or discarded) meanwhile: the main table has it
                continue
            read_ids.append(tid)
            t = row if table == "trials" else read_parquet(self.part_path(tid, table), columns, encoded)
            if t is not None:
                parts.append(t)
        main = read_parquet(self.table_path(table), columns, encoded)
        if main is not None and read_ids and "trial_id" in main.column_names:
            main = main.filter(pc.invert(pc.is_in(main.column("trial_id"), pa.array(read_ids))))
        out = concat([main, *parts])
        if out is not None and wanted is not None and list(wanted) != list(columns or []):
            out = out.select([c for c in wanted if c in out.column_names])
        return out

    def read_tables(self, include_running: bool = False) -> dict[str, pa.Table | None]:
        """The three tables (every column), each as :meth:`read_table` reads it."""
        ids = self.part_trial_ids(finished_only=not include_running)
        return {table: self.read_table(table, ids=ids) for table in TABLES}

    def compact(self) -> int:
        """Fold finished parts into the study tables; return how many trials were folded."""
        ids = self.part_trial_ids(finished_only=True)
        if not ids:
            return 0
        tables = self.read_tables(include_running=False)
        for table in ("steps", "events", "trials"):  # trials last: it is what readers count
            t = tables[table]
            if t is None:
                if table == "trials":
                    continue
                t = (STEPS_SCHEMA if table == "steps" else EVENTS_SCHEMA).empty_table()
            write_table_atomic(t, self.table_path(table))
        for tid in ids:
            for table in TABLES:
                self.part_path(tid, table).unlink(missing_ok=True)
        return len(ids)
