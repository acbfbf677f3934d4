"""Where studies are kept: a local folder, or a URI of any file system ``pyarrow.fs`` opens (``s3://BUCKET/PREFIX``,
``gs://BUCKET/PREFIX``, ``file:///ABSOLUTE/PATH``, ...), so that the nodes of a cluster can share them.

:func:`open_storage` turns ``--storage`` (or a study folder given as a URI) into a *study path*: a plain
:class:`pathlib.Path` for a local folder and for ``file://`` URIs, which keep today's behaviour bit for bit (files
written through a temporary file and a rename), or an :class:`ObjectPath` for anything else: the pyarrow
``FileSystem`` and the path in it, with the subset of :class:`pathlib.Path` that the results package uses
(``/``, ``name``, ``parent``, ``exists``, ``iterdir``, ``glob``, ``read_bytes``, ``write_bytes``, ``unlink``,
``stat``, ...). ``str()`` of an :class:`ObjectPath` is its URI, query included, so a trial on another node reopens
the same place from the string it is given.

On an object store, writes and reads are whole objects:

- **Writes** are one upload of the whole object to its final key (:meth:`ObjectPath.write_bytes`; S3 makes an
  object visible only when its PUT or multipart upload completes): there is no rename on an object store, and no
  need for one. A trial's part files keep their keys (``parts/<trial>.<table>.parquet``) and the trial row part
  stays the commit marker: it is written last, and a reader sees the previous or the new version of each object.
- **Reads** fetch the whole object and parse it in memory (:func:`read_consistent`): reading the footer and the
  pages with separate requests could mix two versions of an object replaced in between. pyarrow itself reads an
  object as a HEAD (its size) and a GET of that range, so an object replaced between the two comes back cut to the
  old size, or padded with zeros to it. Neither parses (a Parquet file ends in its footer and ``PAR1``; JSON does
  not end in NULs or mid-value), so a read that does not parse is read again, up to :data:`READ_TRIES` times, and
  only then reported as unreadable. Column selection saves decoding, not transfer.
- **Versions** for the caches (:func:`file_version`, :func:`list_versions`) are the object's size and its
  modification time as the store reports it (S3: whole seconds). Two writes of the same size within one such tick
  would look alike, so :func:`recent_marker` adds the current second to a version while its newest object is
  younger than :data:`RECENT_S`: such entries are recomputed once a second at most, until the objects settle.

Credentials and the endpoint come from pyarrow's own resolution (for S3: the ``AWS_*`` environment variables,
``AWS_ENDPOINT_URL`` included, ``~/.aws``, an instance role), or from the URI's query (``?endpoint_override=HOST:PORT
&scheme=http&region=...``) as ``pyarrow.fs.FileSystem.from_uri`` reads it. Secrets never go in the URI: it is
printed and recorded in study.json.
"""

from __future__ import annotations

import contextlib
import fnmatch
import os
import re
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, NamedTuple, TypeVar
from urllib.parse import parse_qsl, urlsplit

from hyperswitch.errors import ConfigError

_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://")
RULE = ("a storage is a local folder or a URI that pyarrow.fs opens: s3://BUCKET/PREFIX (credentials and endpoint "
        "from the AWS environment variables, or ?endpoint_override=HOST:PORT&scheme=http), gs://BUCKET/PREFIX, "
        "file:///ABSOLUTE/PATH")
SECRET_KEYS = frozenset({"access_key", "secret_key", "session_token"})
OBJECT_STORES = frozenset({"s3", "gs", "gcs", "abfs", "abfss", "az"})
RECENT_S = 10.0  # objects younger than this (by this host's clock) may still change within their mtime's tick
READ_TRIES = 5  # reads of an object that does not parse (replaced while it was read) before it counts as broken

ENDPOINT_VARIABLES = ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_PROFILE", "AWS_DEFAULT_REGION", "AWS_REGION")
_FILESYSTEMS: dict[str, tuple[Any, str]] = {}
_FILESYSTEMS_LOCK = threading.Lock()
T = TypeVar("T")


class StorageError(ConfigError):
    """A storage URI that cannot be used: one line naming the URI and the rule (the CLI exits 2)."""

    def __init__(self, uri: str, problem: str, key: str = "--storage") -> None:
        super().__init__(key, f"{problem}; {RULE}", uri)


def is_uri(text: Any) -> bool:
    """Whether ``text`` is a URI (``scheme://...``), not a local path."""
    return isinstance(text, str) and _SCHEME.match(text) is not None


def _short(exc: BaseException) -> str:
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return " ".join(first.split())[:200]


def _filesystem(uri: str, key: str) -> tuple[Any, str]:
    """``FileSystem.from_uri(uri)``, once per process, URI and endpoint (a file system object holds its
    connections; the endpoint may come from the environment)."""
    cache_key = "\0".join([uri, *(os.environ.get(k, "") for k in ENDPOINT_VARIABLES)])
    with _FILESYSTEMS_LOCK:
        hit = _FILESYSTEMS.get(cache_key)
    if hit is not None:
        return hit
    import pyarrow.fs as pafs

    try:
        got = pafs.FileSystem.from_uri(uri)
    except Exception as exc:  # ArrowInvalid (a bad URI or query), OSError (a missing library, ...)
        raise StorageError(uri, f"cannot open this storage ({_short(exc)})", key) from None
    with _FILESYSTEMS_LOCK:
        return _FILESYSTEMS.setdefault(cache_key, got)


def open_storage(location: str | os.PathLike[str] | ObjectPath, key: str = "--storage") -> StudyPath:
    """A storage folder or a study folder as a study path: a local path (also for ``file://``) or an
    :class:`ObjectPath`. Errors: :class:`StorageError`, one line naming the URI and the rule."""
    if isinstance(location, ObjectPath | Path):
        return location
    text = os.fspath(location)
    if not is_uri(text):
        return Path(text)
    parts = urlsplit(text)
    scheme = parts.scheme.lower()
    query = dict(parse_qsl(parts.query, keep_blank_values=True))
    secret = sorted(SECRET_KEYS & set(query))
    if secret:
        raise StorageError(text, f"carries credentials ({', '.join(secret)}): a storage URI is printed and recorded "
                           "in study.json; give them in the environment (AWS_ACCESS_KEY_ID, ...) instead", key)
    if parts.fragment:
        raise StorageError(text, "has a #fragment", key)
    if scheme == "file":
        if parts.query:
            raise StorageError(text, "a file:// URI takes no query", key)
        fs, path = _filesystem(text, key)
        return Path(path)
    fs, path = _filesystem(text, key)
    path = path.rstrip("/")
    if scheme in OBJECT_STORES and not path:
        raise StorageError(text, "names no bucket", key)
    base = f"{parts.scheme}://{parts.netloc}{parts.path}".rstrip("/")
    return ObjectPath(fs, path, base, parts.query, scheme)


def study_path(location: str | os.PathLike[str] | ObjectPath) -> StudyPath:
    """:func:`open_storage`, with a local path made absolute (as ``StudyStore`` always kept it)."""
    p = open_storage(location)
    return p.resolve() if isinstance(p, Path) else p


def is_remote(path: Any) -> bool:
    return isinstance(path, ObjectPath)


class ObjectStat(NamedTuple):
    st_size: int
    st_mtime_ns: int

    @property
    def st_mtime(self) -> float:
        return self.st_mtime_ns / 1e9


class ObjectPath:
    """A file or folder on a pyarrow file system that is not local (an object store: folders are key prefixes).
    Immutable; ``str()`` is its URI (with the storage URI's query), equal paths compare equal."""

    __slots__ = ("fs", "path", "query", "scheme", "uri")

    def __init__(self, fs: Any, path: str, uri: str, query: str = "", scheme: str = "s3") -> None:
        self.fs, self.path, self.uri, self.query, self.scheme = fs, path.strip("/"), uri.rstrip("/"), query, scheme

    # --- naming -------------------------------------------------------------------------------------------------
    def __truediv__(self, other: str | os.PathLike[str]) -> ObjectPath:
        rel = os.fspath(other).strip("/")
        if not rel:
            return self
        if any(p in ("", ".", "..") for p in rel.split("/")):
            raise ValueError(f"not a plain relative path: {rel!r}")
        return ObjectPath(self.fs, f"{self.path}/{rel}" if self.path else rel, f"{self.uri}/{rel}", self.query,
                          self.scheme)

    @property
    def name(self) -> str:
        return self.path.rpartition("/")[2]

    @property
    def parent(self) -> ObjectPath:
        """The folder above; above a bucket, the file system's root (path ``""``), whose parent is itself."""
        if not self.path:
            return self
        cut = len(self.name) + (1 if "/" in self.path else 0)  # "s3://b/runs" -> "s3://b" -> "s3://"
        return ObjectPath(self.fs, self.path.rpartition("/")[0], self.uri[: len(self.uri) - cut], self.query,
                          self.scheme)

    def __str__(self) -> str:
        return f"{self.uri}?{self.query}" if self.query else self.uri

    def __repr__(self) -> str:
        return f"ObjectPath({str(self)!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ObjectPath) and str(self) == str(other)

    def __hash__(self) -> int:
        return hash(("ObjectPath", str(self)))

    def __lt__(self, other: ObjectPath) -> bool:
        return str(self) < str(other)

    def resolve(self) -> ObjectPath:
        return self

    def absolute(self) -> ObjectPath:
        return self

    # --- looking ------------------------------------------------------------------------------------------------
    def info(self) -> Any:
        return self.fs.get_file_info(self.path)

    def exists(self) -> bool:
        import pyarrow.fs as pafs

        return bool(self.info().type != pafs.FileType.NotFound)

    def is_file(self) -> bool:
        import pyarrow.fs as pafs

        return bool(self.info().type == pafs.FileType.File)

    def is_dir(self) -> bool:
        import pyarrow.fs as pafs

        return bool(self.info().type == pafs.FileType.Directory)

    def stat(self) -> ObjectStat:
        import pyarrow.fs as pafs

        info = self.info()
        if info.type == pafs.FileType.NotFound:
            raise FileNotFoundError(2, "No such file or directory", str(self))
        return ObjectStat(int(info.size or 0), int(info.mtime_ns or 0))

    def _children(self) -> list[Any]:
        import pyarrow.fs as pafs

        return list(self.fs.get_file_info(pafs.FileSelector(self.path, allow_not_found=True)))

    def iterdir(self) -> Iterator[ObjectPath]:
        for info in sorted(self._children(), key=lambda i: i.path):
            yield self / info.base_name

    def list_versions(self) -> list[tuple[str, int, int]]:
        """``(name, mtime_ns, size)`` of the files directly in this folder (one listing); [] if there is none."""
        import pyarrow.fs as pafs

        return [(i.base_name, int(i.mtime_ns or 0), int(i.size or 0)) for i in self._children()
                if i.type == pafs.FileType.File]

    def glob(self, pattern: str) -> Iterator[ObjectPath]:
        """Paths below this one that match ``pattern`` (``/``-separated; ``*``, ``?`` and ``[...]`` within one
        component), as :meth:`pathlib.Path.glob` finds them (no ``**``)."""
        current = [self]
        comps = [c for c in pattern.split("/") if c]
        for i, comp in enumerate(comps):
            last = i == len(comps) - 1
            found: list[ObjectPath] = []
            for d in current:
                if not any(ch in comp for ch in "*?["):
                    found.append(d / comp)
                    continue
                found += [d / info.base_name for info in d._children() if fnmatch.fnmatchcase(info.base_name, comp)]
            current = found if not last else [p for p in found if p.exists()]
        return iter(sorted(current))

    # --- reading and writing ------------------------------------------------------------------------------------
    def read_bytes(self) -> bytes:
        """The whole object (a HEAD and a GET: see :func:`read_consistent`). ``FileNotFoundError`` if there is
        none."""
        return self.read_buffer().to_pybytes()

    def read_buffer(self) -> Any:
        """The whole object as an Arrow-owned ``pa.Buffer`` (for Parquet: a Python-owned buffer handed to Arrow's
        reader can be released on an Arrow pool thread as the interpreter exits, which aborts the process).
        ``FileNotFoundError`` if there is none."""
        try:
            with self.fs.open_input_stream(self.path) as f:
                return f.read_buffer()
        except FileNotFoundError:
            raise
        except OSError as exc:  # deleted between the HEAD and the GET (compaction removes parts): it is gone
            if any(m in str(exc) for m in GONE_MARKERS):
                raise FileNotFoundError(2, "No such file or directory", str(self)) from None
            raise

    def read_text(self, encoding: str = "utf-8") -> str:
        return self.read_bytes().decode(encoding)

    def write_bytes(self, data: bytes) -> int:
        """The whole object in one upload: readers see the old object or the new one, never a part."""
        with self.fs.open_output_stream(self.path) as f:
            f.write(data)
        return len(data)

    def write_text(self, text: str, encoding: str = "utf-8") -> int:
        return self.write_bytes(text.encode(encoding))

    def unlink(self, missing_ok: bool = False) -> None:
        try:
            self.fs.delete_file(self.path)
        except FileNotFoundError:
            if not missing_ok:
                raise

    def mkdir(self, parents: bool = False, exist_ok: bool = False) -> None:
        """Folders are key prefixes on an object store: nothing to make, but the bucket must exist (a one-line
        :class:`StorageError` if it does not). Elsewhere (HDFS, ...) the folder is made."""
        import pyarrow.fs as pafs

        if self.scheme in OBJECT_STORES:
            bucket = self.path.split("/")[0]
            if self.fs.get_file_info(bucket).type == pafs.FileType.NotFound:
                try:  # made only where the URI says allow_bucket_creation=true
                    self.fs.create_dir(bucket)
                except OSError:
                    base = self.uri[: len(self.uri) - len(self.path)] + bucket
                    raise StorageError(str(self), f"bucket {bucket} does not exist (create it first, e.g. "
                                       f"`aws s3 mb {base}`, or add allow_bucket_creation=true to the URI's query)"
                                       ) from None
            return
        self.fs.create_dir(self.path, recursive=parents)

    def rmdir(self) -> None:
        if self.scheme not in OBJECT_STORES:
            self.fs.delete_dir(self.path)

    def rmtree(self) -> None:
        """Delete this folder and everything under it; like ``shutil.rmtree(path, ignore_errors=True)``, nothing
        if there is none or it is a file, and errors ignored."""
        with contextlib.suppress(OSError):
            self.fs.delete_dir(self.path)


StudyPath = Path | ObjectPath


# --- what the results package calls -----------------------------------------------------------------------------

# How pyarrow's S3 client words a GET of an object deleted after its HEAD (an OSError, not FileNotFoundError).
GONE_MARKERS = ("RESOURCE_NOT_FOUND", "NoSuchKey", "NO_SUCH_KEY")


def read_consistent(path: ObjectPath, parse: Callable[[Any], T], *, arrow: bool = False) -> T:
    """``parse(the object's bytes)``, reading the object again while what was read does not parse (it was replaced
    while being read: module docstring), :data:`READ_TRIES` reads at most; then ``parse``'s own error.
    ``FileNotFoundError`` (no such object) at once. ``arrow``: hand ``parse`` an Arrow-owned ``pa.Buffer``
    (:meth:`ObjectPath.read_buffer`), not ``bytes``."""
    for attempt in range(READ_TRIES):
        data = path.read_buffer() if arrow else path.read_bytes()
        try:
            return parse(data)
        except Exception:
            if attempt == READ_TRIES - 1:
                raise
    raise AssertionError("unreachable")


def glob(path: StudyPath, pattern: str) -> list[StudyPath]:
    """``path.glob(pattern)``, sorted, for a local path and an :class:`ObjectPath` alike."""
    found: list[StudyPath] = list(path.glob(pattern))
    return sorted(found, key=str)


def rmtree(path: StudyPath) -> None:
    """Delete a folder and everything under it; nothing if it is gone."""
    if isinstance(path, ObjectPath):
        path.rmtree()
        return
    import shutil

    shutil.rmtree(path, ignore_errors=True)


def file_version(path: StudyPath) -> tuple[int, int] | None:
    """``(mtime_ns, size)`` of a file, or None if there is none."""
    if isinstance(path, ObjectPath):
        import pyarrow.fs as pafs

        info = path.info()
        return None if info.type != pafs.FileType.File else (int(info.mtime_ns or 0), int(info.size or 0))
    try:
        st = path.stat()
    except FileNotFoundError:
        return None
    return st.st_mtime_ns, st.st_size


def list_versions(folder: StudyPath) -> list[tuple[str, int, int]]:
    """``(name, mtime_ns, size)`` of each file directly in ``folder``; [] if the folder is missing."""
    if isinstance(folder, ObjectPath):
        return folder.list_versions()
    out = []
    try:
        with os.scandir(folder) as it:
            for e in it:
                with contextlib.suppress(FileNotFoundError):
                    st = e.stat()
                    out.append((e.name, st.st_mtime_ns, st.st_size))
    except FileNotFoundError:
        pass
    return out


def recent_marker(path: StudyPath, mtimes_ns: list[int]) -> tuple[Any, ...]:
    """``()`` for local files (nanosecond times) and for objects that settled; for an object store with an object
    younger than :data:`RECENT_S`, ``("recent", <this second>)``: a cache key holding it changes every second."""
    if not isinstance(path, ObjectPath) or not mtimes_ns:
        return ()
    now = time.time()
    if now - max(mtimes_ns) / 1e9 < RECENT_S:
        return ("recent", int(now))
    return ()


def ray_storage(path: StudyPath) -> tuple[str, Any]:
    """Ray's ``RunConfig(storage_path=, storage_filesystem=)`` for a folder: ``(absolute path, None)`` locally,
    ``(path in the file system, the pyarrow file system)`` on remote storage."""
    if isinstance(path, ObjectPath):
        return path.path, path.fs
    return str(Path(path).resolve()), None


def display(path: StudyPath) -> str:
    """A study path for messages: a local path made absolute, an :class:`ObjectPath` as its URI."""
    return str(path) if isinstance(path, ObjectPath) else str(Path(path).resolve())
