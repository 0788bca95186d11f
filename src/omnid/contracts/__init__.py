"""Schemas, Avro encoding and wire framing: the public contracts in code.

May live here: what is on the wire (schemas, codecs, framing, the producer every process sends
through). May not: what a process does with a record once decoded.
"""

from omnid.contracts.catalog import SchemaCatalog, SchemaVersion, default_catalog
from omnid.contracts.channel_event import (
    CHANNEL_EVENT,
    Channel,
    check_channel_event,
    decode_channel_event,
    encode_channel_event,
    events_topic,
    first_identifier_key,
    new_channel_event,
)
from omnid.contracts.codec import AvroCodec, Decoded
from omnid.contracts.framing import Framing
from omnid.contracts.producer import OutputSender, make_producer, producer_config

__all__ = [
    "CHANNEL_EVENT",
    "AvroCodec",
    "Channel",
    "Decoded",
    "Framing",
    "OutputSender",
    "SchemaCatalog",
    "SchemaVersion",
    "check_channel_event",
    "decode_channel_event",
    "default_catalog",
    "encode_channel_event",
    "events_topic",
    "first_identifier_key",
    "make_producer",
    "new_channel_event",
    "producer_config",
]
