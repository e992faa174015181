#!/bin/sh
# Refuses a production stack whose secrets are missing, still the placeholders of
# .env.example, too short, or unusable where they go. Run by the one-shot `check-env`
# service of docker-compose.prod.yml: every other service waits for it to succeed, so
# PostgreSQL, Redis and Grafana never start (and never keep) a placeholder password.
# scripts/check-deploy.sh runs it on the host too, against .env.example (must fail)
# and against generated values (must pass).
#
# Why a marker and not a comparison with .env.example: every placeholder there
# contains "change-me", and check-deploy.sh checks that it does, so the two cannot
# drift apart; the container needs no copy of .env.example.
#
# `make prod-up` runs it on the host first, as `check-env.sh .env`, so a placeholder is
# reported before the image build rather than after it.
#
# POSIX sh: the runtime image is debian-slim (dash), the host may be anything.
set -u

# With a file argument: take KEY=value lines from it (the .env syntax compose reads:
# no `export`, optional surrounding quotes), for variables the environment does not
# already set - in compose too, the environment wins over .env.
if [ $# -gt 0 ]; then
  [ -r "$1" ] || { echo "check-env: cannot read $1" >&2; exit 1; }
  while IFS= read -r line || [ -n "$line" ]; do
    case "$line" in
      [A-Za-z_]*=*) ;;
      *) continue ;;
    esac
    key=${line%%=*}
    value=${line#*=}
    case "$key" in *[!A-Za-z0-9_]*) continue ;; esac
    case "$value" in
      \"*\") value=${value#\"}; value=${value%\"} ;;
      \'*\') value=${value#\'}; value=${value%\'} ;;
    esac
    eval "already=\${$key+set}"
    [ -n "$already" ] || export "$key=$value"
  done <"$1"
fi

failed=0
complain() {
  echo "check-env: $*" >&2
  failed=1
}

lowercase() { printf '%s' "$1" | tr '[:upper:]' '[:lower:]'; }

is_placeholder() {
  case "$(lowercase "$1")" in
    *change-me* | *changeme* | *change_me*) return 0 ;;
  esac
  return 1
}

# check NAME MIN_LENGTH KIND: KIND "url" also requires URL-safe characters (the value
# is put into postgres:// and redis:// URLs unescaped).
check() {
  name=$1
  min=$2
  kind=$3
  eval "value=\${$name:-}"
  if [ -z "$value" ]; then
    complain "$name is not set (copy .env.example to .env and fill it in)"
    return
  fi
  if is_placeholder "$value"; then
    complain "$name is still the .env.example placeholder; generate one (docs/deployment.md)"
    return
  fi
  if [ "${#value}" -lt "$min" ]; then
    complain "$name is too short (${#value} characters, at least $min)"
  fi
  if [ "$kind" = url ]; then
    case "$value" in
      *[!A-Za-z0-9._~-]*)
        complain "$name may only hold letters, digits and . _ ~ - (it goes into a URL); use: openssl rand -hex 24"
        ;;
    esac
  fi
}

# The JWT secret: the server itself requires 32 bytes with CHAT_ENV=prod.
check CHAT_JWT_SECRET 32 any
check POSTGRES_PASSWORD 16 url
check REDIS_PASSWORD 16 url
check GRAFANA_ADMIN_PASSWORD 12 any

# Optional: the secret being rotated out (docs/operations.md, "Rotating the JWT
# secret").
if [ -n "${CHAT_JWT_SECRET_PREVIOUS:-}" ]; then
  check CHAT_JWT_SECRET_PREVIOUS 32 any
  if [ "$CHAT_JWT_SECRET_PREVIOUS" = "${CHAT_JWT_SECRET:-}" ]; then
    complain "CHAT_JWT_SECRET_PREVIOUS equals CHAT_JWT_SECRET; set the new secret in CHAT_JWT_SECRET"
  fi
fi

# One leaked value must not open everything (placeholders were reported above).
if [ -n "${POSTGRES_PASSWORD:-}" ] && ! is_placeholder "$POSTGRES_PASSWORD" &&
  [ "$POSTGRES_PASSWORD" = "${REDIS_PASSWORD:-}" ]; then
  complain "POSTGRES_PASSWORD and REDIS_PASSWORD must differ"
fi
if [ -n "${CHAT_JWT_SECRET:-}" ] && ! is_placeholder "$CHAT_JWT_SECRET"; then
  for other in POSTGRES_PASSWORD REDIS_PASSWORD GRAFANA_ADMIN_PASSWORD; do
    eval "value=\${$other:-}"
    if [ "$value" = "$CHAT_JWT_SECRET" ]; then
      complain "CHAT_JWT_SECRET must differ from $other"
    fi
  done
fi

if [ "$failed" -ne 0 ]; then
  echo "check-env: refusing to start the stack; fix .env and run it again" >&2
  exit 1
fi
echo "check-env: secrets present and not placeholders"
