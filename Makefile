# byoltheory: two commands on a fresh machine.
#   make test   set up .venv, then nbdev_test (skips `slow` and `gpu` cells), pytest, and a
#               non-executing book build with warnings as errors.
#   make book   set up .venv, check the library is in sync, execute every notebook (two at a time,
#               tools/execute_book.py) and build the HTML book into _build/html.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

VENV   := .venv
BIN    := $(VENV)/bin
PY     := $(BIN)/python
STAMP  := $(VENV)/.installed
export PATH := $(CURDIR)/$(BIN):$(PATH)
export PYTHONHASHSEED := 0
# Python writes the bytecode of what it imports (an environment that sets PYTHONDONTWRITEBYTECODE would
# otherwise compile torch again in every process: 14 s an import instead of 4)
export PYTHONDONTWRITEBYTECODE :=
JB_FLAGS := -W -n --keep-going

.PHONY: help setup test book sync-check sync-url bench clean

help:
	@echo "make test   - set up .venv and run the tests (nbdev_test, pytest, book check)"
	@echo "make book   - set up .venv, execute the notebooks and build the HTML book"
	@echo "make bench  - run the benchmarks in benchmarks/"

$(STAMP): constraints.txt settings.ini setup.py pyproject.toml
	@echo "== setting up $(VENV) (python3 -m venv, pinned tool set, editable byoltheory)"
	@test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check -c constraints.txt pip uv
	@# uv installs the same pinned set as pip, in parallel (the CUDA build of torch is 6 GB to unpack); pip
	@# is the fallback where uv cannot reach an index. No bytecode is compiled here (30 s for every module
	@# of torch): Python writes it for the modules a process imports (PYTHONDONTWRITEBYTECODE, above)
	$(BIN)/uv pip install -q --python $(PY) -c constraints.txt -e ".[dev]" || { \
	  echo "== uv could not install the set; pip instead"; \
	  $(PY) -m pip install -q --disable-pip-version-check -c constraints.txt -e ".[dev]"; }
	@if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	  missing=""; command -v chromium >/dev/null 2>&1 || missing="chromium chromium-driver"; \
	  [ -d /usr/share/datasets/fashion-mnist ] || missing="$$missing dataset-fashion-mnist"; \
	  if [ -n "$$missing" ]; then echo "== installing Debian's $$missing (browser check; offline Fashion-MNIST)"; \
	    { apt-get update -q && apt-get install -y -q $$missing; } >/dev/null 2>&1 \
	      || echo "   could not install $$missing: the browser check is skipped / Fashion-MNIST needs --download"; fi; \
	else \
	  command -v chromium >/dev/null 2>&1 || echo "== chromium is missing (needs root and apt): the browser check will be skipped"; \
	  [ -d /usr/share/datasets/fashion-mnist ] || echo "== Fashion-MNIST is not installed (needs root and apt: apt-get install dataset-fashion-mnist); chapters that use it need --download"; \
	fi
	@touch $@

setup: $(STAMP)

# The library must be what nbdev_export makes of the notebooks, and the notebooks must be clean.
sync-check: $(STAMP)
	@$(PY) tools/check_sync.py

sync-url: $(STAMP)
	$(PY) tools/sync_repo_url.py

# Each stage's time is printed at the end, so a regression shows. Notebook tests run two at a time, one torch thread
# each (two processes with two threads each on two cores thrash).
T = stage() { s=$$(date +%s); "$$@"; e=$$(date +%s); times="$$times\n  $$(printf '%-34s %4d s' "$$1 $$2" $$((e-s)))"; }

test:
	@start=$$(date +%s); times=""; $(T); \
	stage $(MAKE) --no-print-directory setup; \
	stage $(PY) tools/check_sync.py; \
	stage $(PY) tools/sync_repo_url.py --check; \
	echo "== nbdev_test (flags skipped: slow gpu)"; \
	OMP_NUM_THREADS=1 stage $(BIN)/nbdev_test --n_workers 2 --timing; \
	echo "== pytest"; \
	OMP_NUM_THREADS=1 stage $(BIN)/pytest -q -n 2 tests; \
	echo "== book check (no execution, warnings as errors)"; \
	rm -rf _build/check && mkdir -p _build/check; \
	sed 's/^\(  execute_notebooks:\).*/\1 "off"/' _config.yml > _build/check/_config.yml; \
	stage $(BIN)/jupyter-book build . --config _build/check/_config.yml --path-output _build/check $(JB_FLAGS) -q; \
	end=$$(date +%s); echo -e "stage times:$$times"; \
	echo "make test: all checks passed in $$((end-start)) s (set-up included; goal 5 min = 300 s)"

book:
	@start=$$(date +%s); times=""; $(T); \
	stage $(MAKE) --no-print-directory setup; \
	stage $(PY) tools/check_sync.py; \
	echo "== executing the notebooks, two at a time, into the book's execution cache"; \
	OMP_NUM_THREADS=1 stage $(PY) tools/execute_book.py; \
	echo "== building the book (each notebook read from that cache; one that failed there runs again here and says why)"; \
	stage $(BIN)/jupyter-book build . $(JB_FLAGS); \
	echo "== a committed run, re-run: bit for bit where this kind of CPU made it (else the difference is reported)"; \
	stage $(BIN)/byoltheory reproduce table6 --scale digits-small --verify 1; \
	echo "== slow tests: the book in headless Chromium, Colab and its GPU cells, the full-scale path, torchrun, a Fashion-MNIST curve"; \
	BYOLTHEORY_SLOW=1 OMP_NUM_THREADS=1 stage $(BIN)/pytest -q -s -m slow -n 2 tests; \
	end=$$(date +%s); echo -e "stage times:$$times"; \
	echo "make book: built in $$((end-start)) s (set-up included; goal 15 min = 900 s)"; \
	echo "The book is at $(CURDIR)/_build/html/index.html"

bench: $(STAMP)
	@for b in benchmarks/[!_]*.py; do echo "== $$b"; $(PY) $$b; done

clean:
	rm -rf _build _docs
