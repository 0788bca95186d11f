"""The streaming shell: the confluent-kafka worker runtime, RocksDB tables, stages, lookup API."""
