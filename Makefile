# zdmkit: zero-downtime migration automation.
#   make lab    set everything up and run the whole migration on the local lab
#   make test   lint, unit tests and the Molecule scenarios
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

VENV ?= .venv
PYTHON ?= python3
export PATH := $(CURDIR)/$(VENV)/bin:$(CURDIR)/.cache/bin:$(PATH)
export ZDMKIT_ARTIFACTS ?= $(HOME)/.cache/zdmkit/artifacts
export ZDMKIT_SOURCES ?= $(abspath $(CURDIR)/../shared/sources)
export ZDMKIT_PREBUILT ?= $(abspath $(CURDIR)/../shared/artifacts)
export ANSIBLE_CONFIG := $(CURDIR)/ansible.cfg
export ZDMKIT_BASE_IMAGE := $(shell images/bookworm-systemd/build.sh --tag)
# Scenarios `make test` and `make molecule` run: LANES side by side (a comma between lanes), each
# lane's scenarios one after another; `make molecule LANES=1` runs SCENARIOS one after another,
# `make molecule SCENARIO=name` one. The `lab` scenario runs the whole story
# (tests/integration/lab, phase 0 to 5 on the lab's seven hosts, on a network of its own); it is
# the longest, so it has a lane to itself. LAB_TESTS may name some of the story's files only.
SCENARIOS ?= substrate cassandra demo_app migrate monitoring tls lab
LANES ?= lab,substrate cassandra demo_app migrate monitoring tls
LAB_TESTS ?= tests/integration/lab
SCENARIO ?=
# Each run's output, stamped line by line, for scripts/suite_timings.py (make timings).
SUITE_LOGS ?= .cache/suite
TIMED := python3 scripts/suite_timings.py run --log

VENV_STAMP := $(VENV)/.installed

.PHONY: help bootstrap host docker image venv artifacts dashboards lint unit molecule story test timings lab lab-up lab-down clean

help: ## List the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-12s %s\n", $$1, $$2}'

# The base image (debootstrap) builds beside the Python env and the artifacts.
bootstrap: ## Idempotent set-up: host packages, Docker engine, base image, Python env, artifacts
	@$(MAKE) --no-print-directory host docker
	@$(MAKE) --no-print-directory -j2 --output-sync=line image artifacts

host:
	@scripts/bootstrap-host.sh
	@scripts/fetch-promtool.sh .cache/bin/promtool

docker:
	@scripts/ensure-docker.sh

image: docker
	@images/bookworm-systemd/build.sh >/dev/null

venv: $(VENV_STAMP)
$(VENV_STAMP): pyproject.toml requirements/constraints.txt
	@test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	@echo "venv: installing the tool chain into $(VENV)"
	@$(VENV)/bin/pip install -q --disable-pip-version-check -c requirements/constraints.txt -e '.[dev]'
	@touch $@

artifacts: venv ## Fill the artifact cache (what tests need must succeed)
	@zdmkit-artifacts fetch --for test

dashboards: venv ## Check the Perses dashboards and write their Grafana exports (monitoring/dashboards/grafana)
	@python -m zdmkit.dashboards export

lint: venv ## yamllint (strict), ansible-lint (production profile), ruff
	yamllint --strict .
	ansible-lint --offline
	ruff check .

unit: venv ## Unit tests
	@scripts/fetch-promtool.sh .cache/bin/promtool
	pytest -q tests/unit

molecule: $(if $(NO_BOOTSTRAP),,bootstrap) ## Molecule scenarios in LANES (one with SCENARIO=name); logs in .cache/suite/
	@export ZDMKIT_LAB_TESTS="$(LAB_TESTS)" SUITE_LOGS="$(SUITE_LOGS)"; \
	if [ -n "$(SCENARIO)" ]; then scripts/molecule-lanes.sh "$(SCENARIO)"; \
	elif [ "$(LANES)" = 1 ]; then scripts/molecule-lanes.sh "$(SCENARIOS)"; \
	else IFS=, read -ra lanes <<< "$(LANES)"; scripts/molecule-lanes.sh "$${lanes[@]}"; fi

story: $(if $(NO_BOOTSTRAP),,bootstrap) ## The lab scenario: the migration story, phase 0 to 5 with faults, rollback and the report
	@ZDMKIT_LAB_TESTS=tests/integration/lab $(TIMED) $(SUITE_LOGS)/molecule-lab-story.log -- molecule test -s lab

test: ## Everything CI runs, then where its time went
	@rm -rf $(SUITE_LOGS)
	@rc=0; \
	$(TIMED) $(SUITE_LOGS)/bootstrap.log -- $(MAKE) --no-print-directory bootstrap \
	  && $(TIMED) $(SUITE_LOGS)/lint.log -- $(MAKE) --no-print-directory lint \
	  && $(TIMED) $(SUITE_LOGS)/unit.log -- $(MAKE) --no-print-directory unit \
	  && $(MAKE) --no-print-directory molecule NO_BOOTSTRAP=1 || rc=$$?; \
	python3 scripts/suite_timings.py summary $(SUITE_LOGS) || true; \
	exit $$rc

timings: ## Write docs/test-timings.md from the logs of the last runs (.cache/suite/)
	@python3 scripts/suite_timings.py report $(SUITE_LOGS) -o docs/test-timings.md

lab: bootstrap ## Build the local lab and run the whole migration, phase 0 to 5, then the loss check and the report
	ansible-playbook playbooks/lab.yml
	ansible-playbook playbooks/site.yml
	@scripts/lab-migrate.sh

lab-down: venv ## Remove the local lab's containers and network
	ansible-playbook playbooks/lab.yml -e lab_state=absent

clean: lab-down ## Remove the lab and local build state (the artifact cache stays)
	rm -rf .cache build dist src/*.egg-info $(VENV)
