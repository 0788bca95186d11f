"""Avro binary decoders compiled from a schema: the reading side of `avro_writer`.

The worker decodes every ChannelEvent it ingests; fastavro's reader walks the schema for each
one (py-spy: ~7% of the processor's samples). `compile_reader` turns a writer schema into one
straight-line Python function. It is used only where no schema resolution is needed (the
payload was written with the current schema); older writer schemas resolve through fastavro.

It returns exactly what fastavro returns (logical types through fastavro's own converters:
timestamp-millis as an aware datetime, decimal as a Decimal) for what it reads, and reads only
what it is sure of: varints of at most 9 bytes, single or positive-count blocks, boolean bytes
0 or 1, the whole payload consumed. On anything else (truncated, malformed or unusual bytes) it
raises `Unsupported` and the caller decodes with fastavro, so bad input is refused exactly as
before (tests/unit/test_contracts_avro_compiled.py compares both, on valid and on fuzzed bytes).
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from typing import Any

from fastavro.read import LOGICAL_READERS

from omnid.contracts.avro_source import NotCompiled, SourceBuilder, Unsupported

# (payload, offset of the Avro body) -> the record; raises Unsupported.
RecordReader = Callable[[bytes, int], dict[str, Any]]

# The logical types this reader converts, by fastavro's own readers (its LOGICAL_READERS keys).
_LOGICAL = {("long", "timestamp-millis"), ("bytes", "decimal")}
_MALFORMED = (IndexError, UnicodeDecodeError, struct.error, ArithmeticError, ValueError, KeyError)


def _long(data: bytes, position: int) -> tuple[int, int]:
    """A zigzag varint of at most 9 bytes (63 bits: no reader can disagree on its value)."""
    byte = data[position]
    n = byte & 0x7F
    shift = 7
    position += 1
    while byte & 0x80:
        if shift > 56:
            raise Unsupported
        byte = data[position]
        position += 1
        n |= (byte & 0x7F) << shift
        shift += 7
    return (n >> 1) ^ -(n & 1), position


_double = struct.Struct("<d").unpack_from
_float = struct.Struct("<f").unpack_from


class _Compiler(SourceBuilder):
    def long(self, target: str, indent: str) -> list[str]:
        """Reads a long into `target`: one-byte values inline, the rest through _long."""
        return [
            f"{indent}x = b[p]",
            f"{indent}if x < 0x80:",
            f"{indent}    {target} = (x >> 1) ^ -(x & 1)",
            f"{indent}    p += 1",
            f"{indent}else:",
            f"{indent}    {target}, p = _long(b, p)",
        ]

    def sized(self, target: str, indent: str) -> list[str]:
        """Reads a length-prefixed byte string into `target`."""
        size, end = self.temp("n"), self.temp("e")
        return [
            *self.long(size, indent),
            f"{indent}{end} = p + {size}",
            f"{indent}if {size} < 0 or {end} > len(b):",
            f"{indent}    raise Unsupported",
            f"{indent}{target} = b[p:{end}]",
            f"{indent}p = {end}",
        ]

    def record(self, schema: dict[str, Any], target: str, indent: str) -> list[str]:
        name = schema["name"]
        self.enter(name)
        lines: list[str] = []
        fields = []
        for field in schema["fields"]:
            value = self.temp("v")
            lines.extend(self.value(field["type"], value, indent))
            fields.append(f"{field['name']!r}: {value}")
        lines.append(f"{indent}{target} = {{{', '.join(fields)}}}")
        self.leave(name)
        return lines

    def value(self, schema: Any, target: str, indent: str) -> list[str]:
        """Lines that read one value of `schema` at `p` into the local `target`."""
        if isinstance(schema, list):
            return self.union(schema, target, indent)
        if isinstance(schema, dict):
            kind = schema["type"]
            logical = schema.get("logicalType")
            if logical is not None:
                if (kind, logical) not in _LOGICAL:
                    raise NotCompiled(f"{kind}/{logical}")
                convert = self.constant(LOGICAL_READERS[f"{kind}-{logical}"])
                schema_constant = self.constant(schema)
                raw = self.temp("r")
                return [
                    *self.value(kind, raw, indent),
                    f"{indent}{target} = {convert}({raw}, {schema_constant}, None)",
                ]
            if kind == "record":
                return self.record(schema, target, indent)
            if kind in ("array", "map"):
                return self.blocks(schema, target, indent)
            schema = kind
        if schema == "null":
            return [f"{indent}{target} = None"]
        if schema == "boolean":
            return [
                f"{indent}x = b[p]",
                f"{indent}if x > 1:",
                f"{indent}    raise Unsupported",
                f"{indent}{target} = x == 1",
                f"{indent}p += 1",
            ]
        if schema == "long":
            return self.long(target, indent)
        if schema == "int":  # a long on the wire; a reader may refuse one beyond 32 bits
            return [
                *self.long(target, indent),
                f"{indent}if not -0x80000000 <= {target} <= 0x7FFFFFFF:",
                f"{indent}    raise Unsupported",
            ]
        if schema in ("double", "float"):
            unpack, size = ("_double", 8) if schema == "double" else ("_float", 4)
            return [f"{indent}({target},) = {unpack}(b, p)", f"{indent}p += {size}"]
        if schema == "string":
            raw = self.temp("s")
            return [*self.sized(raw, indent), f"{indent}{target} = {raw}.decode()"]
        if schema == "bytes":
            return self.sized(target, indent)
        raise NotCompiled(str(schema))

    def blocks(self, schema: dict[str, Any], target: str, indent: str) -> list[str]:
        """An array or map: blocks of positive counts ended by a zero count."""
        count, item, key = self.temp("n"), self.temp("i"), self.temp("k")
        is_map = schema["type"] == "map"
        lines = [
            f"{indent}{target} = {{}}" if is_map else f"{indent}{target} = []",
            *self.long(count, indent),
            f"{indent}while {count}:",
            f"{indent}    if {count} < 0:",
            f"{indent}        raise Unsupported",
            f"{indent}    for _ in range({count}):",
        ]
        inner = indent + "        "
        if is_map:
            lines.extend(self.value("string", key, inner))
            lines.extend(self.value(schema["values"], item, inner))
            lines.append(f"{inner}{target}[{key}] = {item}")
        else:
            lines.extend(self.value(schema["items"], item, inner))
            lines.append(f"{inner}{target}.append({item})")
        lines.extend(self.long(count, indent + "    "))
        return lines

    def union(self, branches: list[Any], target: str, indent: str) -> list[str]:
        index = self.temp("u")
        lines = self.long(index, indent)
        keyword = "if"
        for position, branch in enumerate(branches):
            lines.append(f"{indent}{keyword} {index} == {position}:")
            lines.extend(self.value(branch, target, indent + "    "))
            keyword = "elif"
        lines.extend([f"{indent}else:", f"{indent}    raise Unsupported"])
        return lines


def compile_reader(schema: dict[str, Any]) -> RecordReader | None:
    """The compiled reader of a fastavro-parsed record schema (as writer, no resolution), or
    None if it uses a type the compiler does not cover."""
    compiler = _Compiler()
    try:
        body = compiler.record(schema, "record", "    ")
    except NotCompiled:
        return None
    record_reader = compiler.function(
        "read",
        ["def read(b, p):", *body, "    return record, p"],
        {"_long": _long, "_double": _double, "_float": _float},
        f"avro reader {schema['name']}",
    )

    def read(payload: bytes, offset: int) -> dict[str, Any]:
        try:
            record, end = record_reader(payload, offset)
        except _MALFORMED:
            raise Unsupported from None
        if end != len(payload):
            raise Unsupported  # trailing bytes: fastavro's reading says how many
        return record  # type: ignore[no-any-return]

    return read
