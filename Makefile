# The README's commands. `make run` needs nothing installed but Rust; `make test`
# needs PostgreSQL and Redis (started by scripts/test-services.sh when installed).

CARGO ?= cargo

.PHONY: run run-release test test-services lint fmt migrate create-admin docs clean-test-dbs bench

## Run the server in embedded mode (SQLite in ./data, in-process cache) on 127.0.0.1:8080.
run:
	$(CARGO) run -p chat-server --bin chat-server -- serve

## Same, optimized build.
run-release:
	$(CARGO) run --release -p chat-server --bin chat-server -- serve

## The whole test suite: unit tests, and integration tests in both modes
## (SQLite + in-process, PostgreSQL + Redis).
test: test-services
	@if $(CARGO) nextest --version >/dev/null 2>&1; then \
		$(CARGO) nextest run --workspace --no-fail-fast; \
	else \
		$(CARGO) test --workspace --no-fail-fast; \
	fi

## Make sure PostgreSQL and Redis answer on 127.0.0.1 (start them if installed but stopped).
test-services:
	@scripts/test-services.sh

## The benchmarks of docs/benchmarks.md (release build; both modes; a few minutes).
bench:
	$(CARGO) build --release -p chat-server -p chat-loadgen
	scripts/bench.sh sqlite idle --connections 19000 --processes 2 --sources 127.0.0.2,127.0.0.3 --duration 5
	scripts/bench.sh postgres idle --connections 19000 --processes 2 --sources 127.0.0.2,127.0.0.3 --duration 5
	scripts/bench.sh sqlite groups --connections 1000 --group-size 10 --rate 2 --duration 10
	scripts/bench.sh postgres groups --connections 1000 --group-size 10 --rate 2 --duration 10
	scripts/bench.sh sqlite groups --connections 5000 --group-size 10 --rate 2 --duration 10 --sources 127.0.0.2,127.0.0.3
	scripts/bench.sh sqlite burst --connections 1000 --senders 10 --burst 20 --duration 10 --warmup 2
	scripts/bench.sh sqlite history --connections 32 --messages 1000 --duration 10 --warmup 2
	scripts/bench.sh postgres history --connections 32 --messages 1000 --duration 10 --warmup 2
	scripts/bench.sh sqlite direct --connections 1000 --rate 2 --duration 10
	scripts/bench.sh postgres direct --connections 1000 --rate 2 --duration 10

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
