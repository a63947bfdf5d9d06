# The two commands that matter: `make run` and `make test`. Both bootstrap uv if it is missing.
SHELL := /bin/bash
.DEFAULT_GOAL := help

# uv on PATH, or the copy pip installs (run as a module, so PATH does not matter).
UV := $(shell command -v uv 2>/dev/null || echo "python3 -m uv")
export UV_PYTHON_DOWNLOADS := never
ALEMBIC := $(UV) run python -m app.dev alembic

.PHONY: help bootstrap run demo-cart sandbox test bench lint typecheck format \
        db-upgrade db-downgrade db-current db-history db-revision db-reset clean-data

help:
	@echo "make run         start the service (embedded PostgreSQL unless DATABASE_URL is set)"
	@echo "make demo-cart amount=1002.00 currency=EUR   a fresh demo cart for make run"
	@echo "make test        lint, type-check and run the whole test suite"
	@echo "make sandbox     the NetValve sandbox alone on 127.0.0.1:8090 (SANDBOX_PORT)"
	@echo "make bench       benchmarks against same-run baselines; writes docs/benchmarks.md"
	@echo "make lint | typecheck | format"
	@echo "make db-upgrade | db-downgrade | db-current | db-history | db-reset"
	@echo "make db-revision m=\"add payments\"   autogenerate a migration"
	@echo "make clean-data  delete the embedded database in ./.data"

bootstrap:
	@$(UV) --version >/dev/null 2>&1 || python3 -m pip install --quiet uv 2>/dev/null \
		|| python3 -m pip install --quiet --user uv 2>/dev/null \
		|| python3 -m pip install --quiet --user --break-system-packages uv
	@$(UV) sync --locked --quiet

run: bootstrap
	$(UV) run python -m app.dev

# A fresh demo cart in make run's database; 1002.00 gives a pending payment, 2005.00 a decline.
demo-cart: bootstrap
	$(UV) run python -m app.dev demo-cart $(if $(amount),--amount $(amount)) \
		$(if $(currency),--currency $(currency))

sandbox: bootstrap
	$(UV) run python -m app.sandbox

test: bootstrap lint typecheck
	$(UV) run pytest

bench: bootstrap
	$(UV) run python -m bench

lint: bootstrap
	$(UV) run ruff check .
	$(UV) run ruff format --check .

typecheck: bootstrap
	$(UV) run mypy

format: bootstrap
	$(UV) run ruff check --fix .
	$(UV) run ruff format .

db-upgrade: bootstrap
	$(ALEMBIC) upgrade head

db-downgrade: bootstrap
	$(ALEMBIC) downgrade -1

db-current: bootstrap
	$(ALEMBIC) current --verbose

db-history: bootstrap
	$(ALEMBIC) history --verbose

db-revision: bootstrap
	@test -n "$(m)" || { echo 'usage: make db-revision m="what changes"'; exit 2; }
	$(ALEMBIC) revision --autogenerate -m "$(m)"

db-reset: bootstrap
	$(ALEMBIC) downgrade base
	$(ALEMBIC) upgrade head

clean-data:
	rm -rf .data
