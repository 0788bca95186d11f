"""Drivers for tests and benchmarks (like Kafka Streams' test-utils), one job a module: worker
subprocesses (`workers`), publishing, draining and reading topics (`topic_io`), the simulator as
an oracle over a real pipeline's output (`oracle`), a private broker (`broker`), lookup
availability (`availability`), the chaos run (`chaos`).

May live here: anything that drives omnid from outside. May not: anything a worker, the
collector or a CLI command needs to run; production code never imports this package.
"""
