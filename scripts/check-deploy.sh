#!/usr/bin/env bash
# Checks the deployment files without a container engine (`make check-deploy`; part of
# `make test`, hence of CI):
#   1. both compose files parse (docker-compose config), and the production one
#      refuses to start without its secrets;
#   2. scripts/check_deploy.py: what the files must say (health checks, restart
#      policies, replica settings, secrets, nginx/Prometheus listing every replica);
#   3. nginx -t on docker/nginx.conf with the integration test's substitutions, as an
#      unprivileged user like the test;
#   4. docker/check-env.sh refuses .env.example's placeholders and accepts real values;
#   5. docker/Dockerfile runs as a non-root USER, has a HEALTHCHECK and EXPOSEs 8080
#      (grep: hadolint is not packaged by Debian).
# Each check is then run on a deliberately broken copy and must fail, so a check that
# silently passes everything is caught too.
#
# Needs: docker-compose (or the docker compose plugin), nginx, python3 with PyYAML.
# Debian: apt-get install --no-install-recommends docker-compose nginx-light python3-yaml
# (.ci/run installs them). Exits non-zero on the first failed check.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { echo "check-deploy: $*"; }
fail() {
  echo "check-deploy: FAIL: $*" >&2
  exit 1
}

# --- tools ---------------------------------------------------------------------------
PYTHON=
for candidate in python3 /usr/bin/python3; do
  if "$candidate" -c 'import yaml' >/dev/null 2>&1; then
    PYTHON=$candidate
    break
  fi
done
COMPOSE=()
if command -v docker-compose >/dev/null 2>&1; then
  COMPOSE=(docker-compose)
elif docker compose version >/dev/null 2>&1; then
  COMPOSE=(docker compose)
fi
# Debian's nginx is /usr/sbin/nginx, often not on an unprivileged user's PATH.
NGINX=${NGINX:-$(command -v nginx || true)}
if [ -z "$NGINX" ] && [ -x /usr/sbin/nginx ]; then NGINX=/usr/sbin/nginx; fi
missing=()
[ -n "$PYTHON" ] || missing+=(python3-yaml)
[ ${#COMPOSE[@]} -gt 0 ] || missing+=(docker-compose)
[ -n "$NGINX" ] || missing+=(nginx-light)
if [ ${#missing[@]} -gt 0 ]; then
  fail "missing tools; install them: apt-get install --no-install-recommends ${missing[*]}"
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# expect_failure NAME PATTERN COMMAND...: COMMAND must fail and say PATTERN.
expect_failure() {
  local name=$1 pattern=$2
  shift 2
  if "$@" >"$tmp/out" 2>&1; then
    cat "$tmp/out" >&2
    fail "self-test '$name': the check accepted a broken file"
  fi
  if ! grep -qF -- "$pattern" "$tmp/out"; then
    cat "$tmp/out" >&2
    fail "self-test '$name': the check failed, but without saying '$pattern'"
  fi
  step "  self-test ok, refused: $name"
}

# mutate_yaml SRC DEST CODE: DEST is SRC loaded, changed by the Python CODE (on `doc`)
# and written back (anchors expanded; the same document to compose and the checker).
mutate_yaml() {
  "$PYTHON" - "$@" <<'EOF'
import sys, yaml
src, dest, code = sys.argv[1:]
with open(src) as f:
    doc = yaml.safe_load(f)
exec(code, {"doc": doc})
with open(dest, "w") as f:
    yaml.safe_dump(doc, f, sort_keys=False)
EOF
}

# Dummy values shaped like real ones (the stack's secrets are required). Compose runs
# with only these, so neither a local .env nor the caller's environment matters.
cat >"$tmp/env" <<'EOF'
CHAT_JWT_SECRET=ci-dummy-jwt-secret-not-used-anywhere-0123456789
POSTGRES_PASSWORD=cidummypostgres0123456789
REDIS_PASSWORD=cidummyredis0123456789
GRAFANA_ADMIN_PASSWORD=ci-dummy-grafana-0123
EOF
grep -v '^CHAT_JWT_SECRET=' "$tmp/env" >"$tmp/env-no-jwt"
: >"$tmp/env-empty"
compose() { env -i PATH="$PATH" HOME="${HOME:-/tmp}" "${COMPOSE[@]}" "$@"; }

# --- 1. compose files parse ----------------------------------------------------------
step "1. compose files parse (${COMPOSE[*]} config)"
compose --env-file "$tmp/env" -f docker-compose.prod.yml config -q ||
  fail "docker-compose.prod.yml does not parse"
compose --env-file "$tmp/env" -f docker-compose.prod.yml --profile monitoring config -q ||
  fail "docker-compose.prod.yml (monitoring profile) does not parse"
compose --env-file "$tmp/env-empty" -f docker-compose.dev.yml config -q ||
  fail "docker-compose.dev.yml does not parse"
expect_failure "production stack without CHAT_JWT_SECRET" "CHAT_JWT_SECRET" \
  compose --env-file "$tmp/env-no-jwt" -f docker-compose.prod.yml config -q
mutate_yaml docker-compose.dev.yml "$tmp/bad-dev.yml" \
  'doc["services"]["server"]["depends_on"]["postgres"]["condition"] = "service_maybe"'
expect_failure "compose file with an invalid condition" "service_maybe" \
  compose --env-file "$tmp/env-empty" -f "$tmp/bad-dev.yml" config -q

# --- 2. what the files say -----------------------------------------------------------
step "2. scripts/check_deploy.py"
"$PYTHON" scripts/check_deploy.py || fail "scripts/check_deploy.py found problems (above)"
mutate_yaml docker-compose.prod.yml "$tmp/no-healthcheck.yml" \
  'del doc["services"]["postgres"]["healthcheck"]'
expect_failure "a service without a health check" "service postgres: needs a healthcheck" \
  "$PYTHON" scripts/check_deploy.py --prod "$tmp/no-healthcheck.yml"
mutate_yaml docker-compose.prod.yml "$tmp/no-restart.yml" \
  'del doc["services"]["redis"]["restart"]'
expect_failure "a service without a restart policy" "service redis: needs restart" \
  "$PYTHON" scripts/check_deploy.py --prod "$tmp/no-restart.yml"
mutate_yaml docker-compose.prod.yml "$tmp/untrusting.yml" \
  'doc["services"]["chat2"]["environment"] = {k: v for k, v in doc["services"]["chat2"]["environment"].items() if k != "CHAT_TRUST_PROXY_HEADERS"}'
expect_failure "a replica without CHAT_TRUST_PROXY_HEADERS" "service chat2: needs CHAT_TRUST_PROXY_HEADERS" \
  "$PYTHON" scripts/check_deploy.py --prod "$tmp/untrusting.yml"
mutate_yaml docker-compose.prod.yml "$tmp/hasty.yml" \
  'doc["services"]["chat1"]["stop_grace_period"] = "5s"'
expect_failure "a replica killed before its shutdown grace" "stop_grace_period (5s) must exceed" \
  "$PYTHON" scripts/check_deploy.py --prod "$tmp/hasty.yml"
# shellcheck disable=SC2016 # a literal ${...} for compose, not for the shell
mutate_yaml docker-compose.prod.yml "$tmp/default-secret.yml" \
  'doc["services"]["postgres"]["environment"]["POSTGRES_PASSWORD"] = "${POSTGRES_PASSWORD:-postgres}"'
expect_failure "a secret with a default value" 'a secret must be required' \
  "$PYTHON" scripts/check_deploy.py --prod "$tmp/default-secret.yml"
mutate_yaml docker-compose.prod.yml "$tmp/chat3.yml" \
  'doc["services"]["chat3"] = doc["services"]["chat2"]'
expect_failure "a replica missing from nginx and Prometheus" "must be exactly the replicas" \
  "$PYTHON" scripts/check_deploy.py --prod "$tmp/chat3.yml"
grep -v 'server chat2:8080' docker/nginx.conf >"$tmp/nginx-one.conf"
expect_failure "an nginx upstream without chat2" "must be exactly the replicas" \
  "$PYTHON" scripts/check_deploy.py --nginx "$tmp/nginx-one.conf"
{ echo 'pid /run/nginx.pid;'; cat docker/nginx.conf; } >"$tmp/nginx-pid.conf"
# shellcheck disable=SC2016 # literal backquotes of the message
expect_failure "a main-level pid in nginx.conf" 'main-level `pid` is not allowed' \
  "$PYTHON" scripts/check_deploy.py --nginx "$tmp/nginx-pid.conf"
grep -v '          - chat2:8080' docker/prometheus/prometheus.yml >"$tmp/prometheus-one.yml"
expect_failure "Prometheus not scraping chat2" "must scrape exactly the replicas" \
  "$PYTHON" scripts/check_deploy.py --prometheus "$tmp/prometheus-one.yml"

# --- 3. nginx -t, as the integration test runs it ------------------------------------
# The test replaces chat1:8080/chat2:8080 with 127.0.0.1:PORT and `listen 80;` with
# `listen 127.0.0.1:PORT;`, and runs nginx unprivileged with its own prefix. Run as
# root (CI), nginx -t could pass on privileges the test lacks: drop them (nobody).
step "3. nginx -t on docker/nginx.conf ($NGINX, unprivileged)"
nginx_test() { # nginx_test CONF: runs nginx -t on a copy with the test's substitutions
  local prefix="$tmp/nginx-prefix"
  rm -rf "$prefix"
  mkdir -p "$prefix"
  sed -E -e 's/chat([0-9]+):8080/127.0.0.1:180\1/g' \
    -e 's/listen 80;/listen 127.0.0.1:18080;/g' "$1" >"$prefix/nginx.conf"
  local run=("$NGINX")
  if [ "$(id -u)" -eq 0 ]; then
    command -v setpriv >/dev/null 2>&1 || fail "setpriv (util-linux) is needed to run nginx -t unprivileged"
    chmod 755 "$tmp"
    chown -R 65534:65534 "$prefix"
    run=(setpriv --reuid=65534 --regid=65534 --clear-groups "$NGINX")
  fi
  # stdout to /dev/null: access_log /dev/stdout is opened by path, which an
  # unprivileged user may not do on a pipe the caller owns; the test owns its own.
  "${run[@]}" -t -q -e stderr -p "$prefix/" -c "$prefix/nginx.conf" -g "pid $prefix/nginx.pid;" \
    </dev/null >/dev/null
}
nginx_test docker/nginx.conf || fail "nginx -t refuses docker/nginx.conf (above)"
{
  cat docker/nginx.conf
  echo 'no_such_directive on;'
} >"$tmp/nginx-bad.conf"
expect_failure "an nginx.conf nginx cannot load" "no_such_directive" nginx_test "$tmp/nginx-bad.conf"

# --- 4. check-env.sh ------------------------------------------------------------------
step "4. docker/check-env.sh"
check_env() { # check_env ENV_FILE [KEY=VALUE...]: check-env.sh on that file, as
  # `make prod-up` runs it; KEY=VALUE (environment) wins over the file, as in compose.
  local file=$1
  shift
  env -i PATH="$PATH" "$@" sh docker/check-env.sh "$file"
}
check_env "$tmp/env" >/dev/null || fail "docker/check-env.sh refuses valid values"
expect_failure "the placeholders of .env.example" "placeholder" check_env .env.example
expect_failure "a missing secret" "CHAT_JWT_SECRET is not set" check_env "$tmp/env-no-jwt"
expect_failure "a short JWT secret" "CHAT_JWT_SECRET is too short" check_env "$tmp/env" CHAT_JWT_SECRET=short
expect_failure "a password that breaks the database URL" "goes into a URL" \
  check_env "$tmp/env" POSTGRES_PASSWORD=abc/def+ghi=jklmnopqrs

# --- 5. Dockerfile --------------------------------------------------------------------
step "5. docker/Dockerfile and .dockerignore"
check_dockerfile() { # check_dockerfile FILE
  # Join continuation lines, so an instruction is one line.
  local joined user
  joined=$(sed -e ':a' -e '/\\$/N; s/\\\n/ /; ta' "$1")
  user=$(grep -E '^USER[[:space:]]' <<<"$joined" | tail -n 1 | awk '{print $2}')
  case "$user" in
    '' | root | root:* | 0 | 0:*) echo "$1: the last USER must be a non-root user (has '${user:-none}')"; return 1 ;;
  esac
  grep -Eq '^HEALTHCHECK[[:space:]].*CMD[[:space:]]+\["chat-server", *"healthcheck"\]' <<<"$joined" ||
    { echo "$1: needs HEALTHCHECK ... CMD [\"chat-server\", \"healthcheck\"]"; return 1; }
  grep -Eq '^EXPOSE[[:space:]]+8080([[:space:]]|$)' <<<"$joined" ||
    { echo "$1: needs EXPOSE 8080"; return 1; }
}
check_dockerfile docker/Dockerfile || fail "docker/Dockerfile (above)"
for ignored in .git target .env; do
  grep -qx -- "$ignored" .dockerignore || fail ".dockerignore must list $ignored"
done
grep -v '^USER ' docker/Dockerfile >"$tmp/Dockerfile-root"
expect_failure "a Dockerfile running as root" "non-root" check_dockerfile "$tmp/Dockerfile-root"

step "all deployment checks passed"
