"""A private single-node Kafka broker a test or the chaos run may SIGKILL and restart (never
the shared one)."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from omnid.config import PROJECT_ROOT

LOCAL_BROKER_SCRIPT = PROJECT_ROOT / "deploy" / "kafka" / "kafka-local.sh"


@dataclass
class LocalBroker:
    """A private single-node broker (deploy/kafka/kafka-local.sh) that a test or the chaos run
    may SIGKILL and restart, never the shared one. Its home is its own; the Maven repository is
    shared (KAFKA_LOCAL_M2, else the project's .kafka/m2, created and filled on first use), so
    the broker is downloaded at most once per machine or clean clone."""

    home: Path
    port: int
    heap: str = "512m"

    @property
    def bootstrap(self) -> str:
        return f"localhost:{self.port}"

    def _env(self) -> dict[str, str]:
        return {
            **os.environ,
            "KAFKA_LOCAL_HOME": str(self.home),
            "KAFKA_LOCAL_PORT": str(self.port),
            "KAFKA_LOCAL_HEAP": self.heap,
            "KAFKA_LOCAL_START_TIMEOUT": "300",
            "KAFKA_LOCAL_STOP_TIMEOUT": "20",
            # Another broker answering on this port is a collision to report, never one to
            # use: this one is SIGKILLed by pid, and the workers must see that happen.
            "KAFKA_LOCAL_REQUIRE_OWN": "1",
        }

    def _share_maven_repository(self) -> None:
        self.home.mkdir(parents=True, exist_ok=True)
        shared = Path(os.environ.get("KAFKA_LOCAL_M2") or PROJECT_ROOT / ".kafka" / "m2")
        shared.mkdir(parents=True, exist_ok=True)
        link = self.home / "m2"
        if not link.exists():
            link.symlink_to(shared.resolve(), target_is_directory=True)
        # The resolved classpath names jars inside that repository: reuse it, skipping Maven.
        for classpath in shared.resolve().parent.glob("classpath-*.txt"):
            target = self.home / classpath.name
            if not target.exists():
                target.write_text(classpath.read_text())

    def start(self, timeout: float = 900) -> None:
        self._share_maven_repository()
        result = subprocess.run(
            ["bash", str(LOCAL_BROKER_SCRIPT), "up"],
            env=self._env(),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if result.returncode != 0:
            raise RuntimeError(f"private broker did not start:\n{result.stdout}{result.stderr}")

    def pid(self) -> int | None:
        try:
            return int((self.home / "broker.pid").read_text())
        except (OSError, ValueError):
            return None

    def kill(self) -> None:
        """SIGKILL, as a crashed node: no controlled shutdown, no leader hand-over."""
        pid = self.pid()
        if pid is None:
            raise RuntimeError(f"no broker.pid in {self.home}: the private broker is not running")
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            raise RuntimeError(f"the private broker (pid {pid}) had already exited") from None
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and _process_exists(pid):
            time.sleep(0.1)
        if _process_exists(pid):
            # Still holding its ports: a restart now would fail to bind them.
            raise RuntimeError(f"the private broker (pid {pid}) outlived SIGKILL for 30 s")

    def stop(self) -> None:
        subprocess.run(
            ["bash", str(LOCAL_BROKER_SCRIPT), "down"],
            env=self._env(),
            capture_output=True,
            timeout=120,
            check=False,
        )


def _process_exists(pid: int) -> bool:
    """Running or sleeping; a zombie (dead, not yet reaped) counts as gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[-1].split()[0] != "Z"
