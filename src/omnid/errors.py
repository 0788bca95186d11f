"""The error hierarchy: every user mistake becomes an OmnidError the shell can explain."""

from __future__ import annotations

from enum import StrEnum


class OmnidError(Exception):
    """Base of every error omnid raises on purpose."""


class RejectionReason(StrEnum):
    """Why input was refused. The only values allowed as dead-letter reasons and metric labels."""

    UNDECODABLE = "undecodable"
    SCHEMA_INVALID = "schema_invalid"
    NO_IDENTIFIER = "no_identifier"
    OVERSIZED = "oversized"
    UNKNOWN_CHANNEL = "unknown_channel"
    INVALID_FIELD = "invalid_field"


class RequestProblem(StrEnum):
    """Why the collector refused a request as a whole, rather than one of its events (with
    RejectionReason, the only values of the collector's rejection metric label)."""

    MALFORMED_JSON = "malformed_json"
    JSON_TOO_DEEP = "json_too_deep"
    BAD_CONTENT_ENCODING = "bad_content_encoding"
    UNAUTHORIZED = "unauthorized"
    REQUEST_TIMEOUT = "request_timeout"
    CLIENT_DISCONNECTED = "client_disconnected"


class InvalidEvent(OmnidError):
    """An event that cannot be processed; `reason` is a closed enum, `detail` is for humans."""

    def __init__(self, reason: RejectionReason, detail: str) -> None:
        super().__init__(f"{reason.value}: {detail}")
        self.reason = reason
        self.detail = detail


class ConfigError(OmnidError):
    """Configuration or rules that cannot be used; the message names the file and the problem."""
