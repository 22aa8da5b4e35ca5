# InstantMentor Realtime — `make up` runs the stack, `make test` runs every test.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

USER ?= alice
ROLE ?= student
NAME ?=

.PHONY: install up test unit lint token bench clean

$(STAMP): pyproject.toml clients/python/pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test,dev]' -e clients/python
	touch $(STAMP)

install: $(STAMP)

up: $(STAMP)  ## run broker (if needed), gateway and every service in the foreground
	$(PY) -m tools.up

test: $(STAMP)  ## every test; provides a RabbitMQ itself (container, or a local node)
	$(PY) -m pytest -q

unit: $(STAMP)  ## the fast tests without a broker
	$(PY) -m pytest -q tests/unit

lint: $(STAMP)  ## ruff + mypy --strict
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy --strict shared services tools clients/python/instantmentor_client

token: $(STAMP)  ## make token USER=alice ROLE=student NAME=Alice
	@$(PY) -m tools.token --user '$(USER)' --role '$(ROLE)' --name '$(NAME)'

bench: $(STAMP)
	$(PY) -m bench.presence_broadcast

clean:
	rm -rf $(VENV) data .pytest_cache .mypy_cache .ruff_cache
