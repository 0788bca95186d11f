"""Encrypted and authenticated transport: the collector and the worker APIs over HTTPS with a
certificate of our own CA, and the whole pipeline (workers, collector, importer) through a
Kafka broker that only speaks SASL_SSL (SCRAM-SHA-512 over TLS), configured with the README's
OMNID_KAFKA_* settings; a client without credentials, or with a wrong password, is refused."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from confluent_kafka.admin import AdminClient

from omnid.adapters.collector import BackgroundCollector, collector_from_settings
from omnid.api_auth import Scope, bearer_header, write_token
from omnid.config import PROJECT_ROOT, Settings
from omnid.contracts import Channel
from omnid.kafka.topics import delete_topics, load_topology
from omnid.testing.workers import WorkerProcess, free_port, running_pipeline
from omnid.tls import server_context

pytestmark = pytest.mark.kafka

KAFKA_LOCAL = PROJECT_ROOT / "deploy" / "kafka" / "kafka-local.sh"
# This suite's own broker (never the shared one): its port, the controller on the next one.
SASL_PORT = int(os.environ.get("OMNID_TEST_SASL_SSL_PORT", "9292"))


def _openssl(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True)


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A CA and a certificate for 127.0.0.1 / localhost signed by it."""
    home = tmp_path_factory.mktemp("tls")
    ca, ca_key, key, csr, cert = (home / n for n in ("ca.pem", "ca.key", "k.pem", "c.csr", "c.pem"))
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=test CA",
             "-keyout", str(ca_key), "-out", str(ca))  # fmt: skip
    _openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=localhost",
             "-keyout", str(key), "-out", str(csr))  # fmt: skip
    san = home / "san.ext"
    san.write_text("subjectAltName=DNS:localhost,IP:127.0.0.1\n")
    _openssl("x509", "-req", "-in", str(csr), "-CA", str(ca), "-CAkey", str(ca_key),
             "-CAcreateserial", "-days", "2", "-extfile", str(san), "-out", str(cert))  # fmt: skip
    return {"ca": ca, "cert": cert, "key": key}


def test_the_collector_serves_https_and_refuses_plain_http(
    kafka_bootstrap: str, events_topics: object, tls_files: dict[str, Path]
) -> None:
    settings = Settings(
        kafka_bootstrap=kafka_bootstrap,
        tls_cert_file=tls_files["cert"],
        tls_key_file=tls_files["key"],
    )
    with (
        events_topics("tls", [Channel.WEB]) as prefix,  # type: ignore[operator]
        BackgroundCollector(
            collector_from_settings(settings, topic_prefix=prefix), tls=server_context(settings)
        ) as server,
    ):
        assert server.url.startswith("https://")
        response = requests.post(
            f"{server.url}/v1/identify",
            json={"userId": "u-tls"},
            auth=("dev-web-key", ""),
            verify=str(tls_files["ca"]),
            timeout=30,
        )
        assert (response.status_code, response.json()) == (200, {"success": True})
        with pytest.raises(requests.exceptions.SSLError):  # not our CA: not trusted
            requests.get(f"{server.url}/healthz", timeout=10)
        with pytest.raises(requests.exceptions.ConnectionError):
            requests.get(server.url.replace("https://", "http://") + "/healthz", timeout=10)


def test_a_worker_serves_its_apis_over_https(
    kafka_bootstrap: str, topology: Any, tls_files: dict[str, Path], tmp_path: Path
) -> None:
    tokens = tmp_path / "api-tokens.yaml"
    token = write_token(tokens, "tls-test", {Scope.PROFILES_READ})
    worker = WorkerProcess(
        name="tls-1",
        port=free_port(),
        data_dir=tmp_path / "state",
        env={
            "OMNID_KAFKA_BOOTSTRAP": kafka_bootstrap,
            "OMNID_TOPIC_PREFIX": topology.prefix,
            "OMNID_API_TOKENS_FILE": str(tokens),
            "OMNID_TLS_CERT_FILE": str(tls_files["cert"]),
            "OMNID_TLS_KEY_FILE": str(tls_files["key"]),
        },
        log_path=tmp_path / "worker.log",
    ).start()
    url = f"https://127.0.0.1:{worker.port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                health = requests.get(f"{url}/healthz", verify=str(tls_files["ca"]), timeout=5)
                break
            except requests.exceptions.ConnectionError:
                assert worker.alive() and time.monotonic() < deadline, worker.log_path.read_text()  # type: ignore[union-attr]
                time.sleep(0.5)
        assert health.json() == {"status": "ok"}
        lookup = requests.get(
            f"{url}/v1/identifiers/user_id/nobody",
            headers=bearer_header(token),
            verify=str(tls_files["ca"]),
            timeout=10,
        )
        assert lookup.status_code in (404, 503)  # answered by the lookup API, over TLS
    finally:
        worker.stop()


# -- Kafka over SASL_SSL -------------------------------------------------------------------------


def _broker_env(home: Path) -> dict[str, str]:
    return {
        **os.environ,
        "KAFKA_LOCAL_HOME": str(home),
        "KAFKA_LOCAL_PORT": str(SASL_PORT),
        "KAFKA_LOCAL_SECURITY": "sasl_ssl",
        "KAFKA_LOCAL_START_TIMEOUT": "300",
    }


@pytest.fixture(scope="module")
def sasl_ssl_settings(
    kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, str]]:
    """A private broker whose only client listener is SASL_SSL, and the OMNID_KAFKA_* settings
    that reach it (what `kafka-local.sh env` prints, as the README says). Reuses the project's
    Maven cache (filled by the shared broker `kafka_bootstrap` made sure of) when there is one."""
    home = tmp_path_factory.mktemp("kafka-sasl-ssl")
    shared_m2 = PROJECT_ROOT / ".kafka" / "m2"
    if shared_m2.is_dir():
        (home / "m2").symlink_to(shared_m2)
    env = _broker_env(home)

    def broker(command: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["bash", str(KAFKA_LOCAL), command], env=env, capture_output=True, text=True,
            timeout=900,
        )  # fmt: skip

    started = broker("up")
    assert started.returncode == 0, started.stdout + started.stderr
    try:
        yield dict(line.split("=", 1) for line in broker("env").stdout.splitlines())
    finally:
        broker("down")


def test_a_client_without_credentials_or_with_a_wrong_password_is_refused(
    sasl_ssl_settings: dict[str, str],
) -> None:
    good = Settings(**{k.removeprefix("OMNID_").lower(): v for k, v in sasl_ssl_settings.items()})
    assert AdminClient(good.kafka_client_config()).list_topics(timeout=30).brokers
    plain = {"bootstrap.servers": good.kafka_bootstrap, "log_level": "0"}
    wrong = {**good.kafka_client_config(), "sasl.password": "not-the-password", "log_level": "0"}
    for config in (plain, wrong):
        with pytest.raises(Exception, match=r"_TRANSPORT|[Aa]uthentication|transport"):
            AdminClient(config).list_topics(timeout=8)


def test_workers_collector_and_importer_run_through_sasl_ssl(
    sasl_ssl_settings: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in sasl_ssl_settings.items():
        monkeypatch.setenv(name, value)  # every process below reads the README's settings
    prefix = f"test-sasl-{uuid.uuid4().hex[:8]}"
    monkeypatch.setenv("OMNID_TOPIC_PREFIX", prefix)
    settings = Settings()
    config = settings.kafka_client_config()
    cli = [sys.executable, "-m", "omnid.cli"]
    subprocess.run([*cli, "topics", "apply"], check=True, capture_output=True, timeout=300)
    rows = tmp_path / "sales.csv"
    rows.write_text(
        "receipt_id,sold_at,store,customer_no,loyalty_card,email,phone,first_name,last_name,"
        "total,currency\n"
        "R-1,01/11/2026 09:15,LDN-01,C-77,,sasl.user@inbox.example,,Sam,Sasl,42.50,GBP\n"
    )
    try:
        with (
            running_pipeline(config, prefix, tmp_path / "pipeline", workers=1) as pipeline,
            BackgroundCollector(collector_from_settings(settings)) as collector,
        ):
            pipeline.wait_until_assigned(6, timeout=300)
            sent = requests.post(
                f"{collector.url}/v1/identify",
                json={"userId": "u-sasl", "traits": {"email": "sasl.user@inbox.example"}},
                auth=("dev-web-key", ""),
                timeout=60,
            )
            assert sent.status_code == 200, sent.text
            imported = subprocess.run(
                [*cli, "import", "--channel", "pos", "--mapping",
                 str(PROJECT_ROOT / "samples" / "pos-mapping.yaml"), str(rows),
                 "--rejects", str(tmp_path / "rejects.csv")],
                capture_output=True, text=True, timeout=300,
            )  # fmt: skip
            assert imported.returncode == 0, imported.stdout + imported.stderr
            # Both events reach the one profile through the worker: it consumed and produced
            # over SASL_SSL too.
            url = f"{pipeline.workers[0].url}/v1/identifiers/pos_customer_id/C-77"
            deadline = time.monotonic() + 300
            while True:
                answer = requests.get(url, headers=bearer_header(pipeline.api_token), timeout=10)
                body = answer.json()
                ids = {i["value"] for i in body.get("identifiers", [])}
                if answer.status_code == 200 and "u-sasl" in ids:
                    break
                assert time.monotonic() < deadline, (answer.status_code, json.dumps(body))
                time.sleep(1)
            assert {"sasl.user@inbox.example", "C-77", "u-sasl"} <= ids
    finally:
        delete_topics(config, load_topology(settings.topics_file).names(prefix).values())
