# The two commands of the README: `make run` and `make test`. Everything else is a helper.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: run test lint format bench drill venv test-tools

venv: $(STAMP)

$(STAMP): pyproject.toml cli/pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	$(BIN)/python -m pip install -q -e ./cli
	@touch $(STAMP)

run: $(STAMP)
	$(BIN)/python -m portal.devrun

test: $(STAMP) test-tools
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# The browser tests drive Debian's Chromium (never a downloaded one) and the deployment test
# validates docker-compose.yml with Debian's docker-compose client: install them where we can.
test-tools:
	@command -v chromium >/dev/null 2>&1 && command -v docker-compose >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
	      apt-get install -y -qq chromium docker-compose >/dev/null; \
	  fi; }
	@command -v chromium >/dev/null 2>&1 || { \
	  echo "make test: the browser tests need Chromium at /usr/bin/chromium;" \
	       "install it with: sudo apt-get install -y chromium" >&2; exit 1; }

# Style, the import contracts in pyproject.toml ([tool.importlinter]) and types; any finding fails.
lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports
	$(BIN)/mypy portal approvals awsaccess

format: $(STAMP)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

bench: $(STAMP)
	$(BIN)/python bench/run_all.py

# A break-glass drill against the sandbox of a running `make run`.
drill: $(STAMP)
	$(BIN)/python -m portal.devrun manage drill sandbox --auto-sign
