# Quick start: `make demo` and `make test`; both install what they need first.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
TORCH_VERSION := 2.14.1
TORCHVISION_VERSION := 0.29.1
MMCV_VERSION := 2.1.0
# mmcv has no wheel for this torch and takes ~13 min to compile on 2 cores, so
# the wheel is kept outside the repo, keyed by the torch version it was built
# against: a torch pin change can never pick up a wheel built for another torch.
MMCV_WHEEL_DIR := $(HOME)/.cache/mmseg_internvit/mmcv-$(MMCV_VERSION)-torch-$(TORCH_VERSION)
STAMP := $(VENV)/.installed
PYTEST_ARGS ?=

.PHONY: install demo test test-all clean

install: $(STAMP)

$(STAMP): Makefile requirements.txt requirements-deepspeed.txt setup.py tools/install/build_mmcv_wheel.sh
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q torch==$(TORCH_VERSION) torchvision==$(TORCHVISION_VERSION)
	# mmcv's build needs pkg_resources (setuptools < 81) and must see torch.
	$(PIP) install -q "setuptools<81" wheel ninja psutil
	ls $(MMCV_WHEEL_DIR)/mmcv-*.whl >/dev/null 2>&1 || \
	  bash tools/install/build_mmcv_wheel.sh $(PY) $(MMCV_WHEEL_DIR) $(MMCV_VERSION)
	$(PIP) install -q --no-deps $(MMCV_WHEEL_DIR)/mmcv-$(MMCV_VERSION)-*.whl
	$(PIP) install -q -r requirements.txt
	$(PIP) install -q --no-build-isolation -r requirements-deepspeed.txt
	$(PIP) install -q --no-build-isolation --no-deps -e .
	$(PY) tools/check_install.py
	touch $(STAMP)

demo: install
	$(PY) tools/demo.py

test: install
	$(PY) -m pytest -q $(PYTEST_ARGS) tests

test-all: install
	$(PY) -m pytest -q --runslow tests

clean:
	rm -rf $(VENV) work_dirs
