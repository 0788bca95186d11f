"""`make run` on taken ports says which process holds them and starts nothing; `make stop` with
nothing running says so and succeeds. The full run, its reuse and stop are in
tests/e2e/test_readme_snippets.py."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

from omnid.config import PROJECT_ROOT


def stack_env(run_home: Path, **settings: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OMNID_", "RUN_"))}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    if sys.prefix != sys.base_prefix:
        env["VIRTUAL_ENV"] = sys.prefix
    # Nothing answers there: a run that got past the port check would fail, not start a broker.
    env.update(OMNID_KAFKA_BOOTSTRAP="localhost:1", RUN_HOME=str(run_home), **settings)
    return env


def make(target: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["make", "--no-print-directory", target],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_make_run_names_the_process_holding_a_port_and_starts_nothing(tmp_path: Path) -> None:
    with socket.socket() as held, socket.socket() as free:
        held.bind(("127.0.0.1", 0))
        held.listen()
        free.bind(("127.0.0.1", 0))
        held_port, free_port = held.getsockname()[1], free.getsockname()[1]
        free.close()
        env = stack_env(
            tmp_path / "run",
            RUN_WORKER_PORTS=f"{held_port} {free_port}",
            OMNID_COLLECTOR_PORT=str(free_port),
        )
        result = make("run", env)
    assert result.returncode != 0
    assert f"port {held_port} (worker local-1) is held by pid {os.getpid()}" in result.stderr
    assert "make stop" in result.stderr
    assert not list((tmp_path / "run").glob("*.pid"))


def test_make_stop_with_nothing_running_says_so(tmp_path: Path) -> None:
    env = stack_env(tmp_path / "run")
    for _ in range(2):
        result = make("stop", env)
        assert result.returncode == 0, result.stderr
        assert "nothing from make run is running" in result.stdout
