"""Kafka plumbing shared by every process: the topology as data, topic administration, the
stateful stages' topics, reading a whole topic.

May live here: what several processes need to talk to Kafka the same way. May not: one
process's own logic (the worker's runtime is `pipeline`, the collector's `adapters`).
"""
