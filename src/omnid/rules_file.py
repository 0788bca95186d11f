"""The identity rules file: where it is, reading it, validating it. The core (`identity.rules`)
only ever gets the resulting `IdentityRules` value."""

from __future__ import annotations

from pathlib import Path

from omnid.config import DEFAULT_RULES_FILE
from omnid.config_files import read_config_text, validate_yaml
from omnid.identity.rules import IdentityRules


def load_rules(path: Path | str | None = None, hash_secret: str | None = None) -> IdentityRules:
    """Read and validate a rules file (the repository's by default); any problem is a
    ConfigError naming file and line."""
    rules_path = Path(path) if path is not None else DEFAULT_RULES_FILE
    return rules_from_yaml(read_config_text(rules_path, "rules file"), str(rules_path), hash_secret)


def rules_from_yaml(text: str, origin: str, hash_secret: str | None = None) -> IdentityRules:
    return validate_yaml(text, origin, IdentityRules, "rules file", {"hash_secret": hash_secret})
