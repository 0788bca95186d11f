"""Collector write keys: which channel and source each key's events belong to."""

from __future__ import annotations

from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

from omnid.adapters.segment import WriteKeyTarget
from omnid.contracts.channel_event import Channel
from omnid.errors import ConfigError


class WriteKeyEntry(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    channel: Channel
    source: str


class WriteKeysFile(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    write_keys: dict[str, WriteKeyEntry]


def load_write_keys(path: Path) -> dict[str, WriteKeyTarget]:
    """Read the YAML file; a broken file is a ConfigError naming it, never a half-loaded map."""
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
        parsed = WriteKeysFile.model_validate(raw)
    except (OSError, yaml.YAMLError, ValidationError) as error:
        raise ConfigError(f"{path}: cannot load write keys: {error}") from error
    return {
        key: WriteKeyTarget(entry.channel, entry.source) for key, entry in parsed.write_keys.items()
    }
