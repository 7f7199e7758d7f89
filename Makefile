# genhub: `make up` starts everything locally, `make test` runs every test.
SHELL := /bin/bash
.DEFAULT_GOAL := help
LOCAL := deploy/local
UV ?= $(shell bash deploy/local/ensure-uv.sh)
# pytest exits 5 when it collected no test: that is a failure here, said out loud.
PYTEST = $(UV) run --no-sync pytest -p no:cacheprovider
NO_TESTS = || { rc=$$?; [ $$rc -ne 5 ] || echo "pytest collected no tests: failing" >&2; exit $$rc; }

.PHONY: help install infra-up up down logs status demo test test-unit test-e2e lint clean bench bench-gateway bench-billing bench-orchestrator bench-storage bench-notifier

help: ## list targets
	@grep -E '^[a-z-]+:.*##' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-12s %s\n", $$1, $$2}'

install: ## install uv (if missing) and the Python workspace
	@$(UV) sync --frozen --quiet

infra-up: install ## start PostgreSQL, Kafka and MinIO (installed on first use)
	@bash $(LOCAL)/infra.sh up

up: infra-up ## start infrastructure and all five services, seed the demo app
	@bash $(LOCAL)/services.sh start
	@set -a; source var/secrets.env; set +a; $(UV) run --no-sync python $(LOCAL)/seed.py

down: ## stop services and infrastructure
	@bash $(LOCAL)/services.sh stop
	@bash $(LOCAL)/infra.sh down

status: ## show what is running
	@bash $(LOCAL)/infra.sh status || true
	@bash $(LOCAL)/services.sh status

logs: ## where the logs are (tail -f var/log/<name>.log)
	@ls -1 var/log/*.log 2>/dev/null || echo "no logs yet: run make up"

demo: ## submit one job to the running stack and save the PNG
	@$(UV) run --no-sync python $(LOCAL)/demo.py

test: up test-unit test-e2e ## unit tests, then the end-to-end suite on the real stack

test-unit: install ## unit tests of every lib and service
	@$(PYTEST) libs services -q $(NO_TESTS)

test-e2e: install ## end-to-end suite against the running stack (Kafka, PostgreSQL, MinIO)
	@set -a; source var/secrets.env; set +a; $(PYTEST) tests-e2e -q $(NO_TESTS)

lint: install ## ruff and mypy
	@$(UV) run --no-sync ruff check .
	@$(UV) run --no-sync ruff format --check .
	@$(UV) run --no-sync mypy libs/contracts/src libs/platform/src libs/client/src
	@for svc in gateway billing orchestrator storage notifier; do \
		$(UV) run --no-sync mypy services/$$svc/src/genhub_$$svc/domain || exit 1; done

bench: bench-gateway bench-billing bench-orchestrator bench-storage bench-notifier ## every benchmark

bench-gateway: up ## gateway accept path alone (on a CPU of its own, then sharing both), then in the stack: requests/s, p50/p95/p99 (prints figures)
	@set -a; source var/secrets.env; set +a; \
	$(UV) run --no-sync python deploy/bench/bench_gateway.py --alone --own-core --rate 1000 --concurrency 64 --seconds 30 && \
	$(UV) run --no-sync python deploy/bench/bench_gateway.py --alone --rate 1000 --concurrency 64 --seconds 30 && \
	$(UV) run --no-sync python deploy/bench/bench_gateway.py

bench-billing: infra-up ## billing reservation throughput and latency (prints figures)
	@$(UV) run --no-sync python deploy/bench/bench_billing.py

bench-orchestrator: infra-up ## orchestrator dispatch overhead with the 0 ms mock (prints figures)
	@$(UV) run --no-sync python deploy/bench/bench_orchestrator.py

bench-storage: infra-up ## storage: 1024x1024 outputs processed per second (prints figures)
	@$(UV) run --no-sync python deploy/bench/bench_storage.py

bench-notifier: infra-up ## notifier deliveries/s and completed-to-first-attempt delay (prints figures)
	@set -a; source var/secrets.env; set +a; $(UV) run --no-sync python deploy/bench/bench_notifier.py

clean: down ## stop everything and delete local state (downloads stay cached)
	rm -rf var
