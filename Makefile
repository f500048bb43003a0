# Two commands on a fresh machine with Python 3.11+: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
REQUIREMENTS := requirements.txt requirements-dev.txt
STAMP := $(VENV)/.requirements.sha256

.PHONY: run test lint format bootstrap stop status clean

run: bootstrap
	$(PY) manage.py runplatform

# Two pytest-xdist workers, each with its own embedded PostgreSQL, Redis and Celery workers (a file's tests stay
# together on one); TEST_WORKERS=0 runs the suite in this process.
TEST_WORKERS ?= 2
test: bootstrap
	$(PY) -m pytest -n $(TEST_WORKERS) --dist loadfile $(PYTEST_ARGS)

# ruff (pinned in requirements-dev.txt): lint and the formatter's check; CI runs it before the tests.
lint: bootstrap
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

# Fix what ruff can fix and format the code.
format: bootstrap
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

# Create .venv and install the pinned requirements; skipped while they are unchanged.
bootstrap:
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@sum="$$(cat $(REQUIREMENTS) | sha256sum | cut -d' ' -f1)"; \
	if [ "$$(cat $(STAMP) 2>/dev/null)" != "$$sum" ]; then \
		echo "Installing requirements into $(VENV)..."; \
		$(PY) -m pip install --quiet --disable-pip-version-check --upgrade pip && \
		$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt && \
		echo "$$sum" > $(STAMP); \
	fi

# Stop embedded services left running (for example by a plain manage.py command).
stop: bootstrap
	$(PY) -m platform_site.embedded stop

status: bootstrap
	$(PY) -m platform_site.embedded status

clean:
	rm -rf $(VENV) var
