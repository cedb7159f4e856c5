# `make demo` and `make test` set up .venv from scratch when it is missing.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test venv bench eval clean

venv: $(STAMP)

$(STAMP): requirements.txt requirements-dev.txt constraints.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -c constraints.txt -r requirements.txt -r requirements-dev.txt
	# the older Runware SDK imports as `runware` too (like runware-sdk): kept in its own folder for the tests
	$(PY) -m pip install -q --no-deps --upgrade --target $(VENV)/runware-0.5 runware==0.5.24
	# the engine itself, editable: `maskmargin ...` and `python -m maskmargin` work from any folder
	$(PY) -m pip install -q --no-deps -e .
	touch $(STAMP)

demo: $(STAMP)
	$(PY) -m maskmargin demo --output-dir output

test: $(STAMP)
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m mypy
	$(PY) -m pytest -q -rs

bench: $(STAMP)
	$(PY) benchmarks/bench_image_mask.py

eval: $(STAMP)
	$(PY) benchmarks/eval_detection.py ../shared/eval/dev

clean:
	rm -rf $(VENV) output .pytest_cache
