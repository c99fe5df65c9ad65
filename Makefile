# mirrorkit — two set-up commands: `make demo` and `make test`.
# Both install what is missing (Debian packages, the venv) and are idempotent.

PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(VENV)/bin/pip
APT_PACKAGES := unixodbc tdsodbc freetds-bin openssl
STAMP  := $(VENV)/.mirrorkit-installed
SUDO   := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: help setup system-packages demo test lab lab-down lab-status bench clean

help:
	@echo "make demo   - install what is missing, start the lab, run the demo"
	@echo "make test   - install what is missing, run the full test suite"
	@echo "make lab    - start the lab and open the notebooks in JupyterLab; 'make lab-down' stops the lab"
	@echo "make bench  - run the benchmarks in bench/"

system-packages:
	@missing=""; for p in $(APT_PACKAGES); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $$missing; \
	fi

$(STAMP): pyproject.toml lab/pyproject.toml | system-packages
	@[ -x $(PY) ] || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q -e ./lab -e '.[test]'
	@touch $(STAMP)

setup: system-packages $(STAMP)

test: setup
	$(PY) -m pytest -q -n 2 --dist loadfile

demo: setup
	$(PY) -m mirrorkit demo

lab: setup
	$(PY) -m mirrorkit lab up parameters/lab.yaml
	$(VENV)/bin/jupyter lab --ServerApp.root_dir=. --no-browser $(shell [ "$$(id -u)" = 0 ] && echo --allow-root) notebooks/

lab-down: setup
	$(PY) -m mirrorkit lab down

lab-status: setup
	$(PY) -m mirrorkit lab status

bench: setup
	$(PY) bench/roundtrips.py
	$(PY) bench/runbook.py
	$(PY) bench/verify_scaling.py
	$(PY) bench/links.py
	$(PY) bench/mirroring.py

clean:
	rm -rf $(VENV) .mirrorkit-lab build *.egg-info
