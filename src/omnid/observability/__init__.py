"""Operations: Prometheus metrics, health endpoints and their HTTP exposition for every process.

May live here: metric objects, their closed label sets (derived from the enums that own the
values, never copied), the one exposition path (`metrics.render`), health reports. May not:
domain decisions, or a label value taken from input (identifier values, raw paths).
"""
