"""Benchmarks: the workload generator, resolution quality, baselines and the pipeline run."""
