"""What the compiled Avro writers and readers (`avro_writer`, `avro_reader`) share: the signal
to fall back on fastavro, and the builder of a function's source from a schema."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


class Unsupported(Exception):
    """A value or bytes a compiled function does not take: fastavro handles the record."""


class NotCompiled(Exception):
    """The schema uses a type the compilers leave to fastavro."""


class SourceBuilder:
    """Fresh local names, constants handed to the compiled code, and the guard against
    recursive record types (not compiled)."""

    def __init__(self) -> None:
        self.constants: dict[str, Any] = {}
        self._temp = 0
        self._open: set[str] = set()

    def temp(self, stem: str) -> str:
        self._temp += 1
        return f"{stem}{self._temp}"

    def constant(self, value: Any) -> str:
        name = self.temp("_c")
        self.constants[name] = value
        return name

    def enter(self, record_name: str) -> None:
        if record_name in self._open:
            raise NotCompiled(f"recursive {record_name}")
        self._open.add(record_name)

    def leave(self, record_name: str) -> None:
        self._open.discard(record_name)

    def function(
        self, name: str, lines: list[str], helpers: dict[str, Any], label: str
    ) -> Callable[..., Any]:
        """The function `name` that `lines` (its whole source) define, with `helpers` and the
        constants in its globals; `label` names it in tracebacks and profiles."""
        namespace = {"Unsupported": Unsupported, **helpers, **self.constants}
        exec(compile("\n".join(lines), f"<{label}>", "exec"), namespace)
        return namespace[name]  # type: ignore[no-any-return]
