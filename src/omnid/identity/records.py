"""The internal record codec: commands and states as bytes, for internal topics and RocksDB.

One codec for every reader and writer of internal records (worker, lookup API, health, simulator).
Version 1 is `01 <kind code> <MessagePack map>`: the map holds only the fields that differ from
their dataclass default, under the field's name, so a field added to a dataclass with a default
is carried with no change here and records written before it read as the default; a field the
reader does not know (a newer writer's) is skipped. Nested dataclasses are maps; where the type
allows several dataclasses (a profile's deferred commands) the map is preceded by its kind code.
A `dict[str, X]` whose keys are `X.key` is stored as the list of its values (the keys derive).
A state stored under its key in a table leaves out what the key gives (`encode(state, key)`:
an identifier state's `identifier`) and is read with that key (`decode(payload, key)`); such a
record has the same version and kind, and records with the field read as before. Builds before
this one cannot read the shorter records: in a rolling upgrade, readers go first.
Version 0 is the tagged JSON of releases up to 0.1 (`{"kind": ...}`); it is still read, so a
rolling upgrade can read what the previous version wrote, and is never written.

Measured by `python bench/record_codec.py` (states and commands of a simulated graph): see the
README's Performance section for sizes and times against version 0.
"""

from __future__ import annotations

import dataclasses
import json
import sys
import types
import typing
from collections.abc import Callable
from enum import Enum
from typing import Any

import msgspec

from omnid.errors import InvalidEvent, RejectionReason
from omnid.identity import commands as _commands
from omnid.identity import model as _model
from omnid.identity import requests as _requests
from omnid.identity import state as _state
from omnid.identity.refusals import Refusal

VERSION = 1
_JSON_VERSION_0 = ord("{")

# Kind codes are part of the stored format: never reuse or renumber one, only append.
_KIND_CODES: dict[int, type[Any]] = {
    1: _commands.Resolve,
    2: _commands.Claim,
    3: _commands.Relabel,
    4: _commands.Release,
    5: _commands.Apply,
    6: _commands.Attach,
    7: _commands.MergeRequest,
    8: _commands.MergeOffer,
    9: _commands.MergeDeclined,
    10: _commands.OfferRedirected,
    11: _commands.Absorb,
    12: _state.IdentifierState,
    13: _state.ProfileState,
    14: _state.ProfileIdentifier,
    15: _state.TraitValue,
    16: _state.OrderLine,
    17: _state.ConsentState,
    18: _model.Identifier,
    19: _model.Event,
    20: _model.Purchase,
    21: _model.ConsentChange,
    22: _requests.PrivacyRequest,
    23: _requests.SubjectRequest,
    24: _requests.ProfileRequest,
    25: _requests.Suppress,
    26: _requests.Unsuppress,
    27: _requests.EraseMerged,
    28: _requests.Forget,
    29: _requests.SuppressionMarker,
    30: _commands.Split,
    31: _commands.SplitOff,
    32: _commands.MoveOwner,
    33: _commands.Unban,
    34: _commands.MergeByHand,
    35: _state.MergeEvidence,
    36: _state.Ban,
    37: _state.EventHistory,
    38: _state.Claimant,
    39: _commands.Sighting,
    40: _commands.QuarantineRelease,
    41: _commands.QuarantineBlock,
    42: _commands.Unlink,
    43: _commands.Relink,
    44: _commands.Found,  # builds before it refuse it: in a rolling upgrade, readers go first
}
_CODE_OF = {cls: code for code, cls in _KIND_CODES.items()}
_BY_NAME = {cls.__name__: cls for cls in _KIND_CODES.values()}

Encode = Callable[[Any], Any]
Decode = Callable[[Any], Any]
_NO_DEFAULT = object()


class _Plan:
    """How one dataclass is written and read: per field its name, default and converters
    (None where MessagePack carries the value as it is)."""

    __slots__ = ("_encode_fields", "cls", "code", "decoders", "fields")

    def __init__(self, cls: type[Any]) -> None:
        self.cls = cls
        self.code = _CODE_OF[cls]
        self.fields: list[tuple[str, Any, Encode | None]] = []
        self.decoders: dict[str, Decode | None] = {}
        self._encode_fields: Encode | None = None

    def encode(self, obj: Any) -> dict[str, Any]:
        """The map of the fields that differ from their defaults, by a function written out
        for this class on first use (a state has up to ~40 fields, and a loop over the field
        list was the largest part of encoding the batch's state writes)."""
        encode_fields = self._encode_fields
        if encode_fields is None:
            encode_fields = self._encode_fields = self._compile_encoder()
        return encode_fields(obj)  # type: ignore[no-any-return]

    def _compile_encoder(self) -> Encode:
        lines = ["def encode(obj):", "    body = {}"]
        namespace: dict[str, Any] = {}
        for index, (name, default, encode) in enumerate(self.fields):
            namespace[f"_encode_{index}"] = encode
            namespace[f"_default_{index}"] = default
            stored = "v" if encode is None else f"_encode_{index}(v)"
            lines.append(f"    v = obj.{name}")
            if default is _NO_DEFAULT:
                lines.append(f"    body[{name!r}] = {stored}")
            else:  # as the generic rule: left out if it is, or equals, the default
                lines.append(f"    if v is not _default_{index} and not v == _default_{index}:")
                lines.append(f"        body[{name!r}] = {stored}")
        lines.append("    return body")
        exec(compile("\n".join(lines), f"<record encoder {self.cls.__name__}>", "exec"), namespace)
        return namespace["encode"]  # type: ignore[no-any-return]

    def decode(self, body: Any) -> Any:
        if not isinstance(body, dict):
            raise TypeError(f"{self.cls.__name__} must be a map")
        decoders = self.decoders
        values = {}
        for name, value in body.items():
            if name not in decoders:
                continue  # a newer writer's field, or version 0's "kind"
            decode = decoders[name]
            values[name] = value if decode is None or value is None else decode(value)
        return self.cls(**values)


_PLANS: dict[type[Any], _Plan] = {}


def _plan(cls: type[Any]) -> _Plan:
    plan = _PLANS.get(cls)
    if plan is None:
        plan = _PLANS[cls] = _Plan(cls)  # registered first: a class may contain itself
        module = sys.modules[cls.__module__]
        namespace = {
            **vars(_commands),
            **vars(_state),
            **vars(_model),
            **vars(_requests),
            **vars(module),
        }
        hints = typing.get_type_hints(cls, globalns=namespace)
        for item in dataclasses.fields(cls):
            if not item.init:
                continue  # derived by the class itself (Identifier.key)
            if item.default is not dataclasses.MISSING:
                default = item.default
            elif item.default_factory is not dataclasses.MISSING:
                default = item.default_factory()
            else:
                default = _NO_DEFAULT
            hint = hints[item.name]
            plan.fields.append((item.name, default, _encoder(hint)))
            plan.decoders[item.name] = _decoder(hint)
    return plan


def _options(hint: Any) -> list[Any]:
    return [a for a in typing.get_args(hint) if a is not type(None)]


def _is_union(hint: Any) -> bool:
    return typing.get_origin(hint) in (typing.Union, types.UnionType)


def _is_record(hint: Any) -> bool:
    return isinstance(hint, type) and hint in _CODE_OF


def _keyed_values(hint: Any) -> type[Any] | None:
    """The value class of a `dict[str, X]` where X has a `key` property: stored as a list."""
    if typing.get_origin(hint) is not dict:
        return None
    _, value_hint = typing.get_args(hint)
    if _is_record(value_hint) and isinstance(getattr(value_hint, "key", None), property):
        return value_hint  # type: ignore[no-any-return]
    return None


def _encoder(hint: Any) -> Encode | None:
    if _is_record(hint):
        return _plan(hint).encode
    if hint is Refusal:
        return str  # its text, as before it had a type
    origin = typing.get_origin(hint)
    if _is_union(hint):
        options = _options(hint)
        if sum(1 for o in options if _is_record(o)) > 1:
            return _encode_tagged
        if len(options) > 1:
            return None  # a scalar union: MessagePack keeps str, int, float and bool apart
        encode = _encoder(options[0])
        if encode is None:
            return None
        return lambda value: None if value is None else encode(value)
    keyed = _keyed_values(hint)
    if keyed is not None:
        encode_held = _plan(keyed).encode
        return lambda value: [encode_held(v) for v in value.values()]
    if origin in (dict, typing.Mapping) or getattr(origin, "__name__", "") == "Mapping":
        encode_value = _encoder(typing.get_args(hint)[1])
        if encode_value is None:
            return dict if origin is not dict else None
        return lambda value: {k: encode_value(v) for k, v in value.items()}
    if origin in (set, frozenset):
        return sorted  # a set's order differs between processes; its record must not
    if origin in (list, tuple):
        args = [a for a in typing.get_args(hint) if a is not Ellipsis]
        encoders = [_encoder(a) for a in args]
        if all(e is None for e in encoders):
            return None
        if origin is list or len(args) == 1:
            encode_item = encoders[0]
            assert encode_item is not None
            return lambda value: [encode_item(v) for v in value]
        raise TypeError(f"no record encoding for {hint}")
    return None  # str, int, float, bool, None, enums, EventDigest


def _decoder(hint: Any) -> Decode | None:
    if _is_record(hint):
        return _plan(hint).decode
    if hint is Refusal:
        return Refusal.parse
    origin = typing.get_origin(hint)
    if _is_union(hint):
        options = _options(hint)
        if sum(1 for o in options if _is_record(o)) > 1:
            return _decode_tagged
        if len(options) > 1:
            return None
        decode = _decoder(options[0])
        if decode is None:
            return None
        return lambda value: None if value is None else decode(value)
    keyed = _keyed_values(hint)
    if keyed is not None:
        decode_held = _plan(keyed).decode

        def decode_keyed(value: Any) -> dict[str, Any]:
            if isinstance(value, dict):  # version 0 kept the keys
                return {k: decode_held(v) for k, v in value.items()}
            items = [decode_held(v) for v in value]
            return {item.key: item for item in items}

        return decode_keyed
    if origin in (dict, typing.Mapping) or getattr(origin, "__name__", "") == "Mapping":
        key_hint, value_hint = typing.get_args(hint)
        decode_value = _decoder(value_hint)
        if key_hint is _model.EventDigest:
            if decode_value is not None:
                raise TypeError(f"no record decoding for {hint}")
            return lambda value: {_digest_key(k): v for k, v in value.items()}
        if decode_value is None:
            return None
        return lambda value: {k: decode_value(v) for k, v in value.items()}
    if origin in (set, frozenset):
        return origin  # type: ignore[no-any-return]
    if origin in (list, tuple):
        args = [a for a in typing.get_args(hint) if a is not Ellipsis]
        decoders = [_decoder(a) for a in args]
        if origin is list or len(args) == 1:
            decode_item = decoders[0]
            if decode_item is None:
                return None if origin is list else tuple
            if origin is list:
                return lambda value: [decode_item(v) for v in value]
            return lambda value: tuple(decode_item(v) for v in value)
        if all(d is None for d in decoders):
            return tuple
        raise TypeError(f"no record decoding for {hint}")
    if isinstance(hint, type) and issubclass(hint, Enum):
        return hint
    if hint is float:
        return float  # a whole number may have been written as an int
    return None


def _digest_key(key: Any) -> _model.EventDigest:
    """Window keys are digests; version 0 wrote the event ids themselves."""
    return _model.event_digest(key) if isinstance(key, str) else _model.EventDigest(key)


def _encode_tagged(value: Any) -> Any:
    if value is None:
        return None
    plan = _plan(type(value))
    return [plan.code, plan.encode(value)]


def _decode_tagged(value: Any) -> Any:
    if isinstance(value, dict):  # version 0: {"kind": ..., fields}
        return _plan(_BY_NAME[value["kind"]]).decode(value)
    code, body = value
    return _plan(_KIND_CODES[code]).decode(body)


_ENCODER = msgspec.msgpack.Encoder()
_DECODER = msgspec.msgpack.Decoder()


def _identifier_of_key(key: str) -> dict[str, str]:
    identifier_type, _, value = key.partition(":")
    return {"type": identifier_type, "value": value}


# Fields a table value leaves out because its key gives them: the stored state names the key
# once (RocksDB's key, the changelog record's key), not twice. Read back with that key.
_DERIVED_FROM_KEY: dict[type[Any], tuple[str, Callable[[str], Any]]] = {
    _state.IdentifierState: ("identifier", _identifier_of_key),
}


def encode(obj: Any, key: str | None = None) -> bytes:
    """The version-1 record of a command or state. `key`: the key a table stores the state
    under; what derives from it (an identifier state's identifier) is then left out, and
    `decode` must be given the same key."""
    plan = _PLANS.get(type(obj))
    if plan is None:
        if type(obj) not in _CODE_OF:
            raise TypeError(f"{type(obj).__name__} is not a graph record")
        plan = _plan(type(obj))
    fields = plan.encode(obj)
    derived = _DERIVED_FROM_KEY.get(type(obj)) if key is not None else None
    if derived is not None and key is not None and fields.get(derived[0]) == derived[1](key):
        del fields[derived[0]]
    body: bytes = _ENCODER.encode(fields)
    return bytes((VERSION, plan.code)) + body


def decode(payload: bytes, key: str | None = None) -> Any:
    """The command or state of a record of any version; InvalidEvent when it cannot be read.
    `key`: the table key the record was stored under, which gives what `encode` left out
    (records written whole, as before, read the same with or without it)."""
    try:
        if payload[:1] == bytes((VERSION,)):
            plan = _plan(_KIND_CODES[payload[1]])
            fields = _DECODER.decode(memoryview(payload)[2:])
            derived = _DERIVED_FROM_KEY.get(plan.cls)
            if derived is not None and isinstance(fields, dict) and derived[0] not in fields:
                if key is None:
                    raise InvalidEvent(
                        RejectionReason.SCHEMA_INVALID,
                        f"bad graph record: {plan.cls.__name__} stored without its "
                        f"{derived[0]} is read with its table key",
                    )
                fields[derived[0]] = derived[1](key)
            return plan.decode(fields)
        if payload[:1] == bytes((_JSON_VERSION_0,)):
            record = json.loads(payload)
            return _plan(_BY_NAME[record["kind"]]).decode(record)
    except (UnicodeDecodeError, json.JSONDecodeError, msgspec.DecodeError) as error:
        raise InvalidEvent(RejectionReason.UNDECODABLE, f"bad graph record: {error}") from None
    except (KeyError, IndexError, TypeError, ValueError, AttributeError) as error:
        raise InvalidEvent(RejectionReason.SCHEMA_INVALID, f"bad graph record: {error}") from None
    raise InvalidEvent(RejectionReason.UNDECODABLE, "not a graph record of a known version")


class _StatusOnly(msgspec.Struct):
    status: str = _state.ProfileStatus.ACTIVE.value


_STATUS_DECODER = msgspec.msgpack.Decoder(_StatusOnly)


def profile_status(payload: bytes) -> _state.ProfileStatus:
    """A stored profile's status without decoding the rest (health counts active profiles)."""
    try:
        if payload[:1] == bytes((VERSION,)):
            status = _STATUS_DECODER.decode(memoryview(payload)[2:]).status
        else:
            status = json.loads(payload)["status"]
        return _state.ProfileStatus(status)
    except (ValueError, KeyError, TypeError, msgspec.DecodeError) as error:
        raise InvalidEvent(RejectionReason.SCHEMA_INVALID, f"bad profile record: {error}") from None
