"""One error type for bad input: it names the file, the key, the rule and the value."""

from __future__ import annotations

from typing import Any

# A value is shown up to this many characters (a long string, list or mapping is cut, with "..." and its length).
MAX_SHOWN = 100


def shown(value: Any, limit: int = MAX_SHOWN) -> str:
    """``repr(value)`` on one line, cut to about ``limit`` characters."""
    text = " ".join(repr(value).split())
    if len(text) <= limit:
        return text
    text = text[:limit - 3] + "..."
    if isinstance(value, str):
        return f"{text}, {len(value)} characters"
    if isinstance(value, list | tuple | dict | set):
        return f"{text}, {len(value)} items"
    return text


class ConfigError(ValueError):
    """Invalid user input (search space, policy file, CLI option).

    The message is one line: ``FILE[:LINE[:COLUMN]]: KEY: RULE (got VALUE)``. The CLI prints it and exits with
    status 2. Parts that say nothing are left out: the key of an error about the whole file (``FILE: cannot read
    ...``), the value where ``show_value`` is false (the rule states it already, or the key is the offending
    part: an unknown key), and the value of a whole-file error when it is None or the file name itself. A long
    value is cut (``shown``). An error raised from a YAML syntax error (``raise ConfigError(...) from exc``,
    ``exc`` from ``hyperswitch.config.yamlio``) takes its line and column unless it was given its own.
    """

    def __init__(self, key: str, rule: str, value: Any = None, *, file: str | None = None,
                 line: int | None = None, column: int | None = None, show_value: bool = True) -> None:
        self.file = file
        self.key = key
        self.rule = rule
        self.value = value
        self.line = line
        self.column = column
        self.show_value = show_value
        super().__init__(self._format())

    @property
    def location(self) -> tuple[int | None, int | None]:
        """(line, column), 1-based: the error's own, else those of the YAML syntax error that caused it."""
        if self.line is not None:
            return self.line, self.column
        cause = self.__cause__
        return getattr(cause, "line", None), getattr(cause, "column", None)

    @property
    def shows_value(self) -> bool:
        if not self.show_value:
            return False
        return bool(self.key) or not (self.value is None or (isinstance(self.value, str) and self.value == self.file))

    def _format(self) -> str:
        line, column = self.location
        where = self.file or ""
        if where and line is not None:
            where += f":{line}" + (f":{column}" if column is not None else "")
        parts = [p for p in (where, self.key, self.rule) if p]
        text = ": ".join(parts)
        return f"{text} (got {shown(self.value)})" if self.shows_value else text

    def __str__(self) -> str:
        return self._format()  # (the location may come from __cause__, set after __init__)

    def __reduce__(self) -> Any:
        # Picklable (Ray sends errors between processes): the default calls cls(message), which __init__ refuses.
        line, column = self.location
        return _rebuild, (self.__class__, {**self.__dict__, "line": line, "column": column}, str(self))

    def replace(self, **changes: Any) -> ConfigError:
        """A copy with some fields changed (key, rule, value, file, line, column, show_value)."""
        line, column = self.location
        fields = {"key": self.key, "rule": self.rule, "value": self.value, "file": self.file, "line": line,
                  "column": column, "show_value": self.show_value, **changes}
        return ConfigError(fields.pop("key"), fields.pop("rule"), fields.pop("value"), **fields)

    def with_file(self, file: str) -> ConfigError:
        """Return the same error attributed to ``file`` (keeps an existing file name)."""
        if self.file:
            return self
        return self.replace(file=file)

    def under(self, prefix: str) -> ConfigError:
        """Return the same error with its key nested under ``prefix`` (``prefix.key``)."""
        return self.replace(key=f"{prefix}.{self.key}" if self.key else prefix)


def _rebuild(cls: type[ConfigError], state: dict[str, Any], message: str) -> ConfigError:
    exc = cls.__new__(cls, message)
    exc.args = (message,)
    exc.__dict__.update(state)
    return exc
