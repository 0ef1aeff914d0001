# Two entry points that do all set-up on a fresh machine:
#   make bench   build, then benchmark fastloop against asyncio and uvloop
#   make test    build, then run the tests
# PYTHON picks the interpreter (default python3.11); a pyenv-installed
# version that is not on PATH (make test PYTHON=python3.12) is found too.

PYTHON ?= python3.11
# Found on PATH, then among pyenv's versions, then (python3.14, python3.15,
# the debug build python3.14d) from Debian unstable in a private root that
# tools/debian-python makes once and caches.
DEBIAN_PYTHONS := $(shell tools/debian-python --list)
PY := $(shell command -v $(PYTHON) >/dev/null 2>&1 && $(PYTHON) -c "" 2>/dev/null && command -v $(PYTHON) || ls $(HOME)/.pyenv/versions/*/bin/$(PYTHON) 2>/dev/null | tail -n 1)
ifeq ($(PY),)
ifneq ($(filter $(PYTHON),$(DEBIAN_PYTHONS)),)
PY := $(shell tools/debian-python $(PYTHON))
ifeq ($(PY),)
$(error $(PYTHON): tools/debian-python could not provide it (see above))
endif
endif
endif
ifeq ($(PY),)
$(error $(PYTHON) not found (on PATH, in pyenv, or as one of: $(DEBIAN_PYTHONS)))
endif
# 3.11, 3.14, 3.14d (a debug build: its own ABI, its own venv)
PYVER := $(shell $(PY) -c "import sys; print('%d.%d%s' % (sys.version_info[:2] + (sys.abiflags,)))")
VENV ?= $(if $(filter 3.11,$(PYVER)),.venv,.venv-$(PYVER))
VPY := $(VENV)/bin/python
STAMP := $(VENV)/.fastloop-installed
# Interpreters whose ensurepip cannot run (Debian's points at the system's
# wheel directory) bootstrap pip from the wheel shipped beside them.
PIP_WHEEL = $(firstword $(wildcard $(dir $(PY))../share/python-wheels/pip-*.whl))
export FASTLOOP_WERROR := 1

.PHONY: all build test bench bench-instructions bench-tools compat libev clean format

all: build

libev:
	@if [ ! -e /usr/include/ev.h ] && [ ! -e /usr/local/include/ev.h ]; then \
	    echo "installing libev-dev"; \
	    SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	    $$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq libev-dev; \
	fi

$(STAMP): pyproject.toml setup.py | libev
	$(PY) -m venv --without-pip $(VENV)
	$(VPY) -m ensurepip >/dev/null 2>&1 || $(VPY) $(or $(PIP_WHEEL),no-pip-wheel-beside-$(PY))/pip install -q pip
	$(VPY) -m pip install -q --upgrade pip setuptools wheel
	$(VPY) -m pip install -q --no-build-isolation -e '.[test,bench]'
	touch $(STAMP)

build: $(STAMP)
	$(VPY) setup.py -q build_ext --inplace

test: build
	$(VPY) -m pytest -q tests
	@echo "=== the same with libev's per-fd watchers (FASTLOOP_IO_BACKEND=libev) ==="
	FASTLOOP_IO_BACKEND=libev $(VPY) -m pytest -q tests

compat: build
	$(VPY) tests/cpython/run.py

# The network benchmarks' load: wrk, and OpenSSL's headers for the C load
# generator's TLS mode (Debian packages).
bench-tools:
	@missing=""; command -v wrk >/dev/null || missing="$$missing wrk"; \
	[ -e /usr/include/openssl/ssl.h ] || missing="$$missing libssl-dev"; \
	if [ -n "$$missing" ]; then \
	    echo "installing$$missing"; \
	    SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	    $$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq $$missing; \
	fi

bench: build bench-tools
	$(VPY) -m benchmarks

bench-instructions: build bench-tools
	@command -v valgrind >/dev/null || { SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); $$SUDO apt-get install -y -qq valgrind; }
	$(VPY) -m benchmarks --instructions

format:
	clang-format -i src/*.c src/*.h

clean:
	rm -rf build fastloop/*.so *.egg-info
