# InstantMentor Realtime — `make up` runs the stack, `make test` runs every test.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# the npm socket.io-client the Socket.IO tests drive (installed again when its lockfile changes)
NODE_CLIENT := tests/socketio_client
NODE_STAMP := $(NODE_CLIENT)/node_modules/.installed

USER ?= alice
ROLE ?= student
NAME ?=

.PHONY: install up test unit lint token bench soak clean

# pip's own output goes to a log (it is long, and full of warnings nobody can act on here)
$(STAMP): pyproject.toml clients/python/pyproject.toml Makefile
	@echo "==> installing Python dependencies into $(VENV) (about a minute; log: $(VENV)/install.log)"
	@$(PYTHON) -m venv $(VENV)
	@( $(PY) -m pip install --upgrade pip \
	  && $(PY) -m pip install -e '.[test,dev,bench]' -e clients/python ) > $(VENV)/install.log 2>&1 \
	  || { tail -n 30 $(VENV)/install.log; echo "pip install failed; see $(VENV)/install.log"; exit 1; }
	@touch $(STAMP)

install: $(STAMP)

$(NODE_STAMP): $(NODE_CLIENT)/package.json $(NODE_CLIENT)/package-lock.json
	@echo "==> installing socket.io-client for the Socket.IO tests (npm ci in $(NODE_CLIENT))"
	@cd $(NODE_CLIENT) && npm ci --no-audit --no-fund --loglevel=error
	@touch $(NODE_STAMP)

up: $(STAMP)  ## run broker (if needed), gateway and every service in the foreground
	@$(PY) -m tools.up

test: $(STAMP) $(NODE_STAMP)  ## every test; provides a RabbitMQ itself (container, or a local node)
	$(PY) -m pytest -q

unit: $(STAMP)  ## the fast tests without a broker
	$(PY) -m pytest -q tests/unit

lint: $(STAMP)  ## ruff + mypy --strict
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy --strict shared services tools clients/python/instantmentor_client tests bench

token: $(STAMP)  ## make token USER=alice ROLE=student NAME=Alice
	@$(PY) -m tools.token --user '$(USER)' --role '$(ROLE)' --name '$(NAME)'

bench: $(STAMP)  ## open-loop benchmark, ours vs python-socketio; QUICK=1 smoke run, BENCH_ARGS=...
	$(PY) -m bench.openloop $(if $(QUICK),--quick) $(BENCH_ARGS)

soak: $(STAMP)  ## churn soak, memory of every process over 30,000 connections; QUICK=1, SOAK_ARGS=...
	$(PY) -m bench.soak $(if $(QUICK),--quick) $(SOAK_ARGS)

clean:
	rm -rf $(VENV) data .pytest_cache .mypy_cache .ruff_cache $(NODE_CLIENT)/node_modules
