"""Avro binary encoders compiled from a schema: one Python function per record schema.

fastavro's writer walks the schema for every record it writes and resolves each union by
validating the value against its branches; the worker writes two records (IdentityChange,
ProfileUpdate) for most events, and that walk was its largest single cost (py-spy: ~10% of the
worker's samples). `compile_writer` turns a schema into straight-line Python source once, with
the field order, the union branches and the block layout of arrays and maps written out.

Byte-for-byte the same as fastavro (tests/unit/test_contracts_avro_writer.py compares both on
generated records). The compiled function only takes the values it is sure of (exact types,
longs in range, plain dicts and lists); on anything else it raises `Unsupported` and the caller
writes the record with fastavro, so odd values and invalid records are met exactly as before
(same bytes, same errors). A schema with a type it does not know (bytes, fixed, enum, decimal,
...) is not compiled: `compile_writer` returns None.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from typing import Any

from omnid.contracts.avro_source import NotCompiled, SourceBuilder, Unsupported

# (record) -> its Avro body; raises Unsupported for a value it does not take.
RecordWriter = Callable[[Any], bytes]

_LONG_MIN, _LONG_MAX = -(1 << 63), (1 << 63) - 1
_INT_MIN, _INT_MAX = -(1 << 31), (1 << 31) - 1
# Zigzag varints of the lengths of short strings, and a bounded memo of longs already seen
# (timestamps repeat within a record and from one record to the next).
_SHORT = 1024
_MEMO_ENTRIES = 4096


def _varint(value: int) -> bytes:
    """The zigzag varint of a long (the caller checked its range)."""
    n = (value << 1) ^ (value >> 63)
    out = bytearray()
    while n > 0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


_LENGTHS = tuple(_varint(n) for n in range(_SHORT))
_longs: dict[int, bytes] = {}
_strings: dict[str, bytes] = {}


def _long(value: Any) -> bytes:
    if value.__class__ is not int or not _LONG_MIN <= value <= _LONG_MAX:
        raise Unsupported
    encoded = _varint(value)
    if len(_longs) >= _MEMO_ENTRIES:
        _longs.clear()
    _longs[value] = encoded
    return encoded


def _int(value: Any) -> bytes:
    if value.__class__ is not int or not _INT_MIN <= value <= _INT_MAX:
        raise Unsupported
    return _long(value)


def _string(value: Any) -> bytes:
    if value.__class__ is not str:
        raise Unsupported
    encoded = value.encode()
    size = len(encoded)
    written = (_LENGTHS[size] if size < _SHORT else _varint(size)) + encoded
    if len(_strings) >= _MEMO_ENTRIES:
        _strings.clear()
    _strings[value] = written
    return written


def _boolean(value: Any) -> bytes:
    if value.__class__ is not bool:
        raise Unsupported
    return b"\x01" if value else b"\x00"


def _double(value: Any) -> bytes:
    if value.__class__ is not float:
        raise Unsupported
    return _pack_double(value)


def _float(value: Any) -> bytes:
    if value.__class__ is not float:
        raise Unsupported
    return _pack_float(value)


def _null(value: Any) -> bytes:
    if value is not None:
        raise Unsupported
    return b""


_pack_double = struct.Struct("<d").pack
_pack_float = struct.Struct("<f").pack

# Primitive (and timestamp) types: the helper that writes one, and the Python type of the value
# it takes, which is how a union of primitives picks its branch (as fastavro's first branch
# that validates: bool is not a long, an int is not a double).
_PRIMITIVES: dict[str, tuple[str, type[Any]]] = {
    "null": ("_null", type(None)),
    "boolean": ("_boolean", bool),
    "int": ("_int", int),
    "long": ("_long", int),
    "float": ("_float", float),
    "double": ("_double", float),
    "string": ("_string", str),
}
_LOGICAL_ON_LONG = {"timestamp-millis"}  # written as the long itself when given an int


class _Compiler(SourceBuilder):
    """Emits the body of one function per top-level schema, nested records written inline."""

    def record(self, schema: dict[str, Any], rec: str, indent: str) -> list[str]:
        name = schema["name"]
        self.enter(name)
        lines = [f"{indent}if {rec}.__class__ is not dict:", f"{indent}    raise Unsupported"]
        for field in schema["fields"]:
            value = self.temp("v")
            if "default" in field:
                default = self.constant(field["default"])
                lines.append(f"{indent}{value} = {rec}.get({field['name']!r}, {default})")
            else:
                lines.append(f"{indent}{value} = {rec}[{field['name']!r}]")
            lines.extend(self.value(field["type"], value, indent))
        self.leave(name)
        return lines

    def value(self, schema: Any, value: str, indent: str) -> list[str]:
        """Lines that append the encoding of `value` (a local name) to `out`."""
        if isinstance(schema, str):
            if schema in ("string", "long"):
                # The memo first (most values were written before); its miss path checks.
                memo, helper = (
                    ("_strings", "_string") if schema == "string" else ("_longs", "_long")
                )
                python_type = "str" if schema == "string" else "int"
                written = self.temp("w")
                return [
                    f"{indent}{written} = {memo}.get({value})",
                    f"{indent}if {written} is None or {value}.__class__ is not {python_type}:",
                    f"{indent}    {written} = {helper}({value})",
                    f"{indent}out += {written}",
                ]
            if schema in _PRIMITIVES:
                return [f"{indent}out += {_PRIMITIVES[schema][0]}({value})"]
            raise NotCompiled(schema)  # a named type by reference: not used by our schemas
        if isinstance(schema, list):
            return self.union(schema, value, indent)
        kind = schema.get("type")
        logical = schema.get("logicalType")
        if logical is not None:
            if kind == "long" and logical in _LOGICAL_ON_LONG:
                return self.value("long", value, indent)  # fastavro: ints pass as they are
            raise NotCompiled(f"{kind}/{logical}")
        if kind == "record":
            return self.record(schema, value, indent)
        if kind == "array":
            item = self.temp("i")
            return [
                f"{indent}if {value}.__class__ is not list:",
                f"{indent}    raise Unsupported",
                f"{indent}if {value}:",
                f"{indent}    out += _long(len({value}))",
                f"{indent}    for {item} in {value}:",
                *self.value(schema["items"], item, indent + "        "),
                f"{indent}out += b'\\x00'",
            ]
        if kind == "map":
            key, item = self.temp("k"), self.temp("i")
            return [
                f"{indent}if {value}.__class__ is not dict:",
                f"{indent}    raise Unsupported",
                f"{indent}if {value}:",
                f"{indent}    out += _long(len({value}))",
                f"{indent}    for {key}, {item} in {value}.items():",
                *self.value("string", key, indent + "        "),
                *self.value(schema["values"], item, indent + "        "),
                f"{indent}out += b'\\x00'",
            ]
        if isinstance(kind, str) and kind in _PRIMITIVES:
            return self.value(kind, value, indent)
        raise NotCompiled(str(kind))

    def union(self, branches: list[Any], value: str, indent: str) -> list[str]:
        """The branch fastavro takes: the first one the value's type fits. Besides primitives
        of distinct types a union may hold one dict-valued (record or map) and one array
        branch; anything more involved is left to fastavro."""
        names = [b if isinstance(b, str) else b.get("type") for b in branches]
        if "float" in names and "double" in names:
            raise NotCompiled("float beside double")  # fastavro prefers double; not needed
        lines: list[str] = []
        seen: set[type[Any]] = set()
        keyword = "if"
        for index, branch in enumerate(branches):
            name = names[index]
            if isinstance(branch, dict) and branch.get("logicalType") is not None:
                raise NotCompiled("logical type in a union")
            if name in _PRIMITIVES:
                python_type = _PRIMITIVES[name][1]
                if python_type in seen:
                    continue  # never chosen: an earlier branch takes these values
                seen.add(python_type)
            elif name in ("record", "array", "map"):
                python_type = list if name == "array" else dict
                if python_type in seen:
                    raise NotCompiled("two container branches of one type in a union")
                seen.add(python_type)
            else:
                raise NotCompiled(f"union branch {name}")
            test = (
                f"{value} is None"
                if name == "null"
                else f"{value}.__class__ is {python_type.__name__}"
            )
            lines.append(f"{indent}{keyword} {test}:")
            # The branch index, a long: _LENGTHS[n] is n's varint.
            lines.append(f"{indent}    out += {self.constant(_LENGTHS[index])}")
            if name != "null":
                lines.extend(self.value(branch, value, indent + "    "))
            keyword = "elif"
        lines.append(f"{indent}else:")
        lines.append(f"{indent}    raise Unsupported")
        return lines


def compile_writer(schema: dict[str, Any]) -> RecordWriter | None:
    """The compiled writer of a fastavro-parsed record schema, or None if it uses a type the
    compiler does not cover (that schema stays with fastavro)."""
    compiler = _Compiler()
    try:
        body = compiler.record(schema, "rec", "    ")
    except NotCompiled:
        return None
    helpers = {
        "_strings": _strings,
        "_longs": _longs,
        "_long": _long,
        "_int": _int,
        "_string": _string,
        "_boolean": _boolean,
        "_double": _double,
        "_float": _float,
        "_null": _null,
    }
    record_writer = compiler.function(
        "write", ["def write(rec, out):", *body], helpers, f"avro writer {schema['name']}"
    )

    def write(record: Any) -> bytes:
        out = bytearray()
        try:
            record_writer(record, out)
        except (KeyError, TypeError, UnicodeEncodeError, OverflowError):
            # A missing field, an unhashable value, a lone surrogate, a double too large for
            # a float: fastavro decides.
            raise Unsupported from None
        return bytes(out)

    return write
