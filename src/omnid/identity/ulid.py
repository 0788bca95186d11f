"""Profile ids: ULID-shaped (26 Crockford base32 digits), derived, never random.

Only the encoding lives here; nothing in this module knows about profiles beyond `profile_id_for`.
"""

from __future__ import annotations

import base64
import hashlib

from omnid.identity.model import Identifier

_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_TO_CROCKFORD = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", _CROCKFORD)
_MAX_TIME = (1 << 48) - 1


def encode(millis: int, entropy: bytes) -> str:
    """A ULID: 48 bits of millisecond time (clamped to its range) then 80 bits of `entropy`."""
    millis = min(max(millis, 0), _MAX_TIME)
    # 26 Crockford digits of the 128-bit number (two leading zero bits) via the C base32
    # encoder: shifted left by 6 into 17 bytes, its first 26 symbols are exactly those digits.
    padded = millis.to_bytes(6, "big") + entropy[:10] + b"\x00"
    shifted = (int.from_bytes(padded, "big") >> 2).to_bytes(17, "big")
    return base64.b32encode(shifted)[:26].decode().translate(_TO_CROCKFORD)


def profile_id_for(at: int, anchor: Identifier, salt: str) -> str:
    """The id of the profile `anchor` founds at `at`: time then a hash of the anchor.

    Deterministic, so a replayed command creates the same id; time first, so comparing ids
    compares ages and the older profile can always be the one that survives a merge."""
    return encode(at, hashlib.sha256(f"{anchor.key}\x00{salt}".encode()).digest())
