# Thin wrappers: every target calls a script or the omnid CLI, no logic lives only here.
# Python targets run in the active virtualenv, else in the project's .venv (scripts/venv.sh
# creates it and installs omnid on first use).
IN_VENV = bash scripts/venv.sh
# OMNID_KAFKA_BOOTSTRAP is left unset unless you set it: unset means "use the local broker",
# which `make run` and the test fixtures start when it is not running.

.PHONY: install run stop test lint bench bench-scale bench-scale-out chaos kafka-up kafka-down

install:
	rm -f "$${VIRTUAL_ENV:-.venv}/.omnid-install"
	$(IN_VENV) true

kafka-up:
	bash deploy/kafka/kafka-local.sh up

kafka-down:
	bash deploy/kafka/kafka-local.sh down

run:
	bash scripts/run.sh

stop:
	bash scripts/stop.sh

lint:
	$(IN_VENV) ruff check src tests bench scripts samples
	$(IN_VENV) ruff format --check src tests bench scripts samples
	$(IN_VENV) mypy

test:
	bash scripts/test.sh

bench:
	$(IN_VENV) bash bench/run.sh

bench-scale:
	$(IN_VENV) bash bench/run_scale.sh

bench-scale-out:
	OMNID_SCALE_OUT=only $(IN_VENV) bash bench/run_scale.sh

chaos:
	$(IN_VENV) python bench/chaos.py
