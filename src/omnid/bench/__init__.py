"""Benchmarks behind `make bench`: the workload generator with its ground truth, resolution
quality, baselines (union-find, Kafka-only, Faust, quix-streams) and the pipeline run. The
top-level `bench/` folder holds the scripts that run them and their results.

May live here: workload generation and measurement. May not: anything production code imports;
drivers shared with the tests live in `testing`.
"""
