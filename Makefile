# `make demo` and `make test` set up .venv from scratch when it is missing.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

MEDIAPIPE_FILES := models/mediapipe/.complete

.PHONY: demo test venv bench eval clean mediapipe-files

venv: $(STAMP)

# MediaPipe's .tflite files, out of the mediapipe 0.10.21 wheel (pip download, sha256-checked; never committed).
mediapipe-files: $(MEDIAPIPE_FILES)

$(MEDIAPIPE_FILES): | $(STAMP)
	$(PY) -m maskmargin download mediapipe --models-dir models
	touch $@

$(STAMP): requirements.txt requirements-dev.txt constraints.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -c constraints.txt -r requirements.txt -r requirements-dev.txt
	# the older Runware SDK imports as `runware` too (like runware-sdk): kept in its own folder for the tests
	$(PY) -m pip install -q --no-deps --upgrade --target $(VENV)/runware-0.5 runware==0.5.24
	# the engine itself, editable: `maskmargin ...` and `python -m maskmargin` work from any folder
	$(PY) -m pip install -q --no-deps -e .
	touch $(STAMP)

demo: $(STAMP) $(MEDIAPIPE_FILES)
	$(PY) -m maskmargin demo --output-dir output

test: $(STAMP) $(MEDIAPIPE_FILES)
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m mypy
	$(PY) -m pytest -q -rs

bench: $(STAMP) $(MEDIAPIPE_FILES)
	$(PY) benchmarks/bench_image_mask.py

eval: $(STAMP) $(MEDIAPIPE_FILES)
	$(PY) benchmarks/eval_detection.py ../shared/eval/dev

clean:
	rm -rf $(VENV) output .pytest_cache
