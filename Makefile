# Course-staff entry points. Every target builds the pinned virtual environment first.
PY := .venv/bin/python
VENV_STAMP := .venv/.installed
# The system interpreter when there is one: its files are readable by the unprivileged user the
# grader runs student code as (a pyenv build under /root is not).
# One BLAS thread per process: the work is many small matrices, and parallel jobs share 2 cores.
export OPENBLAS_NUM_THREADS ?= 1
BASE_PYTHON ?= $(shell test -x /usr/bin/python3 && echo /usr/bin/python3 || echo python3)

.PHONY: demo test test-fast test-area lint lock release data bundle gradescope-try bench clean sandbox-tool browser container-tools

# The kit's folder goes on the venv's path (a .pth file): autograder, tools, tests, bench and the
# reference package (source.image_captioning.captioning) import from anywhere, without installing.
$(VENV_STAMP): requirements.txt
	$(BASE_PYTHON) -m venv .venv
	.venv/bin/pip install --quiet --upgrade pip
	.venv/bin/pip install --quiet -r requirements.txt
	$(PY) -c 'import pathlib, sysconfig; pathlib.Path(sysconfig.get_path("purelib"), "image_captioning_kit.pth").write_text("$(CURDIR)\n")'
	touch $@

# requirements.txt is the lock, generated from pyproject.toml by pip-compile: after editing the
# dependencies there, run `make lock` and commit both files. Existing pins are kept where they
# still fit; `make lock LOCK_ARGS=--upgrade` moves everything to the newest allowed versions.
# setuptools is pinned (torch imports it), pip is not; a build's local label (torch's +cpu, from
# the CPU-only wheel this venv may have) is dropped: `torch==2.13.0` matches every build of it.
lock: $(VENV_STAMP)
	CUSTOM_COMPILE_COMMAND="make lock" $(PY) -m piptools compile --quiet --extra dev --strip-extras \
		--unsafe-package pip --no-emit-index-url --no-emit-find-links $(LOCK_ARGS) \
		--output-file requirements.txt pyproject.toml
	sed -i 's/^\([A-Za-z0-9_.-]*==[^+ ]*\)+[A-Za-z0-9.]*$$/\1/' requirements.txt

# $(call system-tool,TEST,PACKAGE,WHAT FOR): the Debian package installed when the shell test fails
# and we are root, else one line saying what to install.
system-tool = @$(1) >/dev/null 2>&1 || { \
	if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
		echo "installing $(2) ($(3))"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(2) >/dev/null; \
	fi; \
	$(1) >/dev/null 2>&1 || { \
		echo "make: $(3) needs the package $(2) (apt-get install $(2), as root)" >&2; \
		exit 1; }; }

sandbox-tool:
	$(call system-tool,command -v bwrap,bubblewrap,the grader's sandbox)

browser:
	$(call system-tool,command -v chromium,chromium,the tests' screenshot of summary.html)

# The box shaped like Gradescope's container (tools/gradescope_box.py: gradescope-try and the tests): capsh drops CAP_SYS_ADMIN,
# and a seccomp filter from Debian's python3-seccomp refuses namespaces as Docker's profile does.
container-tools:
	$(call system-tool,command -v capsh,libcap2-bin,the tests' Gradescope-like container)
	$(call system-tool,/usr/bin/python3 -c "import seccomp",python3-seccomp,the tests' Gradescope-like container)

data: $(VENV_STAMP)
	./get_datasets.sh --mini

release: $(VENV_STAMP)
	$(PY) -m tools.release

demo: data release sandbox-tool
	$(PY) -m tools.demo

# ruff (rules and reasons in pyproject.toml), then mypy on the type hints of the grader's seams.
lint: $(VENV_STAMP)
	$(PY) -m ruff check .
	$(PY) -m mypy

# The whole suite, as CI runs it (.ci/run): lint, then every test on two workers, each taking one
# file at a time, the longest files first (tests/conftest.py orders them; pytest-xdist would
# otherwise order files by their number of tests).
test: data sandbox-tool browser container-tools lint
	$(PY) -m pytest -q -n 2 --dist loadfile --no-loadscope-reorder --durations=30

# The edit loop: the tests not marked slow (under 2 minutes), after a lint report that does not
# stop them (make test, as CI, fails on lint).
test-fast: data sandbox-tool $(VENV_STAMP)
	-$(PY) -m ruff check .
	$(PY) -m pytest -q -m "not slow" -n 2 --dist loadfile --no-loadscope-reorder

# One area of the suite (tests/conftest.py): make test-area AREA=rules|grading|sandbox|front|release|data
test-area: data sandbox-tool $(VENV_STAMP)
	$(PY) -m pytest -q -m "$(AREA)"

bundle: $(VENV_STAMP) sandbox-tool
	$(PY) -m tools.bundle

# The bundle tried as Gradescope runs it (as root): built, set up by its setup.sh, SUBMISSION graded
# by run_autograder in a Gradescope-like box; prints the score, time and peak memory (tools/gradescope_try.py).
gradescope-try: $(VENV_STAMP) sandbox-tool container-tools
	@test -n "$(SUBMISSION)" || { echo "make gradescope-try SUBMISSION=folder-or-zip [MEMORY=768] [CPUS=0.5] [OUT=dir] [IMAGES=dir]" >&2; exit 2; }
	$(PY) -m tools.gradescope_try "$(SUBMISSION)" --memory $(or $(MEMORY),768) --cpus $(or $(CPUS),0.5) \
		$(if $(OUT),--out "$(OUT)") $(if $(IMAGES),--images "$(IMAGES)")

bench: data
	$(PY) -m bench

clean:
	rm -rf .venv build gradebook.db autograder.zip datasets/coco_mini .pytest_cache .ruff_cache
