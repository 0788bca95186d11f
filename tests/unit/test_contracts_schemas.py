"""The public schemas: documented field by field, and compatible with their released versions."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import avro.schema
import pytest
from avro.compatibility import ReaderWriterCompatibilityChecker, SchemaCompatibilityType

from omnid.contracts.catalog import RELEASED_DIRNAME, SCHEMAS_DIR, SchemaCatalog

PUBLIC_SCHEMAS = ("channel_event.avsc", "profile_update.avsc", "identity_change.avsc")
CURRENT_FILES = sorted(
    p
    for p in SCHEMAS_DIR.rglob("*.avsc")
    if RELEASED_DIRNAME not in p.relative_to(SCHEMAS_DIR).parts
)


def _version_key(name: str) -> tuple[int, ...]:
    return tuple(int(part) for part in name.split("."))


def released_predecessor(full_name: str) -> Path | None:
    """The newest released file defining `full_name`."""
    released_root = SCHEMAS_DIR / RELEASED_DIRNAME
    versions = sorted(
        (d for d in released_root.iterdir() if d.is_dir()), key=lambda d: _version_key(d.name)
    )
    for version_dir in reversed(versions):
        for path in version_dir.glob("*.avsc"):
            if _full_name(json.loads(path.read_text())) == full_name:
                return path
    return None


def _full_name(schema: dict[str, Any]) -> str:
    name = schema["name"]
    return name if "." in name else f"{schema.get('namespace', '')}.{name}".lstrip(".")


def incompatibilities(reader_json: str, writer_json: str) -> list[str]:
    result = ReaderWriterCompatibilityChecker().get_compatibility(
        avro.schema.parse(reader_json), avro.schema.parse(writer_json)
    )
    if result.compatibility is SchemaCompatibilityType.compatible:
        return []
    return sorted(result.messages) or ["incompatible"]


def _undocumented(node: Any, where: str) -> list[str]:
    missing: list[str] = []
    if isinstance(node, list):
        for branch in node:
            missing += _undocumented(branch, where)
    elif isinstance(node, dict):
        if node.get("type") == "record":
            if not node.get("doc"):
                missing.append(f"{where}{node['name']}")
            for field in node["fields"]:
                if not field.get("doc"):
                    missing.append(f"{where}{node['name']}.{field['name']}")
                missing += _undocumented(field["type"], f"{where}{node['name']}.")
        for nested in ("items", "values"):
            if nested in node:
                missing += _undocumented(node[nested], where)
    return missing


def test_public_schemas_exist_and_are_released() -> None:
    for name in PUBLIC_SCHEMAS:
        assert (SCHEMAS_DIR / name).is_file()
        assert released_predecessor(_full_name(json.loads((SCHEMAS_DIR / name).read_text())))


@pytest.mark.parametrize("path", CURRENT_FILES, ids=lambda p: p.name)
def test_every_record_and_field_has_a_doc(path: Path) -> None:
    assert _undocumented(json.loads(path.read_text()), "") == []


@pytest.mark.parametrize("path", CURRENT_FILES, ids=lambda p: p.name)
def test_schema_is_fully_compatible_with_its_previous_release(path: Path) -> None:
    """New readers read old data (backward) and old readers read new data (forward), so producers
    and consumers can be upgraded in any order."""
    current = path.read_text()
    previous = released_predecessor(_full_name(json.loads(current)))
    if previous is None:
        pytest.skip(f"{path.name} has not been released yet")
    assert incompatibilities(current, previous.read_text()) == [], "new reader vs old writer"
    assert incompatibilities(previous.read_text(), current) == [], "old reader vs new writer"


def test_checker_refuses_a_required_field_added_without_default() -> None:
    """The compatibility test above can fail: an incompatible edit of ChannelEvent is caught."""
    released = (SCHEMAS_DIR / RELEASED_DIRNAME / "0.1.0" / "channel_event.avsc").read_text()
    edited = json.loads(released)
    edited["fields"].append({"name": "store_id", "type": "string", "doc": "new, no default"})
    assert incompatibilities(json.dumps(edited), released) != []


def test_checker_refuses_a_changed_field_type() -> None:
    released = (SCHEMAS_DIR / RELEASED_DIRNAME / "0.1.0" / "channel_event.avsc").read_text()
    edited = json.loads(released)
    next(f for f in edited["fields"] if f["name"] == "event_id")["type"] = "long"
    assert incompatibilities(json.dumps(edited), released) != []


def test_catalog_indexes_current_schemas_by_full_name() -> None:
    catalog = SchemaCatalog.load()
    for name in ("omnid.ChannelEvent", "omnid.ProfileUpdate", "omnid.IdentityChange"):
        assert catalog.schema(name).full_name == name
        assert catalog.by_fingerprint[catalog.schema(name).fingerprint].full_name == name
