"""Channel adapters: turn channel-native input into ChannelEvents on Kafka."""

from omnid.adapters.publish import publish
from omnid.adapters.sink import DeliveryFailed, EventSink

__all__ = ["DeliveryFailed", "EventSink", "publish"]
