# The two commands a newcomer needs: `make up` and `make test`. Both install what they need.
SHELL := /bin/bash
# Go is needed by `make release` on a cache miss; Debian-style installs put it here.
export PATH := $(PATH):/usr/local/go/bin
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
HOST_PACKAGES := nftables iproute2 iptables util-linux procps openssh-server openssh-client \
	nginx containerd runc containernetworking-plugins busybox-static conntrack socat curl
HOST_STAMP := $(VENV)/.host-packages
PY_STAMP := $(VENV)/.python-deps

.PHONY: all deps up down test unit lint release bench clean

all: test

# Debian packages the local machines run (they overlay this host's root) and the tools
# localcloud drives. Daemons are not started on the host: machines start their own.
$(HOST_STAMP):
	@mkdir -p $(VENV)
	@missing=$$(for p in $(HOST_PACKAGES); do dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q 'install ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
		echo "installing host packages: $$missing"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing; \
	fi
	@touch $@

$(PY_STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test]'
	@touch $@

deps: $(HOST_STAMP) $(PY_STAMP)

# Builds (or takes from the cache) the Kubernetes server tarball and the salt tarball.
release: deps
	$(BIN)/kube-release

up: release
	$(BIN)/kube-up

down: deps
	$(BIN)/kube-down

lint: deps
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .

test: release lint
	$(BIN)/pytest -q

bench: release
	$(BIN)/python -m bench

clean:
	rm -rf _output
