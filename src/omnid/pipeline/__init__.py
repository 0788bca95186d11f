"""The streaming shell: the confluent-kafka worker runtime, RocksDB tables, the processor that
runs the core's handlers, restore and standbys, the lookup, privacy and operations HTTP APIs and
their CLI clients, `omnid tail`, and each component's metrics (`*_metrics.py`, composed by
`worker_metrics.py`).

May live here: what a worker process or an omnid CLI command needs at run time. May not: domain
logic (it belongs in `identity`, which this calls), test or benchmark drivers (`testing`).
"""
