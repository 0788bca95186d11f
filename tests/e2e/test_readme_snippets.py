"""Every shell and Python snippet of the README's Quick start and Feeding sections, run as
written against a stack that `make run` started, and what the README promises about them.

The stack is the test's own (the test broker, a topic prefix, free ports, its own run and state
folders), so it never meets a developer's `make run`. The snippets are run as written except for
exactly that: the default ports 8081/8082/8088 become the test's ports, `.run/` its run folder and
`.venv/` the virtualenv the test runs in. `make run` and `make stop` are run by the fixture
(`make stop` last, and then no process of the stack may be left); `make test` is not run (it is
what runs this test). A ```console block is a `$ command` and the output the README shows for it.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from omnid.config import PROJECT_ROOT, Settings
from omnid.kafka.topics import delete_topics, load_topology
from omnid.testing.workers import free_port

pytestmark = [pytest.mark.kafka, pytest.mark.e2e, pytest.mark.timeout(900)]

README = PROJECT_ROOT / "README.md"
SECTIONS = ("Quick start", "Feeding omnid events")
# Run by the fixture around the snippets rather than in README order.
RUN_BY_THE_FIXTURE = {"make run", "make stop"}
NOT_RUN = {"make test": "it is the command that runs this test"}
COMMAND_TIMEOUT_S = 180


@dataclass(frozen=True)
class Snippet:
    section: str
    language: str  # bash | python | console
    text: str


def readme_snippets() -> list[Snippet]:
    text = README.read_text()
    snippets = []
    for section in SECTIONS:
        body = text.split(f"\n## {section}\n", 1)[1].split("\n## ", 1)[0]
        for language, code in re.findall(r"^```(\w*)\n(.*?)^```$", body, re.M | re.S):
            snippets.append(Snippet(section, language, code))
    return snippets


def bash_commands(code: str) -> list[str]:
    """One entry per command line (continuations joined), without comment-only lines."""
    commands = []
    for line in code.replace("\\\n", " ").splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            commands.append(line.strip())
    return commands


def without_comment(command: str) -> str:
    return re.sub(r"\s+#.*$", "", command)


@dataclass
class Stack:
    env: dict[str, str]
    run_home: Path
    substitutions: dict[str, str]
    make_run_output: str
    make_target: Any

    def as_here(self, text: str) -> str:
        for readme_text, here in self.substitutions.items():
            text = text.replace(readme_text, here)
        return text

    def run(self, *argv: str) -> subprocess.CompletedProcess[str]:
        """A command in the project folder, with the environment of the shell `make run` ran in."""
        return subprocess.run(
            argv,
            cwd=PROJECT_ROOT,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=COMMAND_TIMEOUT_S,
            check=False,
        )

    def bash(self, command: str, prelude: list[str]) -> subprocess.CompletedProcess[str]:
        return self.run("bash", "-c", "\n".join([*prelude, self.as_here(command)]))


def stack_pids(run_home: Path) -> list[int]:
    return [int(f.read_text().split()[0]) for f in run_home.glob("*.pid")]


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.fixture(scope="module")
def stack(
    kafka_bootstrap: str,
    tmp_path_factory: pytest.TempPathFactory,
    stack_env: Any,
    make_target: Any,
) -> Iterator[Stack]:
    """`make run` on the test broker; `make stop` afterwards, checked to leave nothing running."""
    home = tmp_path_factory.mktemp("make-run")
    workers, collector = (free_port(), free_port()), free_port()
    prefix = f"test-readme-{uuid.uuid4().hex[:8]}"
    env = stack_env(
        home / "run",
        OMNID_KAFKA_BOOTSTRAP=kafka_bootstrap,
        OMNID_TOPIC_PREFIX=prefix,
        OMNID_COLLECTOR_PORT=str(collector),
        RUN_WORKER_PORTS=f"{workers[0]} {workers[1]}",
        RUN_STATE_DIR=str(home / "state"),
    )
    substitutions = {
        ":8081": f":{workers[0]}",
        ":8082": f":{workers[1]}",
        ":8088": f":{collector}",
        ".run/": f"{home / 'run'}/",
    }
    if "VIRTUAL_ENV" in env:  # make run uses this test's virtualenv instead of .venv
        substitutions[".venv/"] = f"{env['VIRTUAL_ENV']}/"
    started = make_target("run", env)
    assert started.returncode == 0, started.stdout + started.stderr
    try:
        yield Stack(env, home / "run", substitutions, started.stdout, make_target)
    finally:
        pids = stack_pids(home / "run")
        stopped = make_target("stop", env)
        spec = load_topology(Settings().topics_file)
        delete_topics(Settings(kafka_bootstrap=kafka_bootstrap).kafka_client_config(),
                      spec.names(prefix).values())  # fmt: skip
    assert stopped.returncode == 0, stopped.stdout + stopped.stderr
    assert pids and not [pid for pid in pids if alive(pid)]
    assert not list((home / "run").glob("*.pid"))


def profile_of(output: str) -> dict[str, Any]:
    return dict(json.loads(output))


def identifiers_of(profile: dict[str, Any]) -> set[str]:
    return {f"{i['type']}:{i['value']}" for i in profile["identifiers"]}


# What the README says about a command's answer, beyond exit status 0.
PROMISES: dict[str, Callable[[str], None]] = {}


def promise(command: str) -> Callable[[Callable[[str], None]], Callable[[str], None]]:
    def register(check: Callable[[str], None]) -> Callable[[str], None]:
        PROMISES[command] = check
        return check

    return register


@promise("omnid lookup email Lea.Fisher.3@inbox.example")
def _merged_across_channels(output: str) -> None:
    profile = profile_of(output)
    assert "email:lea.fisher.3@inbox.example" in identifiers_of(profile)
    assert len(profile["computed"]["channel_counts"]) > 1


@promise("omnid lookup pos_customer_id C-501")
def _two_orders_crm_record_and_card(output: str) -> None:
    profile = profile_of(output)
    assert profile["computed"]["order_count"] == 2
    assert float(profile["computed"]["revenue"]["GBP"]) == pytest.approx(49.75)
    assert {"crm_id:CRM-1", "loyalty_id:LC-9001"} <= identifiers_of(profile)


@promise("omnid lookup user_id u-demo-1")
def _the_identify_call(output: str) -> None:
    assert "email:demo.shopper@inbox.example" in identifiers_of(profile_of(output))


@promise("omnid tail profiles --from-beginning --idle-exit 5")
def _profile_snapshots(output: str) -> None:
    assert "lea.fisher.3@inbox.example" in output


def eventually(stack: Stack, command: str, prelude: list[str]) -> dict[str, Any]:
    """The profile `command` prints once it answers; the events behind it are still on their way."""
    deadline = time.monotonic() + COMMAND_TIMEOUT_S
    while True:
        result = stack.bash(command, prelude)
        if result.returncode == 0:
            return profile_of(result.stdout)
        assert time.monotonic() < deadline, result.stdout + result.stderr
        time.sleep(1)


def test_make_run_returns_ready_and_a_second_run_reuses_the_stack(stack: Stack) -> None:
    assert "Started now:" in stack.make_run_output
    again = stack.make_target("run", stack.env)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "Started now:" not in again.stdout
    assert again.stdout.count("reused as is") == 1
    assert "worker local-2" in again.stdout.split("reused as is", 1)[1]


def test_every_readme_snippet_works_as_written(stack: Stack) -> None:
    snippets = readme_snippets()
    assert {s.section for s in snippets} == set(SECTIONS)
    prelude: list[str] = []  # `. file` and `export` lines: they hold for the commands after them
    ran: list[str] = []
    for snippet in snippets:
        if snippet.language == "python":
            result = stack.run(sys.executable, "-c", stack.as_here(snippet.text))
            assert result.returncode == 0, f"{snippet.text}\n{result.stdout}{result.stderr}"
            ran.append(snippet.text)
        elif snippet.language == "console":
            command, *expected = snippet.text.strip().splitlines()
            assert command.startswith("$ "), snippet.text
            result = stack.bash(command[2:], prelude)
            assert result.stdout.strip() == "\n".join(expected).strip(), result.stderr
            ran.append(command[2:])
        elif snippet.language == "bash":
            for line in bash_commands(snippet.text):
                command = without_comment(line)
                if command in RUN_BY_THE_FIXTURE or command in NOT_RUN:
                    continue
                if command.startswith((". ", "export ")):
                    prelude.append(stack.as_here(command))
                    check = stack.bash("true", prelude)
                    assert check.returncode == 0, f"{command}\n{check.stderr}"
                    continue
                result = stack.bash(command, prelude)
                assert result.returncode == 0, f"{command}\n{result.stdout}{result.stderr}"
                if command in PROMISES:
                    PROMISES[command](result.stdout)
                ran.append(command)
        else:
            pytest.fail(
                f"README {snippet.section}: a ```{snippet.language} block this test cannot run"
            )
    assert set(PROMISES) <= set(ran)

    # What the Feeding section says its examples lead to.
    user_42 = eventually(stack, "omnid lookup user_id user-42", prelude)
    assert {"pos_customer_id:C-501", "anonymous_id:anon-1"} <= identifiers_of(user_42)
    assert user_42["computed"]["order_count"] == 2
    called = eventually(stack, "omnid lookup phone '+44 20 7946 0123'", prelude)
    assert called["traits"]["preferred_store"]["value"] == "LDN-01"
    assert "crm_id:CRM-1" in identifiers_of(called)
