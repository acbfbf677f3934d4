"""Study names: the one rule every command applies before a study name becomes (part of) a path.

A study name is the name of one folder under the storage folder (one prefix under a storage URI), so it must be a
plain file name: letters, digits, ``_``, ``-`` and ``.``; first a letter, digit or ``_`` (not a dot: no hidden
folder, no ``.``/``..``; not a ``-``: it would read as an option on a command line); at most 128 characters. There
is no path separator, so ``storage / name`` is always a folder directly inside ``storage``.
"""

from __future__ import annotations

import os
import re
from typing import Any

from hyperswitch.errors import ConfigError
from hyperswitch.results.fs import ObjectPath, StudyPath, display, open_storage

MAX_LENGTH = 128
_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*")
RULE = (f"a study name must be letters, digits, '_', '-' or '.', start with a letter, digit or '_' and be at most "
        f"{MAX_LENGTH} characters (it names a folder under the storage folder)")


def is_study_name(name: Any) -> bool:
    """Whether ``name`` is a valid study name (see the module docstring)."""
    return isinstance(name, str) and len(name) <= MAX_LENGTH and _RE.fullmatch(name) is not None


def check_study_name(name: Any, key: str, file: str | None = None) -> str:
    """Return ``name`` if it is a valid study name; else raise the one-line :class:`ConfigError`
    ``FILE: KEY: RULE (got NAME)``."""
    if not is_study_name(name):
        raise ConfigError(key, RULE, name, file=file)
    return name


def find_study(study: str | os.PathLike[str] | ObjectPath,
               storage: str | os.PathLike[str] | ObjectPath = "runs") -> StudyPath:
    """The folder of ``study``: a study folder given as a path or a URI (one with ``study.json``), else a study
    name under ``storage`` (a folder or a storage URI, :func:`~hyperswitch.results.fs.open_storage`). A name is
    checked with :func:`check_study_name` first, then looked up among the studies under ``storage``, so no name
    can reach a folder outside it. Errors: :class:`ConfigError`, key ``STUDY`` (``--storage`` for a bad URI)."""
    path = open_storage(study, key="STUDY")
    if (path / "study.json").is_file():
        return path
    text = str(study)
    if not is_study_name(text):
        raise ConfigError("STUDY", f"is not a study folder (it has no study.json), and as a study name: {RULE}",
                          text)
    root = open_storage(storage)
    if isinstance(root, ObjectPath):
        names = sorted(p.name for p in root.iterdir() if (p / "study.json").is_file())
    else:
        names = sorted(p.name for p in root.iterdir() if (p / "study.json").is_file()) if root.is_dir() else []
    if text not in names:
        raise ConfigError("STUDY", f"no study of this name under {display(root)} "
                          f"(studies: {', '.join(names) or 'none'})", text)
    return root / text
