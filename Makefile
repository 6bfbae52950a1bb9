# Two commands: `make demo` runs the whole system on loopback, `make test` runs every test.
# Both create .venv when missing. `make test` also installs the Debian packages the tests use
# (Mosquitto, its clients, Chromium; cloud-init, systemd and udev for the box image's checks)
# when run as root, and stops naming them otherwise.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
DEMO_ARGS ?=
PYTEST_ARGS ?=

.PHONY: demo test lint system-deps venv clean

demo: $(STAMP)
	$(BIN)/xfv demo $(DEMO_ARGS)

test: $(STAMP) system-deps lint
	$(BIN)/pytest $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

venv: $(STAMP)

$(STAMP): pyproject.toml
	@if [ ! -x $(BIN)/python ]; then \
	  $(PYTHON) -m venv $(VENV) 2>/dev/null || { \
	    rm -rf $(VENV); \
	    if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	      echo "installing python3-venv with apt-get"; \
	      apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q python3-venv \
	      && $(PYTHON) -m venv $(VENV); \
	    else \
	      echo "make: '$(PYTHON) -m venv' failed: install python3-venv (apt-get install python3-venv)"; \
	      exit 1; \
	    fi; }; \
	fi
	$(BIN)/pip install -q -e '.[dev]'
	touch $(STAMP)

system-deps:
	@missing=""; \
	[ -x /usr/sbin/mosquitto ] || missing="$$missing mosquitto"; \
	command -v mosquitto_pub >/dev/null || missing="$$missing mosquitto-clients"; \
	[ -x /usr/bin/chromium ] || missing="$$missing chromium"; \
	command -v cloud-init >/dev/null || missing="$$missing cloud-init"; \
	command -v systemd-analyze >/dev/null || missing="$$missing systemd"; \
	command -v udevadm >/dev/null || missing="$$missing udev"; \
	command -v unshare >/dev/null || missing="$$missing util-linux"; \
	command -v openssl >/dev/null || missing="$$missing openssl"; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "installing with apt-get:$$missing"; \
	    apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q $$missing || exit 1; \
	  else \
	    echo "make test needs these Debian packages: sudo apt-get install$$missing"; exit 1; \
	  fi; \
	fi

clean:
	rm -rf $(VENV) state .pytest_cache .mypy_cache .ruff_cache
