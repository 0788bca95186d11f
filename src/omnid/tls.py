"""TLS for the HTTP APIs: the server context the collector and workers listen with, and the
client context workers and `omnid lookup` verify each other with."""

from __future__ import annotations

import ssl

from omnid.config import Settings
from omnid.errors import ConfigError


def server_context(settings: Settings) -> ssl.SSLContext | None:
    """HTTPS when OMNID_TLS_CERT_FILE and OMNID_TLS_KEY_FILE are set; None means plain HTTP."""
    cert, key = settings.tls_cert_file, settings.tls_key_file
    if cert is None and key is None:
        return None
    if cert is None or key is None:
        raise ConfigError("HTTPS needs both OMNID_TLS_CERT_FILE and OMNID_TLS_KEY_FILE")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(cert, key)
    except (OSError, ssl.SSLError) as error:
        raise ConfigError(f"cannot load the TLS certificate {cert} / key {key}: {error}") from None
    return context


def client_context(settings: Settings) -> ssl.SSLContext:
    """Verifies servers against OMNID_TLS_CA_FILE, or the system's CAs when it is unset."""
    cafile = str(settings.tls_ca_file) if settings.tls_ca_file is not None else None
    return ssl.create_default_context(cafile=cafile)


def scheme(settings: Settings) -> str:
    """The URL scheme the HTTP APIs of this process serve."""
    return "https" if settings.tls_cert_file is not None else "http"
