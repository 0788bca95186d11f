# Thin wrappers: every target calls a script or the omnid CLI, no logic lives only here.
PYTHON ?= python3
export OMNID_KAFKA_BOOTSTRAP ?= localhost:9092

.PHONY: install run test lint bench kafka-up kafka-down

install:
	$(PYTHON) -m pip install -q -e '.[dev,bench]'

kafka-up:
	bash deploy/kafka/kafka-local.sh up

kafka-down:
	bash deploy/kafka/kafka-local.sh down

run: kafka-up
	omnid topics apply

lint:
	ruff check src tests bench
	ruff format --check src tests bench
	mypy

test:
	bash scripts/test.sh

bench:
	omnid bench --engine memory
