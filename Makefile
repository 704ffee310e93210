# d4d: `make demo` runs the main job on the built-in assets, `make test` runs the tests.
# Both create .venv in the repository root when it is missing and install what they need.
# CPU torch is installed first, pinned, so pip never pulls CUDA builds on a CPU machine.

PYTHON ?= $(shell command -v python3.11 2>/dev/null || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.d4d-installed
DEMO_OUT ?= demo-out

.PHONY: setup demo test bench clean

setup: $(STAMP)

$(STAMP): pyproject.toml Makefile
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e ".[all]"
	@touch $(STAMP)

demo: setup
	$(PY) -m d4d.demo --out $(DEMO_OUT)

test: setup
	$(VENV)/bin/ruff check .
	$(PY) -m pytest -q

bench: setup
	$(PY) -m benchmarks.render_speed
	$(PY) -m benchmarks.prepass_agreement
	$(PY) -m benchmarks.shards_io
	$(PY) -m benchmarks.train_speed
	$(PY) -m benchmarks.reconstruct_speed
	$(PY) -m benchmarks.reconstruct_quality
	$(PY) -m benchmarks.curation_path
	$(PY) -m benchmarks.pipeline_throughput
	$(PY) -m benchmarks.inspect_scale

clean:
	rm -rf $(DEMO_OUT) .pytest_cache
