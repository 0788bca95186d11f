"""The schemas under schemas/, parsed for fastavro and indexed by full name and fingerprint."""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from fastavro import parse_schema
from fastavro.schema import fingerprint, to_parsing_canonical_form

from omnid.config import PROJECT_ROOT
from omnid.errors import ConfigError

SCHEMAS_DIR = PROJECT_ROOT / "schemas"
RELEASED_DIRNAME = "released"
SINGLE_OBJECT_FINGERPRINT = "CRC-64-AVRO"


@dataclass(frozen=True)
class SchemaVersion:
    """One version of a named record schema, ready for fastavro."""

    full_name: str
    parsed: Any  # fastavro's parsed schema (a dict it annotates for speed)
    canonical_form: str
    json_text: str  # the full schema (docs, logical types) as registered with a schema registry
    fingerprint: bytes  # CRC-64-AVRO, little-endian, as single-object encoding writes it
    path: Path | None


def schema_version_from_json(schema_json: Any, path: Path | None = None) -> SchemaVersion:
    """Parse one self-contained schema; every file defines every named type it uses."""
    try:
        parsed = parse_schema(schema_json, named_schemas={})
        canonical = to_parsing_canonical_form(schema_json)
    except Exception as error:  # fastavro raises several unrelated types for a bad schema
        raise ConfigError(f"{path or 'schema'}: not a valid Avro schema: {error}") from error
    if not isinstance(parsed, dict) or parsed.get("type") != "record":
        raise ConfigError(f"{path or 'schema'}: top level must be a named record")
    # fastavro's CRC-64-AVRO hex digest is already the little-endian byte order the spec requires.
    digest = bytes.fromhex(fingerprint(canonical, SINGLE_OBJECT_FINGERPRINT))
    return SchemaVersion(parsed["name"], parsed, canonical, json.dumps(schema_json), digest, path)


def _load_file(path: Path) -> SchemaVersion:
    try:
        schema_json = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as error:
        raise ConfigError(f"{path}: cannot read schema: {error}") from error
    return schema_version_from_json(schema_json, path)


@dataclass(frozen=True)
class SchemaCatalog:
    """Current schemas by full name; current and released versions by fingerprint."""

    current: dict[str, SchemaVersion]
    by_fingerprint: dict[bytes, SchemaVersion]

    @classmethod
    def load(cls, root: Path = SCHEMAS_DIR) -> SchemaCatalog:
        current: dict[str, SchemaVersion] = {}
        by_fingerprint: dict[bytes, SchemaVersion] = {}
        for path in sorted(root.rglob("*.avsc")):
            version = _load_file(path)
            released = RELEASED_DIRNAME in path.relative_to(root).parts
            if not released:
                if version.full_name in current:
                    raise ConfigError(
                        f"{path}: {version.full_name} is also defined in "
                        f"{current[version.full_name].path}"
                    )
                current[version.full_name] = version
            # Released versions stay decodable: data written by an older producer resolves
            # against the current schema as reader.
            by_fingerprint.setdefault(version.fingerprint, version)
        for version in current.values():
            by_fingerprint[version.fingerprint] = version
        return cls(current, by_fingerprint)

    def schema(self, full_name: str) -> SchemaVersion:
        try:
            return self.current[full_name]
        except KeyError:
            raise ConfigError(f"no schema named {full_name} under schemas/") from None


@cache
def default_catalog() -> SchemaCatalog:
    """The catalog of the project's schemas/ directory, loaded on first use."""
    return SchemaCatalog.load()
