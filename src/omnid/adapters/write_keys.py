"""Collector write keys: which channel and source each key's events belong to."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict

from omnid.adapters.segment import WriteKeyTarget
from omnid.config_files import load_yaml_model
from omnid.contracts.channel_event import Channel


class WriteKeyEntry(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    channel: Channel
    source: str


class WriteKeysFile(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    write_keys: dict[str, WriteKeyEntry]


def load_write_keys(path: Path) -> dict[str, WriteKeyTarget]:
    """Read the YAML file; a broken file is a ConfigError naming it, never a half-loaded map."""
    parsed = load_yaml_model(path, WriteKeysFile, "write keys file")
    return {
        key: WriteKeyTarget(entry.channel, entry.source) for key, entry in parsed.write_keys.items()
    }
