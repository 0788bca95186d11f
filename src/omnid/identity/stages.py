"""The two stages of the graph protocol: where a command is handled and what its key names."""

from __future__ import annotations

from enum import StrEnum


class Stage(StrEnum):
    IDENTITY = "identity"  # omnid.identity-commands, keyed by identifier key
    PROFILE = "profile"  # omnid.profile-commands, keyed by profile id
