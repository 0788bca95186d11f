"""A worker's local copy of one table: RocksDB (rocksdict) plus, per partition, the changelog
offset it reflects, so a restart or a rebalance restores only what it has not seen yet."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path

from rocksdict import AccessType, Options, Rdict, WriteBatch

# Checkpoints live in the same database as the data so one write batch moves both at once:
# a crash can never leave data newer than its checkpoint claims, or the reverse.
_CHECKPOINT_PREFIX = b"\x00checkpoint:"


class TableStore:
    """Keys are the table's entity keys; values are encoded states (bytes)."""

    def __init__(self, path: Path) -> None:
        path.mkdir(parents=True, exist_ok=True)
        options = Options(raw_mode=True)
        options.create_if_missing(True)
        self.path = path
        self._db = Rdict(str(path), options=options, access_type=AccessType.read_write())

    def get(self, key: str) -> bytes | None:
        value = self._db.get(key.encode())
        return bytes(value) if value is not None else None

    def checkpoint(self, partition: int) -> int:
        """The next changelog offset of `partition` this store has not applied (0 = none)."""
        value = self._db.get(_CHECKPOINT_PREFIX + str(partition).encode())
        return int(value) if value is not None else 0

    def write(
        self, entries: Iterable[tuple[str, bytes | None]], checkpoints: dict[int, int]
    ) -> None:
        """Applies writes (None deletes) and moves checkpoints in one atomic batch."""
        batch = WriteBatch(raw_mode=True)
        for key, value in entries:
            if value is None:
                batch.delete(key.encode())
            else:
                batch.put(key.encode(), value)
        for partition, offset in checkpoints.items():
            batch.put(_CHECKPOINT_PREFIX + str(partition).encode(), str(offset).encode())
        self._db.write(batch)

    def entries(self) -> Iterator[tuple[bytes, bytes]]:
        """(key, value) pairs, checkpoints included (their keys start with a zero byte)."""
        for key, value in self._db.items():
            yield bytes(key), bytes(value)

    def count(self) -> int:
        """Entries held (checkpoints excluded); walks the table, for status pages and tests."""
        keys = self._db.keys()  # iterating an Rdict itself yields items, not keys
        return sum(1 for key in keys if not bytes(key).startswith(b"\x00"))

    def close(self) -> None:
        self._db.close()
