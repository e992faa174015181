# The README's commands. `make run` needs nothing installed but Rust; `make test`
# needs PostgreSQL and Redis (started by scripts/test-services.sh when installed).

CARGO ?= cargo
# `docker compose` (v2 plugin) when there is one, else docker-compose (v1).
COMPOSE ?= $(shell docker compose version >/dev/null 2>&1 && echo "docker compose" || echo docker-compose)
# Fixed project names: the two stacks live in one directory and must not share one.
DEV_COMPOSE = $(COMPOSE) -p chat-dev -f docker-compose.dev.yml
PROD_COMPOSE = $(COMPOSE) -p chat -f docker-compose.prod.yml

.PHONY: run run-release test test-services check-deploy lint fmt migrate create-admin docs clean-test-dbs bench screenshots \
	dev-up down logs prod-up prod-down

## Run the server in embedded mode (SQLite in ./data, in-process cache) on 127.0.0.1:8080.
run:
	$(CARGO) run -p chat-server --bin chat-server -- serve

## Same, optimized build.
run-release:
	$(CARGO) run --release -p chat-server --bin chat-server -- serve

## The whole test suite: the deployment files' checks, unit tests, and integration
## tests in both modes (SQLite + in-process, PostgreSQL + Redis).
test: test-services check-deploy
	@if $(CARGO) nextest --version >/dev/null 2>&1; then \
		$(CARGO) nextest run --workspace --no-fail-fast; \
	else \
		$(CARGO) test --workspace --no-fail-fast; \
	fi

## Make sure PostgreSQL and Redis answer on 127.0.0.1 (start them if installed but stopped).
test-services:
	@scripts/test-services.sh

## Check the Dockerfile, compose files, nginx.conf (nginx -t) and secrets checks without
## a container engine (needs docker-compose, nginx, python3-yaml; see docs/deployment.md).
check-deploy:
	@scripts/check-deploy.sh

## The benchmarks of docs/benchmarks.md (release build; both modes; a few minutes).
bench:
	$(CARGO) build --release -p chat-server -p chat-loadgen
	scripts/bench.sh sqlite idle --connections 19000 --processes 2 --sources 127.0.0.2,127.0.0.3 --duration 5 --max-kib-per-socket 12
	scripts/bench.sh postgres idle --connections 19000 --processes 2 --sources 127.0.0.2,127.0.0.3 --duration 5 --max-kib-per-socket 12
	scripts/bench.sh sqlite groups --connections 1000 --group-size 10 --rate 2 --duration 10
	scripts/bench.sh postgres groups --connections 1000 --group-size 10 --rate 2 --duration 10
	scripts/bench.sh sqlite groups --connections 5000 --group-size 10 --rate 2 --duration 10 --sources 127.0.0.2,127.0.0.3
	scripts/bench.sh sqlite burst --connections 1000 --senders 10 --burst 20 --duration 10 --warmup 2
	scripts/bench.sh sqlite history --connections 32 --messages 1000 --duration 10 --warmup 2
	scripts/bench.sh postgres history --connections 32 --messages 1000 --duration 10 --warmup 2
	scripts/bench.sh sqlite direct --connections 1000 --rate 2 --duration 10
	scripts/bench.sh postgres direct --connections 1000 --rate 2 --duration 10

## The README's screenshots (docs/screenshots/), taken by the browser test as it runs
## (needs chromium and chromium-driver, like `make test`).
screenshots:
	rm -rf target/screenshots
	CHAT_BROWSER_SCREENSHOTS=$(CURDIR)/target/screenshots $(CARGO) test -p chat-server --test it web_browser::
	mkdir -p docs/screenshots
	cp target/screenshots/readme-chat.png docs/screenshots/chat.png
	cp target/screenshots/readme-group.png docs/screenshots/group.png
	cp target/screenshots/readme-admin.png docs/screenshots/admin.png

## Formatting and clippy, as CI checks them.
lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

fmt:
	$(CARGO) fmt --all

## Apply migrations to CHAT_DATABASE_URL.
migrate:
	$(CARGO) run -p chat-server --bin chat-server -- migrate

## Create (or promote) a site admin; prompts for what is missing.
create-admin:
	$(CARGO) run -p chat-server --bin chat-server -- create-admin

## API docs of the crates.
docs:
	$(CARGO) doc --workspace --no-deps

## Drop PostgreSQL databases left by interrupted test runs.
clean-test-dbs:
	@psql "$${CHAT_TEST_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/postgres}" -Atc \
		"SELECT 'DROP DATABASE \"' || datname || '\" WITH (FORCE);' FROM pg_database WHERE datname LIKE 'chat_test_%'" \
		| psql "$${CHAT_TEST_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/postgres}" -q

## Development stack in containers: PostgreSQL, Redis and the server built from this
## checkout, on http://127.0.0.1:8080 (docs/deployment.md).
dev-up:
	$(DEV_COMPOSE) up -d --build
	@echo "chat-server on http://127.0.0.1:$${DEV_HTTP_PORT:-8080} (API docs: /docs); make logs, make down"

## Stop the development stack (its volumes stay; add `-v` to a compose down to drop them).
down:
	$(DEV_COMPOSE) down

## Follow the development stack's logs.
logs:
	$(DEV_COMPOSE) logs -f --tail=100

## Production stack from .env: nginx, two replicas, PostgreSQL, Redis; MONITORING=1 adds
## Prometheus and Grafana. Refuses a missing .env or placeholder secrets.
prod-up:
	@test -f .env || { echo "no .env: cp .env.example .env and replace every change-me value (docs/deployment.md)" >&2; exit 1; }
	@sh docker/check-env.sh .env
	$(PROD_COMPOSE) $(if $(MONITORING),--profile monitoring) up -d --build

## Stop the production stack, monitoring included (volumes stay).
prod-down:
	$(PROD_COMPOSE) --profile monitoring down
