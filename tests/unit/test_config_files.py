"""Every YAML configuration file reports problems with the file and the line."""

from __future__ import annotations

from pathlib import Path

import pytest

from omnid.adapters.import_mapping import ImportMapping
from omnid.adapters.write_keys import load_write_keys
from omnid.errors import ConfigError
from omnid.kafka.topology import load_topology


def test_write_keys_file_with_an_unknown_channel_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "keys.yaml"
    path.write_text(
        "write_keys:\n  k1: {channel: web, source: shop}\n  k2: {channel: fax, source: x}\n"
    )
    with pytest.raises(ConfigError, match=rf"{path}:3: write_keys.k2.channel: "):
        load_write_keys(path)


def test_import_mapping_that_is_not_a_mapping_says_so(tmp_path: Path) -> None:
    path = tmp_path / "mapping.yaml"
    path.write_text("- just\n- a list\n")
    with pytest.raises(ConfigError, match=rf"{path}: the import mapping must be a mapping"):
        ImportMapping.load(path)


def test_broken_yaml_in_the_topics_file_names_its_line(tmp_path: Path) -> None:
    path = tmp_path / "topics.yaml"
    path.write_text("defaults:\n  partitions: 6\ntopics: [\n")
    with pytest.raises(ConfigError, match=rf"{path}:\d+: not valid YAML"):
        load_topology(path)


def test_a_missing_file_is_named_with_what_it_should_hold(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read write keys file"):
        load_write_keys(tmp_path / "absent.yaml")
