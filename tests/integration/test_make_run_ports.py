"""`make run` on taken ports says which process holds them and starts nothing; `make stop` with
nothing running says so and succeeds. The full run, its reuse and stop are in
tests/e2e/test_readme_snippets.py."""

from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import Any

from omnid.testing.workers import free_port

# Nothing answers there: a run that got past the port check would fail, not start a broker.
NO_BROKER = "localhost:1"


def test_make_run_names_the_process_holding_a_port_and_starts_nothing(
    tmp_path: Path, stack_env: Any, make_target: Any
) -> None:
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        held_port = held.getsockname()[1]
        env = stack_env(
            tmp_path / "run",
            OMNID_KAFKA_BOOTSTRAP=NO_BROKER,
            RUN_WORKER_PORTS=f"{held_port} {free_port()}",
            OMNID_COLLECTOR_PORT=str(free_port()),
        )
        result = make_target("run", env)
    assert result.returncode != 0
    assert f"port {held_port} (worker local-1) is held by pid {os.getpid()}" in result.stderr
    assert "make stop" in result.stderr
    assert not list((tmp_path / "run").glob("*.pid"))


def test_make_stop_with_nothing_running_says_so(
    tmp_path: Path, stack_env: Any, make_target: Any
) -> None:
    env = stack_env(tmp_path / "run", OMNID_KAFKA_BOOTSTRAP=NO_BROKER)
    for _ in range(2):
        result = make_target("stop", env)
        assert result.returncode == 0, result.stderr
        assert "nothing from make run is running" in result.stdout
