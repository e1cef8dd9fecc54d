# boxpose: `make demo` and `make test` work from a fresh clone with only Python 3.11 (or newer).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: install test demo bench lint format kernels gpu-check clean

install: $(STAMP)

# A virtual environment with the tested versions (constraints.txt) and boxpose installed editable.
$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 10), "boxpose needs Python >= 3.10"'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -c constraints.txt -e ".[dev,export]"
	touch $(STAMP)

# Lint, then the whole test-suite (CPU only; CUDA tests are skipped without a GPU, the CUDA sources are compiled).
test: install
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -q

# Generates the synthetic MPII-style dataset, trains boxnet_tiny on the CPU, evaluates with flip test.
demo: install
	$(BIN)/python -m boxpose.demo

# The box-convolution benchmark of the README (JSON on stdout).
bench: install
	$(BIN)/python scripts/bench_op.py

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: install
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

# Compile the CPU (and, with nvcc, CUDA) kernels ahead of first use.
kernels: install
	$(BIN)/python -m boxpose.ops.build $(if $(shell command -v nvcc),--cuda,)

# On a CUDA machine: build, test, benchmark, train and DDP in under 8 minutes (scripts/gpu_check.py); writes
# outputs/gpu_check/gpu_check.json and .md. Needs no virtual environment: the machine's python3 is used when
# there is none. WHEELS=.whl first installs the wheels of `scripts/gpu_wheels.sh .whl` (no package index
# there); GPU_CHECK_ARGS=--quick for about 3 minutes, --dry-run for the CPU rehearsal.
gpu-check:
	$(if $(wildcard $(BIN)/python),$(BIN)/python,$(PYTHON)) scripts/gpu_check.py $(if $(WHEELS),--wheels $(WHEELS)) $(GPU_CHECK_ARGS)

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .ruff_cache
