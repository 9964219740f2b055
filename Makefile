# Course-staff entry points. Every target builds the pinned virtual environment first.
PY := .venv/bin/python
VENV_STAMP := .venv/.installed
# The system interpreter when there is one: its files are readable by the unprivileged user the
# grader runs student code as (a pyenv build under /root is not).
# One BLAS thread per process: the work is many small matrices, and parallel jobs share 2 cores.
export OPENBLAS_NUM_THREADS ?= 1
BASE_PYTHON ?= $(shell test -x /usr/bin/python3 && echo /usr/bin/python3 || echo python3)

.PHONY: demo test release data bundle bench clean

$(VENV_STAMP): requirements.txt
	$(BASE_PYTHON) -m venv .venv
	.venv/bin/pip install --quiet --upgrade pip
	.venv/bin/pip install --quiet -r requirements.txt
	touch $@

data: $(VENV_STAMP)
	PATH=$(CURDIR)/.venv/bin:$$PATH ./get_datasets.sh --mini

release: $(VENV_STAMP)
	$(PY) -m tools.release

demo: data release
	$(PY) -m tools.demo

test: data
	$(PY) -m pytest -q tests

bundle: $(VENV_STAMP)
	$(PY) -m tools.bundle

bench: data
	$(PY) -m bench

clean:
	rm -rf .venv build gradebook.db autograder.zip datasets/coco_mini
