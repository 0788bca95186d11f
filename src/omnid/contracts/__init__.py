"""Schemas, Avro encoding and wire framing: the public contracts in code."""
