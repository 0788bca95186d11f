"""One settings object for every omnid process, read from OMNID_* environment variables."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

PROJECT_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_RULES_FILE = PROJECT_ROOT / "streams" / "identity-rules.yaml"


class Settings(BaseSettings):
    """Every field is an environment variable `OMNID_<NAME>`; a test checks the README table."""

    model_config = SettingsConfigDict(env_prefix="OMNID_", extra="ignore")

    kafka_bootstrap: str = Field("localhost:9092", description="Kafka bootstrap servers.")
    kafka_security_protocol: str | None = Field(
        None, description="Passed to clients as security.protocol (e.g. SASL_SSL)."
    )
    kafka_sasl_mechanism: str | None = Field(None, description="Passed as sasl.mechanism.")
    kafka_sasl_username: str | None = Field(None, description="Passed as sasl.username.")
    kafka_sasl_password: str | None = Field(None, description="Passed as sasl.password.")
    kafka_ssl_ca_location: str | None = Field(None, description="Passed as ssl.ca.location.")
    topics_file: Path = Field(
        PROJECT_ROOT / "streams" / "topics.yaml", description="Topic definitions."
    )
    topic_prefix: str = Field(
        "",
        description="Prepended (with a dot) to every topic name; isolates a copy of the topology.",
    )
    rules_file: Path = Field(DEFAULT_RULES_FILE, description="Identity rules.")
    identifier_hash_secret: str | None = Field(
        None, description="HMAC secret for identifier types the rules mark hashed."
    )
    schema_registry_url: str | None = Field(
        None, description="Use Confluent wire format with this schema registry when set."
    )
    max_event_bytes: int = Field(
        32 * 1024, description="Largest accepted event (Segment message / encoded Avro), bytes."
    )
    collector_host: str = Field("127.0.0.1", description="Address the HTTP collector binds.")
    collector_port: int = Field(8088, description="Port of the HTTP collector.")
    collector_read_timeout_seconds: float = Field(
        10.0, gt=0, description="A request body still arriving after this long is refused (408)."
    )
    collector_delivery_timeout_seconds: float = Field(
        8.0,
        gt=0,
        description="Kafka must acknowledge a request's events within this, else 503.",
    )
    worker_host: str = Field(
        "127.0.0.1",
        description="Address the worker's lookup API binds (`omnid worker --host`); deploy/ "
        "sets 0.0.0.0 explicitly.",
    )
    tls_cert_file: Path | None = Field(
        None,
        description="PEM certificate (chain) the collector and worker APIs serve HTTPS with; "
        "with OMNID_TLS_KEY_FILE. Unset: plain HTTP.",
    )
    tls_key_file: Path | None = Field(None, description="PEM private key of OMNID_TLS_CERT_FILE.")
    tls_ca_file: Path | None = Field(
        None,
        description="CA bundle that verifies the workers' certificates when they forward to each "
        "other and for `omnid lookup` (default: the system's).",
    )
    lookup_rate_per_second: float = Field(
        20.0,
        ge=0,
        description="Lookups per second each API token may make on one worker, with bursts of "
        "OMNID_LOOKUP_BURST; over it: 429 with Retry-After. 0 turns the limit off.",
    )
    lookup_burst: int = Field(40, ge=1, description="Lookups a client may make at once.")
    lookup_api: str = Field(
        "http://127.0.0.1:8081",
        description="Base URL of the worker lookup API that `omnid lookup` asks (any worker).",
    )
    write_keys_file: Path = Field(
        PROJECT_ROOT / "streams" / "write-keys.yaml",
        description="Collector write keys: each key's channel and source.",
    )
    suppression_secret: str = Field(
        "omnid-development-suppression-secret",
        description="HMAC key of suppression markers (erased identifiers); set your own, the "
        "same on every worker, and never change it.",
    )
    privacy_receipt_book_size: int = Field(
        10_000,
        ge=1,
        description="Privacy requests whose receipts each worker keeps in memory for "
        "`GET /v1/privacy/requests/{id}` (the latest to get a receipt; about 1.1 kB each); "
        "older ones answer 404, their receipts stay on omnid.privacy-receipts.",
    )
    api_tokens_file: Path = Field(
        PROJECT_ROOT / "streams" / "api-tokens.yaml",
        description="Hashed bearer tokens and their scopes, accepted by the worker HTTP APIs.",
    )
    api_token: str | None = Field(
        None,
        description="Bearer token `omnid lookup` and `omnid privacy` send (`make run` prints one).",
    )

    def kafka_client_config(self) -> dict[str, str]:
        """confluent-kafka settings shared by producers, consumers and the admin client."""
        passthrough = {
            "security.protocol": self.kafka_security_protocol,
            "sasl.mechanism": self.kafka_sasl_mechanism,
            "sasl.username": self.kafka_sasl_username,
            "sasl.password": self.kafka_sasl_password,
            "ssl.ca.location": self.kafka_ssl_ca_location,
        }
        config = {"bootstrap.servers": self.kafka_bootstrap}
        config.update({k: v for k, v in passthrough.items() if v is not None})
        return config
