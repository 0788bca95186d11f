"""Benchmarks behind `omnid bench` and `make bench`: the workload generator with its ground
truth, resolution quality, baselines (union-find, Kafka-only, Faust, quix-streams) and the
pipeline run. Named apart from the top-level `bench/` folder, which holds only the scripts that
run them and their results (no package of that name).

May live here: workload generation and measurement. May not: anything production code imports;
drivers shared with the tests live in `testing`.
"""
