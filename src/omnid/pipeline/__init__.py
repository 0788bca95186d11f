"""The streaming shell: Faust app, RocksDB tables, agents, lookup API, metrics."""
