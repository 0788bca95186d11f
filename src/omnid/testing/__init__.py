"""Drivers for tests and benchmarks (like Kafka Streams' test-utils): worker subprocesses, a
private broker, publishing and reading topics, waiting for the pipeline to drain, the simulator
as an oracle over a real pipeline's output, the chaos run.

May live here: anything that drives omnid from outside. May not: anything a worker, the
collector or a CLI command needs to run; production code never imports this package.
"""
