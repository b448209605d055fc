# kubev-node-exporter: `make run` starts the exporter, `make test` runs every test,
# `make test-unit` the quick ones.
# They set up what they need on a fresh machine (a venv; Debian packages for the tests).

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
ARGS   ?=

# Real parts the tests run: Prometheus and promtool, Alertmanager, node_exporter as an
# independent oracle, dnsmasq, iproute2 for network namespaces, nftables for the firewalls
# between them, wrk and GNU time for bench/.
DEBS := prometheus prometheus-alertmanager prometheus-node-exporter dnsmasq-base \
        iproute2 nftables wrk time util-linux curl openssl chromium python3-venv

VERSION = $(shell $(PYTHON) -c "import tomllib; print(tomllib.load(open('pyproject.toml', 'rb'))['project']['version'])")

.PHONY: run test test-unit lint generate check-generated bench debs venv image version clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

venv: $(STAMP)

run: $(STAMP)
	$(BIN)/kubev-node-exporter $(ARGS)

debs:
	@missing=""; for p in $(DEBS); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q 'install ok installed' || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	fi

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

generate: $(STAMP)
	$(BIN)/python -m tools.generate write

check-generated: $(STAMP)
	$(BIN)/python -m tools.generate check

test: $(STAMP) debs lint check-generated
	$(BIN)/pytest

# While you work: no Debian packages, no root, under a minute. The in-process tests and
# the generators' check; what needs root or is slow is left to make test.
test-unit: $(STAMP)
	$(BIN)/pytest -m "not root and not slow" tests/unit tests/tools

bench: $(STAMP) debs
	PYTHONPATH=. $(BIN)/python bench/scrape.py
	PYTHONPATH=. $(BIN)/python bench/ports.py
	PYTHONPATH=. $(BIN)/python bench/scale.py
	PYTHONPATH=. $(BIN)/python bench/netlink.py
	PYTHONPATH=. $(BIN)/python bench/peers.py
	PYTHONPATH=. $(BIN)/python bench/memory.py
	$(BIN)/python -m pytest bench/test_encode.py --benchmark-only -q \
		--benchmark-json=bench/results/encode.json

version:
	@echo $(VERSION)

image:
	docker build --build-arg VERSION=$(VERSION) -t kubev-node-exporter:$(VERSION) .

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .mypy_cache .ruff_cache test-artifacts
