"""Channel adapters: turn channel-native input into ChannelEvents on Kafka."""
