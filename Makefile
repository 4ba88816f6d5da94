# Two commands: `make demo` and `make test`. Both create .venv on first use.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
STAMP := $(VENV)/.installed

.PHONY: demo test test-fast docs lint chromium bench venv clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	# torch first, pinned to the CPU wheel this machine carries; users keep their own build (torch>=2.2).
	$(PY) -c "import torch" 2>/dev/null || $(PIP) install -q "torch==2.13.0"
	$(PIP) install -q -e ".[all,test,docs]"
	touch $(STAMP)

venv: $(STAMP)

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests benchmarks scripts

# The documentation site, built strictly: a broken link, a missing anchor or an unreadable
# docstring fails the build (and `make test`). Output in site/ (ignored by git). Not --quiet:
# it hides the warnings from --strict, which then passes.
docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict --site-dir site

# The studio's browser tests drive Debian's chromium; install it where it is missing and
# apt-get can (they skip with a message where it cannot be had).
chromium:
	@command -v chromium >/dev/null 2>&1 || ! command -v apt-get >/dev/null 2>&1 || \
		{ apt-get update -qq && apt-get install -y -qq chromium; } || \
		echo "chromium could not be installed: the studio's browser tests will skip"

# Everything CI runs; prints the 15 slowest tests.
test: lint docs chromium
	$(PY) -m pytest -q --durations=15

# The same without the tests marked slow (statistics over many frames, fresh processes, end to end).
test-fast: lint docs chromium
	$(PY) -m pytest -q -m "not slow" --durations=15

demo: $(STAMP)
	$(VENV)/bin/warpnoise demo -o demo_out

bench: $(STAMP)
	$(PY) benchmarks/bench_warp.py
	$(PY) benchmarks/bench_e2e.py

clean:
	rm -rf $(VENV) demo_out site
