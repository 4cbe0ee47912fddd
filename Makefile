# legonn developer tasks.  `make demo` and `make test` are the two a new user runs.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c

VENV   := .venv
PY     := $(VENV)/bin/python
# Recipes and demos find the venv's `python` and `legonn` first.
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)

.PHONY: help install extras test test-all demo bench bench-peer clean

help:
	@echo "make install   create/refresh $(VENV) (CPU torch + legonn editable; no-op when up to date)"
	@echo "make test      fast tests (not marked slow)"
	@echo "make test-all  all tests, slow ones included"
	@echo "make demo      the mini-corpus demo"
	@echo "make bench     benchmarks"
	@echo "make bench-peer  the benchmarks beside ESPnet2's on the same work (builds bench/peer/.venv; BENCH_PEER_ARGS=...)"
	@echo "make extras    optional system tools (espeak-ng flite festival sox; needs root)"
	@echo "make clean     remove $(VENV) and caches"

install:
	@bash tools/install_venv.sh

extras:
	@bash tools/install_extras.sh

test: install
	$(PY) -m pytest -q -m "not slow" tests

test-all: install
	$(PY) -m pytest -q tests

demo: install
	@if [[ -f egs/mini/demo.sh ]]; then \
		cd egs/mini && bash ./demo.sh; \
	else \
		echo "make demo: not yet available (the mini corpus demo arrives with the composition work)"; \
	fi

bench: install
	@if [[ -f bench/bench.py ]]; then \
		$(PY) bench/bench.py; \
	else \
		echo "make bench: not yet available (bench/bench.py does not exist yet)"; \
	fi

# e.g. make bench-peer BENCH_PEER_ARGS="--threads 2 --precision bf16"
BENCH_PEER_ARGS ?=
bench-peer: install
	$(PY) bench/peer/run.py $(BENCH_PEER_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache build dist *.egg-info
	find . -path ./.git -prune -o -type d \( -name __pycache__ -o -name .pytest_cache \) -prune -exec rm -rf {} +
