"""Wire framing of Avro payloads: single-object encoding and the Confluent wire format."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from omnid.errors import InvalidEvent, RejectionReason

SINGLE_OBJECT_MAGIC = b"\xc3\x01"
SINGLE_OBJECT_HEADER_SIZE = 10  # magic + 8-byte fingerprint
CONFLUENT_MAGIC = 0
CONFLUENT_HEADER_SIZE = 5  # magic + 4-byte big-endian schema id


class Framing(StrEnum):
    """How the writer schema of a payload is named in its first bytes."""

    SINGLE_OBJECT = "single_object"
    CONFLUENT = "confluent"


@dataclass(slots=True)  # not frozen: one per payload decoded, and a frozen __init__ costs 3-4x
class Frame:
    """A parsed header: which framing, which writer schema, where the Avro body starts."""

    framing: Framing
    fingerprint: bytes | None
    schema_id: int | None
    body_offset: int


def single_object_header(fingerprint: bytes) -> bytes:
    return SINGLE_OBJECT_MAGIC + fingerprint


def confluent_header(schema_id: int) -> bytes:
    return bytes([CONFLUENT_MAGIC]) + schema_id.to_bytes(4, "big")


def read_frame(payload: bytes) -> Frame:
    """Recognise either framing; anything else is undecodable."""
    if payload[:2] == SINGLE_OBJECT_MAGIC:
        if len(payload) < SINGLE_OBJECT_HEADER_SIZE:
            raise InvalidEvent(
                RejectionReason.UNDECODABLE, "single-object header truncated before fingerprint"
            )
        fingerprint = payload[2:SINGLE_OBJECT_HEADER_SIZE]
        return Frame(Framing.SINGLE_OBJECT, fingerprint, None, SINGLE_OBJECT_HEADER_SIZE)
    if payload[:1] == bytes([CONFLUENT_MAGIC]):
        if len(payload) < CONFLUENT_HEADER_SIZE:
            raise InvalidEvent(
                RejectionReason.UNDECODABLE, "Confluent header truncated before schema id"
            )
        schema_id = int.from_bytes(payload[1:CONFLUENT_HEADER_SIZE], "big")
        return Frame(Framing.CONFLUENT, None, schema_id, CONFLUENT_HEADER_SIZE)
    if not payload:
        raise InvalidEvent(RejectionReason.UNDECODABLE, "empty payload")
    raise InvalidEvent(
        RejectionReason.UNDECODABLE,
        f"unknown framing: first byte 0x{payload[0]:02x} is neither C3 01 nor 00",
    )
