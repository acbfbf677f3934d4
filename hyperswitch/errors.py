"""One error type for bad input: it names the file, the key, the rule and the value."""

from __future__ import annotations

from typing import Any


class ConfigError(ValueError):
    """Invalid user input (search space, policy file, CLI option).

    The message is one line: ``FILE: KEY: RULE (got VALUE)``. The CLI prints it and exits with status 2.
    """

    def __init__(self, key: str, rule: str, value: Any = None, *, file: str | None = None) -> None:
        self.file = file
        self.key = key
        self.rule = rule
        self.value = value
        super().__init__(self._format())

    def _format(self) -> str:
        where = f"{self.file}: " if self.file else ""
        return f"{where}{self.key}: {self.rule} (got {self.value!r})"

    def with_file(self, file: str) -> ConfigError:
        """Return the same error attributed to ``file`` (keeps an existing file name)."""
        if self.file:
            return self
        return ConfigError(self.key, self.rule, self.value, file=file)

    def under(self, prefix: str) -> ConfigError:
        """Return the same error with its key nested under ``prefix`` (``prefix.key``)."""
        key = f"{prefix}.{self.key}" if self.key else prefix
        return ConfigError(key, self.rule, self.value, file=self.file)
