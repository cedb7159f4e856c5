# `make demo` and `make test` set up .venv from scratch when it is missing.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

# ComfyUI for the real-ComfyUI tests: COMFYUI_DIR when set, else ComfyUI 0.8.0's source from shared/
# (../shared/comfyui, as CI lays it out) unpacked into a cache folder outside the repository.
COMFYUI_TARBALL ?= ../shared/comfyui/ComfyUI-0.8.0-618b803d.tar.gz
MASKMARGIN_CACHE ?= $(HOME)/.cache/maskmargin
COMFYUI_CACHE := $(MASKMARGIN_CACHE)/ComfyUI-0.8.0
COMFY_STAMP := $(VENV)/.comfyui-installed
MEDIAPIPE_FILES := models/mediapipe/.complete

.PHONY: demo test lint venv comfyui browser-tools bench bench-detailer eval clean mediapipe-files

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

# Unpack ComfyUI (once) and install its requirements.txt into .venv with the project's pins.
comfyui: $(COMFY_STAMP)

$(COMFYUI_CACHE)/main.py:
	test -f $(COMFYUI_TARBALL) || { echo "$(COMFYUI_TARBALL) missing: set COMFYUI_DIR or provide it"; exit 1; }
	rm -rf $(COMFYUI_CACHE).partial && mkdir -p $(COMFYUI_CACHE).partial
	tar -xzf $(COMFYUI_TARBALL) -C $(COMFYUI_CACHE).partial
	rm -rf $(COMFYUI_CACHE) && mv $(COMFYUI_CACHE).partial/ComfyUI $(COMFYUI_CACHE) && rm -rf $(COMFYUI_CACHE).partial

$(COMFY_STAMP): $(STAMP) $(COMFYUI_CACHE)/main.py constraints.txt
	$(PY) -m pip install -q -c constraints.txt -r $(COMFYUI_CACHE)/requirements.txt
	touch $(COMFY_STAMP)

# The browser test's tools: Debian's chromium and npm playwright-core (no browser download). Best effort:
# where an install fails the browser tests skip and say why.
browser-tools:
	@command -v chromium >/dev/null || { (apt-get update -qq && apt-get install -y -qq chromium) >/dev/null 2>&1 \
		|| echo "browser-tools: could not install chromium (the browser tests will skip)"; }
	@test -f tests/browser/node_modules/playwright-core/package.json || npm --prefix tests/browser ci --silent \
		|| echo "browser-tools: npm ci failed (the browser tests will skip)"

lint: $(STAMP)
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m mypy

ifeq ($(strip $(COMFYUI_DIR)),)
test: lint $(MEDIAPIPE_FILES) $(COMFY_STAMP) browser-tools
	COMFYUI_DIR=$(COMFYUI_CACHE) MASKMARGIN_CACHE=$(MASKMARGIN_CACHE) $(PY) -m pytest -q -rs
else
test: lint $(MEDIAPIPE_FILES) browser-tools
	MASKMARGIN_CACHE=$(MASKMARGIN_CACHE) $(PY) -m pytest -q -rs
endif

bench: $(STAMP) $(MEDIAPIPE_FILES)
	$(PY) benchmarks/bench_image_mask.py

bench-detailer: $(COMFY_STAMP) $(MEDIAPIPE_FILES)
	COMFYUI_DIR=$(or $(COMFYUI_DIR),$(COMFYUI_CACHE)) $(PY) benchmarks/bench_detailer.py

eval: $(STAMP) $(MEDIAPIPE_FILES)
	$(PY) benchmarks/eval_detection.py ../shared/eval/dev

clean:
	rm -rf $(VENV) output .pytest_cache
