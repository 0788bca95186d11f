"""A worker's local copy of one table: RocksDB (rocksdict) plus, per partition, the changelog
offset it reflects, so a restart or a rebalance restores only what it has not seen yet."""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator
from pathlib import Path

from rocksdict import (
    AccessType,
    BlockBasedOptions,
    BottommostLevelCompaction,
    Cache,
    CompactOptions,
    DBCompressionType,
    Options,
    Rdict,
    WriteBatch,
)

from omnid.errors import OmnidError

# Checkpoints live in the same database as the data so one write batch moves both at once:
# a crash can never leave data newer than its checkpoint claims, or the reverse.
_CHECKPOINT_PREFIX = b"\x00checkpoint:"

# Memory bounds, chosen so RSS does not grow with the graph: RocksDB's defaults (two 64 MiB
# memtables per table, index and filter blocks outside any cache) let a worker's memory follow
# its state. Memtables: at most 2 x 8 MiB per table. One block cache for every table of the
# process, holding data, index and bloom-filter blocks alike: 32 MiB. Upper bounds, reached
# under write load.
WRITE_BUFFER_BYTES = 8 * 1024 * 1024
WRITE_BUFFERS = 2
BLOCK_CACHE_BYTES = 32 * 1024 * 1024
_BLOCK_CACHE = Cache(BLOCK_CACHE_BYTES)
ZSTD_LEVEL = 3
ZSTD_DICTIONARY_BYTES = 16 * 1024
SST_FILE_BYTES = 8 * 1024 * 1024


def _options() -> Options:
    options = Options(raw_mode=True)
    options.create_if_missing(True)
    options.set_write_buffer_size(WRITE_BUFFER_BYTES)
    options.set_max_write_buffer_number(WRITE_BUFFERS)
    table = BlockBasedOptions()
    table.set_block_cache(_BLOCK_CACHE)
    table.set_cache_index_and_filter_blocks(True)
    table.set_pin_l0_filter_and_index_blocks_in_cache(True)
    # Most reads are of keys the table does not hold yet (a new identifier): a bloom filter
    # answers them without reading a data block.
    table.set_bloom_filter(10, False)
    options.set_block_based_table_factory(table)
    # zstd with a dictionary trained per SST file: a table holds many small records of one
    # shape (field names, types, channels, sources repeat in every one), which a 4 KiB block
    # alone compresses poorly. Measured by `python bench/state_bytes.py` (50,000 events):
    # 456 bytes per identifier with LZ4 + zstd bottommost, 279 with this. A file's data is
    # held in memory until its dictionary is trained: files of at most SST_FILE_BYTES.
    # The dictionary is trained at the bottommost level only, where nearly all data ends: the
    # upper levels are rewritten by every flush and compaction, and training there took most
    # of RocksDB's background CPU as the graph grew (the worker's reads and writes of the
    # first 300,000 events of the scale workload, replayed on a loaded machine: 55 % less
    # background CPU, 183 bytes per identifier after compaction either way).
    options.set_compression_type(DBCompressionType.zstd())
    options.set_bottommost_compression_type(DBCompressionType.zstd())
    options.set_compression_options(-14, ZSTD_LEVEL, 0, 0)
    options.set_zstd_max_train_bytes(0)
    options.set_bottommost_compression_options(-14, ZSTD_LEVEL, 0, ZSTD_DICTIONARY_BYTES, True)
    options.set_bottommost_zstd_max_train_bytes(ZSTD_DICTIONARY_BYTES * 100, True)
    options.set_target_file_size_base(SST_FILE_BYTES)
    return options


class StoreClosed(OmnidError):
    """The table is closed (its worker is shutting down): nothing can be read from it."""


class TableStore:
    """Keys are the table's entity keys; values are encoded states (bytes).

    Reads may come from the lookup API's thread while the worker's loop closes the table at
    shutdown: closing waits for a read in progress, and a read after it raises StoreClosed
    (rocksdict itself raised "Already mutably borrowed", a 500, in a chaos run)."""

    def __init__(self, path: Path) -> None:
        path.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._db = Rdict(str(path), options=_options(), access_type=AccessType.read_write())
        self._closing = threading.Lock()
        self._closed = False

    def get(self, key: str) -> bytes | None:
        with self._closing:
            if self._closed:
                raise StoreClosed(f"the {self.path.name} table is closed")
            value = self._db.get(key.encode())
        return bytes(value) if value is not None else None

    def checkpoint(self, partition: int) -> int:
        """The next changelog offset of `partition` this store has not applied (0 = none)."""
        with self._closing:
            if self._closed:
                raise StoreClosed(f"the {self.path.name} table is closed")
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

    def entries(self, from_key: bytes | None = None) -> Iterator[tuple[bytes, bytes]]:
        """(key, value) pairs in key order from `from_key` (or the first key) on, checkpoints
        included (their keys start with a zero byte)."""
        for key, value in self._db.items(from_key=from_key):
            yield bytes(key), bytes(value)

    def count(self) -> int:
        """Entries held (checkpoints excluded); walks the table, for status pages and tests."""
        keys = self._db.keys()  # iterating an Rdict itself yields items, not keys
        return sum(1 for key in keys if not bytes(key).startswith(b"\x00"))

    def compact(self) -> None:
        """Compacts the whole table (the benchmark measures bytes per identifier after it).
        Files already at the bottom are rewritten too: a file RocksDB merely moved down (it
        overlapped nothing) keeps the upper levels' compression, without the dictionary."""
        options = CompactOptions()
        options.set_bottommost_level_compaction(BottommostLevelCompaction.force())
        self._db.compact_range(None, None, options)

    def close(self) -> None:
        with self._closing:
            self._closed = True
            self._db.close()
