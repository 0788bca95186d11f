"""Pure identity domain: normalisation, rules, the graph protocol, survivorship, privacy and
operations as protocol handlers, the record codec, the simulator and its invariants.

May live here: pure functions and data types (state in, state and outputs out), deterministic
and free of clocks, files, sockets and environment variables (the simulator's randomness is
seeded); the rules arrive as a value. May not: any I/O, Kafka, RocksDB, HTTP, metrics,
logging, module-global mutable state. mypy strict covers this package.
"""
