"""Channel adapters: turn channel-native input into ChannelEvents on Kafka (the HTTP collector,
Segment, the email webhook, file import).

May live here: translation from a channel's format and its publishing. May not: identity
decisions (normalising, linking): the worker makes them, so every channel is treated alike.
"""

from omnid.adapters.publish import publish
from omnid.adapters.sink import DeliveryFailed, EventSink

__all__ = ["DeliveryFailed", "EventSink", "publish"]
