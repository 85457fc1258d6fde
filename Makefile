# byoltheory: two commands on a fresh machine.
#   make test   set up .venv, then nbdev_test (skips `slow` and `gpu` cells), pytest, and a
#               non-executing book build with warnings as errors.
#   make book   set up .venv, check the library is in sync, execute every notebook and build
#               the HTML book into _build/html.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

VENV   := .venv
BIN    := $(VENV)/bin
PY     := $(BIN)/python
STAMP  := $(VENV)/.installed
export PATH := $(CURDIR)/$(BIN):$(PATH)
export PYTHONHASHSEED := 0
JB_FLAGS := -W -n --keep-going

.PHONY: help setup test book sync-check sync-url bench clean

help:
	@echo "make test   - set up .venv and run the tests (nbdev_test, pytest, book check)"
	@echo "make book   - set up .venv, execute the notebooks and build the HTML book"
	@echo "make bench  - run the benchmarks in benchmarks/"

$(STAMP): constraints.txt settings.ini setup.py pyproject.toml
	@echo "== setting up $(VENV) (python3 -m venv, pinned tool set, editable byoltheory)"
	@test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check "pip==$$(sed -n 's/^pip==//p' constraints.txt)"
	$(PY) -m pip install -q --disable-pip-version-check -c constraints.txt -e ".[dev]"
	@if ! command -v chromium >/dev/null 2>&1; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "== installing Debian's chromium and chromium-driver (for the book's browser check)"; \
	    { apt-get update -q && apt-get install -y -q chromium chromium-driver; } >/dev/null 2>&1 \
	      || echo "   could not install chromium: the browser check will be skipped"; \
	  else echo "== chromium is missing and cannot be installed here (needs root and apt): the browser check will be skipped"; fi; \
	fi
	@touch $@

setup: $(STAMP)

# The library must be what nbdev_export makes of the notebooks, and the notebooks must be clean.
sync-check: $(STAMP)
	@$(PY) tools/check_sync.py

sync-url: $(STAMP)
	$(PY) tools/sync_repo_url.py

test:
	@start=$$(date +%s); \
	$(MAKE) --no-print-directory setup; \
	$(PY) tools/check_sync.py; \
	$(PY) tools/sync_repo_url.py --check; \
	echo "== nbdev_test (flags skipped: slow gpu)"; \
	$(BIN)/nbdev_test --n_workers 2 --timing; \
	echo "== pytest"; \
	$(BIN)/pytest -q tests; \
	echo "== book check (no execution, warnings as errors)"; \
	rm -rf _build/check && mkdir -p _build/check; \
	sed 's/^\(  execute_notebooks:\).*/\1 "off"/' _config.yml > _build/check/_config.yml; \
	$(BIN)/jupyter-book build . --config _build/check/_config.yml --path-output _build/check $(JB_FLAGS) -q; \
	end=$$(date +%s); echo "make test: all checks passed in $$((end-start)) s (set-up included; budget 15 min = 900 s)"

book:
	@start=$$(date +%s); \
	$(MAKE) --no-print-directory setup; \
	$(PY) tools/check_sync.py; \
	echo "== executing the notebooks and building the book"; \
	$(BIN)/jupyter-book build . $(JB_FLAGS); \
	echo "== slow tests: the book in headless Chromium, torchrun with two gloo processes"; \
	BYOLTHEORY_SLOW=1 $(BIN)/pytest -q -s -m slow tests; \
	end=$$(date +%s); \
	echo "make book: built in $$((end-start)) s (set-up included; budget 20 min = 1200 s)"; \
	echo "The book is at $(CURDIR)/_build/html/index.html"

bench: $(STAMP)
	@for b in benchmarks/*.py; do echo "== $$b"; $(PY) $$b; done

clean:
	rm -rf _build _docs
