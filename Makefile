# Two commands: `make demo` and `make test`. Both create .venv on first use.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
STAMP := $(VENV)/.installed

.PHONY: demo test lint bench venv clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	# torch first, pinned to the CPU wheel this machine carries; users keep their own build (torch>=2.2).
	$(PY) -c "import torch" 2>/dev/null || $(PIP) install -q "torch==2.13.0"
	$(PIP) install -q -e ".[all,test]"
	touch $(STAMP)

venv: $(STAMP)

# The studio's browser tests drive Debian's chromium; install it where it is missing and
# apt-get can (they skip with a message where it cannot be had).
test: $(STAMP)
	@command -v chromium >/dev/null 2>&1 || ! command -v apt-get >/dev/null 2>&1 || \
		{ apt-get update -qq && apt-get install -y -qq chromium; } || \
		echo "chromium could not be installed: the studio's browser tests will skip"
	$(VENV)/bin/ruff check src tests benchmarks scripts
	$(PY) -m pytest -q

demo: $(STAMP)
	$(VENV)/bin/warpnoise demo -o demo_out

bench: $(STAMP)
	$(PY) benchmarks/bench_warp.py
	$(PY) benchmarks/bench_e2e.py

clean:
	rm -rf $(VENV) demo_out
