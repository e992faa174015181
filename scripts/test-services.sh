#!/usr/bin/env bash
# Makes sure the PostgreSQL and Redis the integration tests use are answering,
# starting the local ones if they are installed but stopped. Exits non-zero with
# an explanation when one cannot be reached.
set -u

pg_url="${CHAT_TEST_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
redis_url="${CHAT_TEST_REDIS_URL:-redis://127.0.0.1:6379}"

pg_up() { pg_isready -q -d "$pg_url" 2>/dev/null; }
redis_up() { redis-cli -u "$redis_url" ping 2>/dev/null | grep -q PONG; }

if ! pg_up; then
  if command -v pg_ctlcluster >/dev/null 2>&1 && [ -d /etc/postgresql ]; then
    echo "starting PostgreSQL…"
    for version in $(ls /etc/postgresql); do
      pg_ctlcluster --skip-systemctl-redirect "$version" main start 2>/dev/null || true
    done
    for _ in $(seq 1 30); do pg_up && break; sleep 1; done
  fi
fi
if ! pg_up; then
  echo "PostgreSQL is not reachable at $pg_url (install it, or set CHAT_TEST_POSTGRES_URL)" >&2
  exit 1
fi

if ! redis_up; then
  if command -v redis-server >/dev/null 2>&1; then
    echo "starting Redis…"
    redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no >/dev/null
    for _ in $(seq 1 30); do redis_up && break; sleep 0.5; done
  fi
fi
if ! redis_up; then
  echo "Redis is not reachable at $redis_url (install it, or set CHAT_TEST_REDIS_URL)" >&2
  exit 1
fi
echo "PostgreSQL and Redis are up"
