"""Operations: Prometheus metrics, health endpoints and their HTTP exposition for every process.

May live here: what every process's metrics share (bounding, the label sets of channels and
rejection reasons, derived from the enums that own them, never copied), the one exposition path
(`metrics.render`), health reports. May not: a component's own metric objects (they live beside
the component: `pipeline/*_metrics.py`, `adapters/collector_metrics.py`), domain decisions, or a
label value taken from input (identifier values, raw paths).
"""
