# Entry points for operators and CI. `make help` lists them.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

PYTHON     ?= python3.11
VENV       ?= .venv
BIN        := $(VENV)/bin
INVENTORY  ?=
# Empty: tools/run_suite.py runs every scenario on disk plus the second
# platform runs (common@trixie) and fails if a scenario was not run.
SCENARIOS  ?=
# Scenarios run at once (tools/run_suite.py); 3 keeps 2 cores busy.
MOLECULE_JOBS ?= 3
export MOLECULE_JOBS
LOCAL_HOST := obs-central
LOCAL_IMAGE := localhost/obs-test:bookworm
export CONTAINERS_CONF := $(CURDIR)/.config/containers/containers.conf
export ANSIBLE_CONFIG  := $(CURDIR)/ansible.cfg
export PATH := $(CURDIR)/$(BIN):$(PATH)

.PHONY: help deps apt venv image lint pytest molecule test test-clients docs deploy verify destroy-local bench loadtest bench-load bench-edge bench-clients

help:  ## List the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-14s %s\n", $$1, $$2}'

apt:  ## Install the system packages the tests and local deploy need (Debian)
	tools/install-system-deps.sh

$(BIN)/ansible-playbook: requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements.txt
	touch $@

venv: $(BIN)/ansible-playbook  ## Create the Python venv from the pinned requirements

image: apt  ## Build (or reuse) the offline Debian 12 and 13 test images
	tools/build-test-image.sh bookworm
	tools/build-test-image.sh trixie

deps: apt venv image  ## Everything the tests need

lint: venv  ## yamllint and ansible-lint (production profile)
	$(BIN)/yamllint --strict .
	$(BIN)/ansible-lint --profile production

pytest: venv  ## Unit and static tests
	$(BIN)/pytest -q tests

molecule: apt venv  ## Images, then molecule test for every scenario (SCENARIOS="a b" for a subset, MOLECULE_JOBS=N at a time)
	tools/run_suite.py $(SCENARIOS)

test-clients:  ## The store clients (clients/): npm ci from the lockfile, every test, line coverage
	cd clients && npm ci --no-audit --no-fund && npm test

bench-clients:  ## Store transport vs winston-loki on one test upstream, in one run (figures, not pass/fail)
	cd clients && npm ci --no-audit --no-fund && npm run bench

# lint, pytest, the clients' tests and the image builds run beside the
# scenarios (tools/run_suite.py).
test: apt venv  ## The whole test suite (what CI runs): lint, pytest and every scenario
	tools/run_suite.py --all

deploy: venv  ## Deploy the stack: local container by default, or INVENTORY=inventories/production
ifeq ($(strip $(INVENTORY)),)
	$(MAKE) image
	@# The local inventory's vault password: made once, never committed.
	@test -s inventories/local/.vault-pass || (umask 077; head -c 32 /dev/urandom | base64 > inventories/local/.vault-pass)
	tools/local-container.sh up $(LOCAL_HOST) $(LOCAL_IMAGE)
	ANSIBLE_VAULT_PASSWORD_FILE=$${ANSIBLE_VAULT_PASSWORD_FILE:-$(CURDIR)/inventories/local/.vault-pass} \
	  $(BIN)/ansible-playbook -i inventories/local playbooks/site.yml $(ARGS)
else
	$(BIN)/ansible-playbook -i $(INVENTORY) playbooks/site.yml $(ARGS)
endif

verify: venv  ## The release gate (playbooks/verify.yml): local container by default, or INVENTORY=...; ARGS="-e gate_load=true"
ifeq ($(strip $(INVENTORY)),)
	ANSIBLE_VAULT_PASSWORD_FILE=$${ANSIBLE_VAULT_PASSWORD_FILE:-$(CURDIR)/inventories/local/.vault-pass} \
	  $(BIN)/ansible-playbook -i inventories/local playbooks/verify.yml $(ARGS)
else
	$(BIN)/ansible-playbook -i $(INVENTORY) playbooks/verify.yml $(ARGS)
endif

destroy-local:  ## Remove the local deployment container
	tools/local-container.sh down $(LOCAL_HOST)

loadtest: venv  ## Run the load test tool (tools/obs_loadtest): LOADTEST_ARGS="--bundles DIR ..."
	PYTHONPATH=tools $(BIN)/python -m obs_loadtest $(LOADTEST_ARGS)

bench-load: venv  ## Load-test the local deployment through its edge (BENCH_ARGS="..."; BENCH_UPSTREAM=test: no Loki here, edge + TEST stand-in)
	BENCH_ARGS="$(BENCH_ARGS)" BENCH_UPSTREAM="$(BENCH_UPSTREAM)" BENCH_PUSH_RATE="$(BENCH_PUSH_RATE)" \
	  BENCH_PUSH_BURST="$(BENCH_PUSH_BURST)" tools/bench-load.sh

bench-edge: venv image  ## Push route req/s with store auth vs without, in one run (figures, not pass/fail)
	tools/bench-edge.sh

docs: venv  ## Write the variable table of every role README from its argument specs and defaults
	$(BIN)/python tools/gen_role_docs.py
