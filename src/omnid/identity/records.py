"""Commands and states as JSON-safe dicts with a "kind" tag, for Kafka values and RocksDB.

Encoding follows the dataclass fields, so a field added to a command is carried automatically;
decoding is guided by the same type hints, and unknown kinds are refused.
"""

from __future__ import annotations

import dataclasses
import sys
import types
import typing
from enum import Enum
from typing import Any

from omnid.errors import InvalidEvent, RejectionReason
from omnid.identity import commands as _commands
from omnid.identity import model as _model
from omnid.identity import state as _state

_KINDS: dict[str, type[Any]] = {
    cls.__name__: cls
    for cls in (
        _commands.Resolve,
        _commands.Claim,
        _commands.Relabel,
        _commands.Release,
        _commands.Apply,
        _commands.Attach,
        _commands.MergeRequest,
        _commands.MergeOffer,
        _commands.MergeDeclined,
        _commands.OfferRedirected,
        _commands.Absorb,
        _state.IdentifierState,
        _state.ProfileState,
        _state.ProfileIdentifier,
        _state.TraitValue,
        _state.OrderLine,
        _state.ConsentState,
        _model.Identifier,
        _model.Event,
        _model.Purchase,
        _model.ConsentChange,
    )
}
_HINTS: dict[type[Any], dict[str, Any]] = {}


def to_record(obj: Any) -> dict[str, Any]:
    """A plain dict (str keys; str/int/float/bool/None/list/dict values) with a "kind" tag."""
    if not dataclasses.is_dataclass(obj) or type(obj).__name__ not in _KINDS:
        raise TypeError(f"{type(obj).__name__} is not a graph record")
    return _encode(obj)  # type: ignore[no-any-return]


def from_record(record: dict[str, Any]) -> Any:
    """The command or state `to_record` produced; InvalidEvent for a record it cannot read."""
    try:
        return _decode_dataclass(record)
    except (KeyError, TypeError, ValueError, AttributeError) as error:
        raise InvalidEvent(RejectionReason.SCHEMA_INVALID, f"bad graph record: {error}") from None


def _encode(value: Any) -> Any:
    if value is None or isinstance(value, str | bool | int | float):
        return value
    if isinstance(value, Enum):
        return value.value
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        record: dict[str, Any] = {"kind": type(value).__name__}
        for item in dataclasses.fields(value):
            record[item.name] = _encode(getattr(value, item.name))
        return record
    if isinstance(value, dict | types.MappingProxyType):
        return {str(k): _encode(v) for k, v in value.items()}
    if isinstance(value, set | frozenset):
        return sorted(_encode(v) for v in value)
    if isinstance(value, list | tuple):
        return [_encode(v) for v in value]
    raise TypeError(f"cannot encode {type(value).__name__}")


def _hints(cls: type[Any]) -> dict[str, Any]:
    hints = _HINTS.get(cls)
    if hints is None:
        module = sys.modules[cls.__module__]
        namespace = {**vars(_commands), **vars(_state), **vars(_model), **vars(module)}
        hints = typing.get_type_hints(cls, globalns=namespace)
        _HINTS[cls] = hints
    return hints


def _decode_dataclass(record: dict[str, Any]) -> Any:
    cls = _KINDS[record["kind"]]
    hints = _hints(cls)
    values = {
        item.name: _decode(hints[item.name], record[item.name])
        for item in dataclasses.fields(cls)
        if item.name in record
    }
    return cls(**values)


def _decode(hint: Any, value: Any) -> Any:
    origin = typing.get_origin(hint)
    if origin is typing.ClassVar:
        return value
    if origin in (typing.Union, types.UnionType):
        if value is None:
            return None
        options = [a for a in typing.get_args(hint) if a is not type(None)]
        if isinstance(value, dict) and "kind" in value:
            return _decode_dataclass(value)
        for option in options:
            if option in (str, int, float, bool) and isinstance(value, option):
                return value
        return _decode(options[0], value)
    if origin in (dict, typing.Mapping) or (
        origin is not None and getattr(origin, "__name__", "") == "Mapping"
    ):
        _, value_hint = typing.get_args(hint)
        return {k: _decode(value_hint, v) for k, v in value.items()}
    if origin is set:
        (item_hint,) = typing.get_args(hint)
        return {_decode(item_hint, v) for v in value}
    if origin is list:
        (item_hint,) = typing.get_args(hint)
        return [_decode(item_hint, v) for v in value]
    if origin is tuple:
        args = typing.get_args(hint)
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_decode(args[0], v) for v in value)
        return tuple(_decode(a, v) for a, v in zip(args, value, strict=True))
    if isinstance(hint, type) and issubclass(hint, Enum):
        return hint(value)
    if isinstance(value, dict) and "kind" in value:
        return _decode_dataclass(value)
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    return value
