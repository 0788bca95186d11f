"""Avro encoding and decoding with fastavro, framed as single-object or Confluent wire format."""

from __future__ import annotations

import io
import json
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from fastavro import schemaless_reader, schemaless_writer
from fastavro.validation import ValidationError, validate

from omnid.config import Settings
from omnid.contracts.avro_reader import RecordReader, compile_reader
from omnid.contracts.avro_source import Unsupported
from omnid.contracts.avro_writer import RecordWriter, compile_writer
from omnid.contracts.catalog import (
    SchemaCatalog,
    SchemaVersion,
    default_catalog,
    schema_version_from_json,
)
from omnid.contracts.framing import (
    Framing,
    confluent_header,
    read_frame,
    single_object_header,
)
from omnid.errors import ConfigError, InvalidEvent, OmnidError, RejectionReason

# What fastavro raises on bytes that do not match the writer schema.
_BODY_ERRORS = (EOFError, ValueError, IndexError, KeyError, UnicodeDecodeError, OverflowError)
# What fastavro raises on a record that does not match the schema it is written with.
_RECORD_ERRORS = (TypeError, ValueError, KeyError, AttributeError, OverflowError)


class SchemaRegistry(Protocol):
    """The two calls omnid needs from a schema registry (confluent-kafka's client has both)."""

    def register(self, subject: str, schema_json: str) -> int: ...

    def schema_json(self, schema_id: int) -> str: ...


class ConfluentSchemaRegistry:
    """Adapter over confluent-kafka's SchemaRegistryClient; subjects are record full names."""

    def __init__(self, url: str) -> None:
        # Imported here: the registry client pulls in HTTP/auth libraries single-object users
        # never need.
        from confluent_kafka.schema_registry import Schema, SchemaRegistryClient

        self._schema_type = Schema
        self._client = SchemaRegistryClient({"url": url})

    def register(self, subject: str, schema_json: str) -> int:
        return int(self._client.register_schema(subject, self._schema_type(schema_json, "AVRO")))

    def schema_json(self, schema_id: int) -> str:
        return str(self._client.get_schema(schema_id).schema_str)


@dataclass(slots=True)  # not frozen: one per payload decoded, and a frozen __init__ costs 3-4x
class Decoded:
    """A decoded payload and the name of the schema it was written with."""

    full_name: str
    record: dict[str, Any]
    framing: Framing


class AvroCodec:
    """Encodes with the current schemas; decodes either framing, resolving old writer schemas."""

    def __init__(self, catalog: SchemaCatalog, registry: SchemaRegistry | None = None) -> None:
        self.catalog = catalog
        self.registry = registry
        self.framing = Framing.CONFLUENT if registry else Framing.SINGLE_OBJECT
        self._registered_ids: dict[str, int] = {}
        self._writers_by_id: dict[int, SchemaVersion] = {}
        self._registry_lock = threading.Lock()
        # Compiled writers of the current schemas (None: that schema stays with fastavro).
        self._compiled: dict[str, RecordWriter | None] = {
            name: compile_writer(version.parsed) for name, version in catalog.current.items()
        }
        # Compiled readers of the current schemas, by fingerprint: a payload written with the
        # current schema needs no resolution (older writers resolve through fastavro).
        self._readers: dict[bytes, RecordReader | None] = {
            version.fingerprint: compile_reader(version.parsed)
            for version in catalog.current.values()
        }

    @classmethod
    def from_settings(cls, settings: Settings | None = None) -> AvroCodec:
        settings = settings or Settings()
        registry = (
            ConfluentSchemaRegistry(settings.schema_registry_url)
            if settings.schema_registry_url
            else None
        )
        return cls(default_catalog(), registry)

    # -- encoding ---------------------------------------------------------------------------

    def header_for(self, full_name: str) -> bytes:
        version = self.catalog.schema(full_name)
        if self.registry is None:
            return single_object_header(version.fingerprint)
        return confluent_header(self._schema_id(version))

    def encode(self, full_name: str, record: Mapping[str, Any]) -> bytes:
        """Frame and encode `record`; a record the schema does not accept is SCHEMA_INVALID."""
        version = self.catalog.schema(full_name)
        compiled = self._compiled.get(full_name)
        if compiled is not None:
            try:
                return self.header_for(full_name) + compiled(record)
            except Unsupported:
                pass  # a value only fastavro takes (or refuses, with its message)
        buffer = io.BytesIO()
        buffer.write(self.header_for(full_name))
        try:
            schemaless_writer(buffer, version.parsed, record)
        except _RECORD_ERRORS as error:
            raise InvalidEvent(
                RejectionReason.SCHEMA_INVALID, explain_schema_mismatch(version, record, error)
            ) from error
        return buffer.getvalue()

    # -- decoding ---------------------------------------------------------------------------

    def decode(self, payload: bytes, expected: str | None = None) -> Decoded:
        """Decode either framing; raises InvalidEvent(UNDECODABLE | SCHEMA_INVALID)."""
        frame = read_frame(payload)
        writer = self._writer(frame.fingerprint, frame.schema_id)
        reader = self.catalog.current.get(writer.full_name)
        if expected is not None and writer.full_name != expected:
            raise InvalidEvent(
                RejectionReason.SCHEMA_INVALID,
                f"expected a {expected}, the payload was written as {writer.full_name}",
            )
        resolve_to = reader.parsed if reader and reader.fingerprint != writer.fingerprint else None
        compiled = self._readers.get(writer.fingerprint) if resolve_to is None else None
        if compiled is not None:
            try:
                return Decoded(
                    writer.full_name, compiled(payload, frame.body_offset), frame.framing
                )
            except Unsupported:
                pass  # bytes only fastavro reads (or refuses, with its message)
        body = io.BytesIO(payload)
        body.seek(frame.body_offset)
        try:
            record = schemaless_reader(body, writer.parsed, resolve_to)
        except _BODY_ERRORS as error:
            raise InvalidEvent(
                RejectionReason.UNDECODABLE,
                f"body is not a valid {writer.full_name}: {type(error).__name__}: {error}",
            ) from error
        except Exception as error:  # fastavro.read.SchemaResolutionError and kin
            raise InvalidEvent(
                RejectionReason.SCHEMA_INVALID,
                f"cannot resolve writer {writer.full_name} to the current schema: {error}",
            ) from error
        if body.tell() != len(payload):
            raise InvalidEvent(
                RejectionReason.UNDECODABLE,
                f"{len(payload) - body.tell()} trailing bytes after the {writer.full_name} body",
            )
        return Decoded(writer.full_name, record, frame.framing)

    def _writer(self, fingerprint: bytes | None, schema_id: int | None) -> SchemaVersion:
        if fingerprint is not None:
            writer = self.catalog.by_fingerprint.get(fingerprint)
            if writer is None:
                raise InvalidEvent(
                    RejectionReason.UNDECODABLE,
                    f"unknown schema fingerprint {fingerprint.hex()} (not in schemas/)",
                )
            return writer
        assert schema_id is not None
        if self.registry is None:
            raise InvalidEvent(
                RejectionReason.UNDECODABLE,
                f"Confluent-framed payload (schema id {schema_id}) but no schema registry is "
                "configured (OMNID_SCHEMA_REGISTRY_URL)",
            )
        return self._writer_by_id(schema_id)

    def _writer_by_id(self, schema_id: int) -> SchemaVersion:
        cached = self._writers_by_id.get(schema_id)
        if cached is not None:
            return cached
        try:
            schema_json = json.loads(self.registry.schema_json(schema_id))  # type: ignore[union-attr]
            version = schema_version_from_json(schema_json)
        except OmnidError as error:
            raise InvalidEvent(RejectionReason.UNDECODABLE, str(error)) from error
        except Exception as error:  # registry unreachable or id unknown
            raise InvalidEvent(
                RejectionReason.UNDECODABLE, f"schema id {schema_id} not resolvable: {error}"
            ) from error
        with self._registry_lock:
            self._writers_by_id[schema_id] = version
        return version

    def _schema_id(self, version: SchemaVersion) -> int:
        schema_id = self._registered_ids.get(version.full_name)
        if schema_id is None:
            assert self.registry is not None
            try:
                schema_id = self.registry.register(version.full_name, version.json_text)
            except Exception as error:
                raise ConfigError(
                    f"cannot register {version.full_name} with the schema registry: {error}"
                ) from error
            with self._registry_lock:
                self._registered_ids[version.full_name] = schema_id
                self._writers_by_id[schema_id] = version
        return schema_id


def explain_schema_mismatch(
    version: SchemaVersion, record: Mapping[str, Any], error: Exception
) -> str:
    """A precise message for a record the writer refused: fastavro's validator names the field."""
    try:
        validate(record, version.parsed, raise_errors=True)
    except ValidationError as validation:
        return f"not a valid {version.full_name}: {'; '.join(map(str, validation.errors))}"
    except Exception:  # the validator itself can choke on very wrong input
        pass
    return f"not a valid {version.full_name}: {type(error).__name__}: {error}"
