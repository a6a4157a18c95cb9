# Two set-up commands: `make run` reproduces Ex 2.9, `make test` runs the suite.
# Both create .venv and install what is missing first; a second call installs nothing.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test bench lint format install clean chromium

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# Reinstall only when the project's dependency list changes.
$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet torch==2.13.0
	$(BIN)/python -m pip install --quiet -e '.[dev,track,ray,digits]'
	touch $(STAMP)

install: $(STAMP)

# Reproduce Ex 2.9 (seed 0) into runs/ex-2.9/seed-0/. A finished run is shown again,
# an interrupted one continued; delete the directory to train afresh.
run: $(STAMP)
	$(BIN)/ex-color run experiments/ex-2.9 --resume

# Debian's headless Chromium, for the report's browser test; installed once, when missing and
# when we can (root with apt-get). Elsewhere the test skips, unless CI is set: then it fails.
chromium:
	@if command -v chromium >/dev/null 2>&1; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
		echo 'Installing chromium (apt-get) for the browser test'; \
		{ apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium >/dev/null; } \
			|| echo 'warning: could not install chromium; the browser test will skip'; \
	else \
		echo 'note: chromium is missing and cannot be installed here (needs root and apt-get); the browser test will skip'; \
	fi

# The suite runs in one process per core (pytest-xdist), one test file per process at a time,
# one thread each: the models are tiny, so two single-threaded workers beat one two-threaded run.
test: $(STAMP) chromium
	$(BIN)/ruff check src tests benchmarks examples
	$(BIN)/ruff format --check src tests benchmarks examples
	OMP_NUM_THREADS=1 HYPOTHESIS_PROFILE=repeatable $(BIN)/python -m pytest -q -n logical --dist loadfile

# Trainer and evaluation speed on the Ex 2.9 workload, and the text engine against a plain loop on lm-digits;
# writes benchmarks/results.json.
bench: $(STAMP)
	$(BIN)/python benchmarks/bench.py

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks examples
	$(BIN)/ruff format --check src tests benchmarks examples

format: $(STAMP)
	$(BIN)/ruff format src tests benchmarks examples
	$(BIN)/ruff check --fix src tests benchmarks examples

clean:
	rm -rf $(VENV) build src/*.egg-info
