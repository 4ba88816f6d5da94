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

test: $(STAMP)
	$(VENV)/bin/ruff check src tests benchmarks scripts
	$(PY) -m pytest -q

demo: $(STAMP)
	$(VENV)/bin/warpnoise demo -o demo_out

bench: $(STAMP)
	$(PY) benchmarks/bench_warp.py
	$(PY) benchmarks/bench_e2e.py

clean:
	rm -rf $(VENV) demo_out
