# The two commands: `make run` brings the whole suite up, `make test` runs the tests.
# Both work on a fresh clone with only Python 3.11 and make installed.
PYTHON ?= python3.11
VENV := .venv
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)

.PHONY: run test lint install clean asyncapi chromium

$(STAMP): pyproject.toml
	@test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV) || python3 -m venv $(VENV)
	$(VENV)/bin/python -m pip install --quiet --disable-pip-version-check --upgrade pip==25.3
	$(VENV)/bin/python -m pip install --quiet --disable-pip-version-check -e '.[dev,embedded]'
	@rm -f $(VENV)/.installed-*
	@touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	$(VENV)/bin/obruten run

# The browser tests drive Debian's chromium (Playwright's own browser download is not reachable).
chromium:
	@command -v chromium >/dev/null || (apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium)

test: $(STAMP) chromium
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports
	$(VENV)/bin/pytest

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports

asyncapi: $(STAMP)
	$(VENV)/bin/obruten asyncapi > docs/asyncapi.json

clean:
	rm -rf $(VENV) var
