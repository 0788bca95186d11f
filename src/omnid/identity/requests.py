"""Privacy requests as data, and the commands and emissions they travel as through the graph.

A PrivacyRequest names its subject by one identifier or a profile id; it enters the protocol as a
SubjectRequest (identity stage, keyed by the identifier) or a ProfileRequest (profile stage,
keyed by the profile id), like every other command. The handlers live in identity/privacy.py.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any, ClassVar

from omnid.identity.model import Identifier
from omnid.identity.stages import Stage


class PrivacyKind(StrEnum):
    ERASE = "erase"
    SUPPRESS = "suppress"
    UNSUPPRESS = "unsuppress"
    EXPORT = "export"


class ReceiptStatus(StrEnum):
    ACCEPTED = "accepted"
    COMPLETED = "completed"
    FAILED = "failed"


class ReceiptReason(StrEnum):
    """Why a request failed, or a note on one completed with nothing left to do."""

    UNKNOWN_SUBJECT = "unknown_subject"  # failed: nobody holds the identifier or profile
    ERASED = "erased"  # failed: the subject was erased (nothing of it is left to act on)
    ALREADY_ERASED = "already_erased"
    ALREADY_SUPPRESSED = "already_suppressed"


class Count(StrEnum):
    """The counts a receipt may carry (never values)."""

    PROFILES_ERASED = "profiles_erased"
    IDENTIFIERS_SUPPRESSED = "identifiers_suppressed"
    IDENTIFIERS_UNSUPPRESSED = "identifiers_unsuppressed"
    RECORDS_REMOVED = "records_removed"
    IDENTIFIERS = "identifiers"
    TRAITS = "traits"


@dataclass(frozen=True, slots=True)
class PrivacyRequest:
    """An omnid.PrivacyRequest: exactly one of `subject` and `profile_id` is set."""

    request_id: str
    kind: PrivacyKind
    subject: Identifier | None
    profile_id: str | None
    requested_by: str
    reason: str | None
    requested_at: int

    @property
    def key(self) -> str:
        if self.subject is not None:
            return self.subject.key
        return self.profile_id or ""


# --- commands ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SubjectRequest:
    """A request about the person holding `request.subject`: found at the identifier."""

    stage: ClassVar[Stage] = Stage.IDENTITY
    request: PrivacyRequest

    @property
    def key(self) -> str:
        return self.request.key


@dataclass(frozen=True, slots=True)
class ProfileRequest:
    """A request carried out by the profile (its survivor, following merged_into)."""

    stage: ClassVar[Stage] = Stage.PROFILE
    request: PrivacyRequest
    profile_id: str

    @property
    def key(self) -> str:
        return self.profile_id


@dataclass(frozen=True, slots=True)
class Suppress:
    """Mark an identifier suppressed if its owner is one of `profiles` (or it has none). With
    `erase`, nothing is kept of it but a suppression marker."""

    stage: ClassVar[Stage] = Stage.IDENTITY
    identifier: Identifier
    request_id: str
    profiles: tuple[str, ...]
    erase: bool
    at: int

    @property
    def key(self) -> str:
        return self.identifier.key


@dataclass(frozen=True, slots=True)
class Unsuppress:
    """Lift the identifier's suppression, if `profile_id` still owns it."""

    stage: ClassVar[Stage] = Stage.IDENTITY
    identifier: Identifier
    request_id: str
    profile_id: str
    at: int

    @property
    def key(self) -> str:
        return self.identifier.key


@dataclass(frozen=True, slots=True)
class EraseMerged:
    """A profile id merged into an erased profile: keep only an erased stub under it, which
    sends merges with the person on to `erased_with`, the stub that judges them."""

    stage: ClassVar[Stage] = Stage.PROFILE
    profile_id: str
    request_id: str
    at: int
    erased_with: str | None = None

    @property
    def key(self) -> str:
        return self.profile_id


@dataclass(frozen=True, slots=True)
class Forget:
    """The identifier is suppressed: the profile drops its claim or refusal of it."""

    stage: ClassVar[Stage] = Stage.PROFILE
    profile_id: str
    identifier: Identifier

    @property
    def key(self) -> str:
        return self.profile_id


@dataclass(frozen=True, slots=True)
class SuppressionMarker:
    """What an erased identifier leaves in the identifiers table, under an HMAC of its key:
    the request that suppressed it, nothing of the identifier itself."""

    suppressed_by: str


PrivacyIdentityCommand = SubjectRequest | Suppress | Unsuppress
PrivacyProfileCommand = ProfileRequest | EraseMerged | Forget


# --- emissions --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PrivacyReceiptEmission:
    """`record` is exactly an omnid.PrivacyReceipt; keyed by request id and status, so the
    compacted topic keeps one receipt per step (accepted, then completed or failed)."""

    record: dict[str, Any]

    @property
    def key(self) -> str:
        return f"{self.record['request_id']}:{self.record['status']}"


@dataclass(frozen=True, slots=True)
class SuppressedDrop:
    """An identifier of an event was dropped because it is suppressed (`event_dropped`: the
    event had nothing else left). Counted; the event's content goes nowhere."""

    identifier_type: str
    event_dropped: bool

    @property
    def key(self) -> str:
        return self.identifier_type


def receipt_record(
    request: PrivacyRequest,
    status: ReceiptStatus,
    profile_id: str | None = None,
    counts: dict[str, int] | None = None,
    reason: ReceiptReason | None = None,
) -> dict[str, Any]:
    """An omnid.PrivacyReceipt: ids, kind, status, counts; the subject's type, never its value."""
    return {
        "request_id": request.request_id,
        "kind": request.kind.value,
        "status": status.value,
        "subject_type": request.subject.type if request.subject is not None else "profile_id",
        "profile_id": profile_id,
        "requested_by": request.requested_by,
        "counts": dict(sorted((counts or {}).items())),
        "reason": None if reason is None else reason.value,
        "requested_at": request.requested_at,
    }


def receipt(
    request: PrivacyRequest,
    status: ReceiptStatus,
    profile_id: str | None = None,
    counts: dict[str, int] | None = None,
    reason: ReceiptReason | None = None,
) -> PrivacyReceiptEmission:
    return PrivacyReceiptEmission(receipt_record(request, status, profile_id, counts, reason))
