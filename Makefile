# Quick start: `make demo` and `make test`; both install what they need first.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
TORCH_VERSION := 2.14.1
TORCHVISION_VERSION := 0.29.1
MMCV_VERSION := 2.1.0
# mmcv has no wheel for this torch and is compiled here (~13 min on 2 CPU
# cores; with CUDA ops for the local GPU's arch only on a GPU machine, 259 s on
# 16 cores measured on an H200), so the wheel is kept outside the repo in a
# folder named after the torch version and the CPU/CUDA arch it was built for
# (tools/install/install_mmcv.sh): a torch pin change, or a wheel built on a
# machine with another GPU (or none), is never picked up.
MMCV_CACHE := $(HOME)/.cache/mmseg_internvit
STAMP := $(VENV)/.installed
PYTEST_ARGS ?=
# `make test` runs the suite in this many pytest-xdist workers, one test file
# per worker at a time (module fixtures are built once), files in collection
# order: tests/conftest.py puts the longest first and shares the cores between
# the workers. TEST_WORKERS=0 runs it in one process.
TEST_WORKERS ?= 2
XDIST := -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder

.PHONY: install demo test test-all test-gpu lint clean

install: $(STAMP)

$(STAMP): Makefile requirements.txt requirements-deepspeed.txt setup.py tools/install/build_mmcv_wheel.sh tools/install/download_sdist.sh tools/install/install_mmcv.sh
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q torch==$(TORCH_VERSION) torchvision==$(TORCHVISION_VERSION)
	# mmcv's build needs pkg_resources (setuptools < 81) and must see torch.
	$(PIP) install -q "setuptools<81" wheel ninja psutil
	bash tools/install/install_mmcv.sh $(PY) $(MMCV_VERSION) $(MMCV_CACHE)
	$(PIP) install -q -r requirements.txt
	$(PIP) install -q --no-build-isolation -r requirements-deepspeed.txt
	$(PIP) install -q --no-build-isolation --no-deps -e .
	$(PY) tools/check_install.py
	touch $(STAMP)

demo: install
	$(PY) tools/demo.py

test: install
	$(PY) -m pytest -q $(XDIST) $(PYTEST_ARGS) tests

test-all: install
	$(PY) -m pytest -q $(XDIST) --runslow tests

# The GPU lane (tests marked gpu; each is skipped where CUDA is unavailable).
test-gpu: install
	$(PY) -m pytest -q -m gpu $(PYTEST_ARGS) tests

# Style: pyflakes and pycodestyle over the repository (.flake8); not part of `make test`.
lint: install
	$(PY) -m flake8

clean:
	rm -rf $(VENV) work_dirs
