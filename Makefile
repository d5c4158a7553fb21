# Two entry points (see README): `make demo` and `make test`.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip -q --disable-pip-version-check
# torch 2.13.0 (CPU) lies on disk on our machines; naming it keeps pip from fetching a CUDA build
TORCH  ?= torch==2.13.0

.PHONY: demo test test-fast install install-test clean

$(VENV)/.core: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --upgrade pip
	$(PIP) install -e .
	touch $@

$(VENV)/.test: $(VENV)/.core
	$(PIP) install "$(TORCH)"
	$(PIP) install -e '.[dev,export,bench]'
	touch $@

install: $(VENV)/.core
install-test: $(VENV)/.test

DEMO_DIR := build/demo

demo: $(VENV)/.core
	$(VENV)/bin/onnx2mcu simulate --example cnn
	@echo
	@if command -v arm-none-eabi-gcc >/dev/null && command -v qemu-system-arm >/dev/null; then \
	  $(VENV)/bin/onnx2mcu compile --example cnn --board mps2-an386 -o $(DEMO_DIR) && \
	  $(VENV)/bin/onnx2mcu run $(DEMO_DIR) --qemu; \
	else \
	  $(VENV)/bin/onnx2mcu compile --example cnn -o $(DEMO_DIR) && \
	  $(VENV)/bin/onnx2mcu run $(DEMO_DIR) --host; \
	  echo "To also run it on an emulated Cortex-M4 (mps2-an386): sudo apt-get install -y --no-install-recommends gcc-arm-none-eabi libnewlib-arm-none-eabi qemu-system-arm"; \
	fi

# one BLAS thread per worker: two pytest workers already fill two cores, and threaded
# OpenBLAS on small LAPACK calls under load runs 10-25x slower
test: $(VENV)/.test
	OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 $(PY) -m pytest -n 2 -q tests

# the unit tests only (no ../shared, no C builds, nothing slow): under a minute
test-fast: $(VENV)/.test
	OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 $(PY) -m pytest -n 2 -q -m unit tests

clean:
	rm -rf $(VENV) build .pytest_cache
