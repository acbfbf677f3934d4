"""Safe YAML loading with YAML 1.2 numbers: ``1e-5`` and ``3E+2`` are floats (PyYAML's YAML 1.1 rules read a
number written without a dot, such as ``1e-5``, as the string ``'1e-5'``). Everything else is ``yaml.SafeLoader``:
no tags, no objects, nothing executed.

A syntax error is a ``YAMLSyntaxError`` (a ``yaml.YAMLError``): the parser's reason on one line, with the line
and column (1-based) where it found the problem. ``load_file`` reads and parses a file and turns every failure into
one ``ConfigError``: ``FILE: cannot read ...`` or ``FILE:LINE:COLUMN: is not valid YAML: REASON``."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from hyperswitch.errors import ConfigError


class SafeLoader(yaml.SafeLoader):
    pass


_FLOAT = re.compile(r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
    |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
    |\.[0-9_]+(?:[eE][-+]?[0-9]+)?
    |[-+]?\.(?:inf|Inf|INF)
    |\.(?:nan|NaN|NAN))$""", re.X)

# Replace the float resolver (PyYAML keeps one list per first character).
SafeLoader.yaml_implicit_resolvers = {
    ch: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:float"]
    for ch, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
SafeLoader.add_implicit_resolver("tag:yaml.org,2002:float", _FLOAT, list("-+0123456789."))


class YAMLSyntaxError(yaml.YAMLError):
    """Text that is not YAML (or uses a tag the safe loader refuses). ``str()`` is ``reason``, one line;
    ``line``/``column`` (1-based, None where the parser gave no position) locate the problem."""

    def __init__(self, reason: str, line: int | None, column: int | None) -> None:
        super().__init__(reason)
        self.reason, self.line, self.column = reason, line, column

    def __str__(self) -> str:
        return self.reason


def _one_line(text: Any) -> str:
    return " ".join(str(text).split())


def _syntax_error(exc: yaml.YAMLError, text: str) -> YAMLSyntaxError:
    if isinstance(exc, yaml.reader.ReaderError):  # a character YAML does not allow: a position, no mark
        line = text.count("\n", 0, exc.position) + 1
        column = exc.position - (text.rfind("\n", 0, exc.position) + 1) + 1
        char = f"#x{exc.character:04x}" if isinstance(exc.character, int) else repr(exc.character)
        return YAMLSyntaxError(f"unacceptable character {char}: {exc.reason}", line, column)
    if not isinstance(exc, yaml.MarkedYAMLError):
        return YAMLSyntaxError(_one_line(exc), None, None)
    problem, context = exc.problem_mark, exc.context_mark
    mark = problem or context
    reason = _one_line(exc.problem or exc.context or type(exc).__name__)
    if exc.context and exc.problem:
        where = (f" at line {context.line + 1}, column {context.column + 1}"
                 if context is not None and (problem is None or context.line != problem.line) else "")
        reason += f" ({_one_line(exc.context)}{where})"
    if exc.note:
        reason += f"; {_one_line(exc.note)}"
    return YAMLSyntaxError(reason, mark.line + 1 if mark else None, mark.column + 1 if mark else None)


def load(text: str) -> Any:
    """``yaml.safe_load`` with YAML 1.2 floats; a syntax error raises ``YAMLSyntaxError``."""
    try:
        return yaml.load(text, Loader=SafeLoader)  # a SafeLoader subclass
    except yaml.YAMLError as exc:
        raise _syntax_error(exc, text) from None


def load_file(path: str | Path, what: str) -> tuple[Any, str]:
    """Read and parse a YAML file: (document, text). ``what`` names the file's kind in the error (``search
    space``, ``policy file``). Raises one ``ConfigError`` naming the file (and the line and column of a syntax
    error)."""
    source = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError("", f"cannot read {what}: {exc.strerror or exc}", file=source) from None
    except UnicodeDecodeError as exc:
        raise ConfigError("", f"cannot read {what}: it is not UTF-8 text (byte {exc.start} is "
                          f"{exc.object[exc.start:exc.start + 1]!r})", file=source, show_value=False) from None
    try:
        return load(text), text
    except YAMLSyntaxError as exc:
        raise ConfigError("", f"is not valid YAML: {exc.reason}", file=source, line=exc.line,
                          column=exc.column) from None
