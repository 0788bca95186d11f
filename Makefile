# Thin wrappers: every target calls a script or the omnid CLI, no logic lives only here.
PYTHON ?= python3
# OMNID_KAFKA_BOOTSTRAP is left unset unless you set it: unset means "use the local broker",
# which `make run` and the test fixtures start when it is not running.

.PHONY: install run test lint bench kafka-up kafka-down

install:
	$(PYTHON) -m pip install -q -e '.[dev,bench]'

kafka-up:
	bash deploy/kafka/kafka-local.sh up

kafka-down:
	bash deploy/kafka/kafka-local.sh down

run:
	bash scripts/run.sh

lint:
	ruff check src tests bench
	ruff format --check src tests bench
	mypy

test:
	bash scripts/test.sh

bench:
	bash bench/run.sh
