"""Which partition a key lives on: Kafka's Java-compatible murmur2 partitioner, in Python.

Every worker produces with librdkafka's `murmur2_random` partitioner, which places keyed records
exactly like the Java client. The lookup API needs the same answer without producing anything,
to find the worker that owns a key's partition.
"""

from __future__ import annotations

import struct

_SEED = 0x9747B28C
_M = 0x5BD1E995
_MASK = 0xFFFFFFFF


def murmur2(data: bytes) -> int:
    """32-bit murmur2 as Kafka's `Utils.murmur2` computes it, returned as a signed int."""
    length = len(data)
    h = (_SEED ^ length) & _MASK
    whole = length - length % 4
    # One unpack for every whole 4-byte block: slicing and converting each was a third of it.
    for k in struct.unpack(f"<{whole // 4}I", data[:whole]):
        k = (k * _M) & _MASK
        k ^= k >> 24
        k = (k * _M) & _MASK
        h = (h * _M) & _MASK
        h ^= k
    tail = length % 4
    if tail == 3:
        h ^= data[whole + 2] << 16
    if tail >= 2:
        h ^= data[whole + 1] << 8
    if tail >= 1:
        h ^= data[whole]
        h = (h * _M) & _MASK
    h ^= h >> 13
    h = (h * _M) & _MASK
    h ^= h >> 15
    return h - (1 << 32) if h & 0x80000000 else h


def partition_for(key: str | bytes, partitions: int) -> int:
    """The partition the Java client (and librdkafka's murmur2 partitioners) choose for `key`."""
    data = key.encode() if isinstance(key, str) else key
    return (murmur2(data) & 0x7FFFFFFF) % partitions
