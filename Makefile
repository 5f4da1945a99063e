# Pacer: `make run` starts the embedded scheduler, `make test` runs the whole suite.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
SYSTEM_PACKAGES := docker.io haproxy influxdb busybox-static zookeeper chromium
LISTEN ?= 127.0.0.1:8080

.PHONY: run test venv system-deps lint-imports bench clean

$(BIN)/python:
	@$(PYTHON) -m venv $(VENV) 2>/dev/null || { \
	  if [ "$$(id -u)" = 0 ]; then \
	    echo "python venv support is missing: installing python3-venv"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv && \
	    rm -rf $(VENV) && $(PYTHON) -m venv $(VENV); \
	  else echo "error: '$(PYTHON) -m venv' failed; install python3-venv (apt-get install python3-venv)"; exit 1; fi; }

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[test]'
	@touch $@

venv: $(VENV)/.installed

# Debian packages the integration tests drive for real; installed only when root and missing.
system-deps:
	@missing=""; \
	command -v dockerd >/dev/null || missing="$$missing docker.io"; \
	command -v haproxy >/dev/null || missing="$$missing haproxy"; \
	command -v influxd >/dev/null || missing="$$missing influxdb"; \
	[ -x /bin/busybox ] || [ -x /usr/bin/busybox ] || missing="$$missing busybox-static"; \
	ls /usr/share/java/zookeeper*.jar >/dev/null 2>&1 || missing="$$missing zookeeper"; \
	[ -x /usr/bin/chromium ] || missing="$$missing chromium"; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    echo "installing Debian packages:$$missing"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	  else echo "note: not root, cannot install:$$missing (tests needing them are skipped)"; fi; \
	fi

lint-imports: venv
	$(BIN)/lint-imports

run: venv
	$(BIN)/pacer serve --listen $(LISTEN)

test: venv system-deps lint-imports
	@$(BIN)/python -m pytest $(PYTEST_ARGS); rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "pytest collected no tests"; exit 1; fi; exit $$rc

bench: venv
	$(BIN)/python bench/launch.py

clean:
	rm -rf $(VENV) var .pytest_cache
