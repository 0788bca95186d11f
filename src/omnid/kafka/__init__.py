"""Kafka plumbing shared by every process: client configuration and topic administration."""
