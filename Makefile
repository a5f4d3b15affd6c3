# The two set-up commands of the README. Both install what is missing first (system packages with apt-get,
# a .venv with the pinned Python packages), so they work on a fresh Debian 12 machine.
.PHONY: run test setup lint

export HF_HUB_OFFLINE ?= 1
export TRANSFORMERS_OFFLINE ?= 1
HOST ?= 127.0.0.1
PORT ?= 7860

setup:
	@bash scripts/setup.sh

run: setup
	.venv/bin/python -m dashboard --host $(HOST) --port $(PORT)

test: setup
	.venv/bin/python -m pytest -q -n 2 --dist loadgroup

lint:
	.venv/bin/ruff check asr benchmarks dashboard evaluation tests
	.venv/bin/ruff format --check asr benchmarks dashboard evaluation tests
