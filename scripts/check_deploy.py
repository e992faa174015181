#!/usr/bin/env python3
"""Consistency checks of the deployment files (run by scripts/check-deploy.sh).

docker-compose config only proves the compose files parse. This checks what they
must say for the stacks to work and stay safe:

- every service has an image or a build, a restart policy and a health check;
  one-shot services (those others wait for with service_completed_successfully)
  instead restart "no" or on-failure;
- depends_on uses the long form, on services that exist, waiting for health (or
  for completion of a one-shot); no service outside a profile needs one inside it;
- chat-server services bind 0.0.0.0:8080, probe themselves with `chat-server
  healthcheck`, and get a stop_grace_period longer than CHAT_SHUTDOWN_GRACE;
- production: at least two replicas named chatN, each with the settings it needs
  (PostgreSQL, Redis, JWT secret, CHAT_ENV=prod, proxy headers trusted, no
  auto-migration), waiting for the migrate one-shot and for the database and Redis
  its URLs name; secrets are required (${VAR:?...}), and every service given one
  waits for the check-env one-shot, which checks each of them; every ${VAR} is
  documented in .env.example and every variable there is used;
- nginx.conf keeps the contract stated at its top, and its upstream, the nginx
  service's depends_on and Prometheus' targets list exactly the replicas;
- the Grafana dashboard parses and uses the provisioned data source.

Usage: check_deploy.py [--root DIR] [--prod FILE] [--dev FILE] [--nginx FILE]
                       [--prometheus FILE] [--env-example FILE] [...]
Exit status 1 with one line per violation; 0 when everything holds.
"""

import argparse
import json
import re
import sys
from pathlib import Path

try:
    import yaml
except ImportError:  # pragma: no cover - reported by check-deploy.sh first
    sys.exit("check_deploy.py: PyYAML is missing (Debian: apt-get install python3-yaml)")

PLACEHOLDER = "change-me"
DEFAULT_SHUTDOWN_GRACE = 10.0  # seconds; the server's default CHAT_SHUTDOWN_GRACE
WS_IDLE_CLOSE = 45.0  # seconds after which the server closes an idle socket
LONG_RUNNING_RESTART = {"always", "unless-stopped"}
VAR_RE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)([^}]*)\}")


class Checker:
    def __init__(self):
        self.errors = []
        self.warnings = []

    def error(self, where, message):
        self.errors.append(f"{where}: {message}")

    def warn(self, where, message):
        self.warnings.append(f"{where}: {message}")


# --- helpers -----------------------------------------------------------------------


def load_yaml(path):
    with open(path, encoding="utf-8") as f:
        return yaml.safe_load(f)


def env_of(service):
    """The environment of a compose service as a dict (list or mapping form)."""
    env = service.get("environment") or {}
    if isinstance(env, list):
        out = {}
        for item in env:
            key, _, value = str(item).partition("=")
            out[key] = value
        return out
    return {k: "" if v is None else str(v) for k, v in env.items()}


def depends_of(service):
    """depends_on as {name: condition}; the short (list) form maps to None."""
    deps = service.get("depends_on") or {}
    if isinstance(deps, list):
        return {name: None for name in deps}
    return {name: (spec or {}).get("condition") for name, spec in deps.items()}


def command_words(value):
    if value is None:
        return []
    if isinstance(value, str):
        return value.split()
    return [str(v) for v in value]


def healthcheck_test(service):
    hc = service.get("healthcheck")
    if not isinstance(hc, dict) or hc.get("disable"):
        return None
    test = command_words(hc.get("test"))
    if not test or test[0] == "NONE":
        return None
    return test


def parse_duration(text):
    """Seconds of a compose or chat-server duration ("15s", "1m30s", "90", "250ms")."""
    text = str(text).strip()
    if re.fullmatch(r"\d+(\.\d+)?", text):
        return float(text)
    units = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
    parts = re.findall(r"(\d+(?:\.\d+)?)(us|ms|s|m|h|d)", text)
    if not parts or "".join(n + u for n, u in parts) != text:
        return None
    return sum(float(n) * units[u] for n, u in parts)


def truthy(value):
    return str(value).strip().lower() in {"1", "true", "yes", "on"}


def falsy(value):
    return str(value).strip().lower() in {"0", "false", "no", "off"}


def variables_in(obj):
    """Every ${VAR...} in a loaded YAML document: {name: [modifier strings]}."""
    found = {}

    def walk(node):
        if isinstance(node, dict):
            for k, v in node.items():
                walk(k)
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)
        elif isinstance(node, str):
            for name, modifier in VAR_RE.findall(node.replace("$$", "")):
                found.setdefault(name, []).append(modifier)

    walk(obj)
    return found


def transitive_deps(services, name):
    seen, stack = set(), [name]
    while stack:
        for dep in depends_of(services.get(stack.pop(), {})):
            if dep not in seen:
                seen.add(dep)
                stack.append(dep)
    return seen


# --- nginx.conf ----------------------------------------------------------------------


def nginx_parse(text):
    """nginx.conf as a tree of (name, args, children-or-None, line)."""
    tokens = []  # (token, line)
    i, line, n = 0, 1, len(text)
    while i < n:
        c = text[i]
        if c == "\n":
            line += 1
            i += 1
        elif c.isspace():
            i += 1
        elif c == "#":
            while i < n and text[i] != "\n":
                i += 1
        elif c in "{};":
            tokens.append((c, line))
            i += 1
        elif c in "'\"":
            j = i + 1
            while j < n and text[j] != c:
                j += 2 if text[j] == "\\" else 1
            tokens.append((text[i + 1 : j], line))
            line += text[i:j].count("\n")
            i = j + 1
        else:
            j = i
            while j < n and not text[j].isspace() and text[j] not in "{};":
                j += 1
            tokens.append((text[i:j], line))
            i = j

    pos = 0

    def block():
        nonlocal pos
        items = []
        while pos < len(tokens):
            tok, ln = tokens[pos]
            if tok == "}":
                pos += 1
                return items
            words = []
            while pos < len(tokens) and tokens[pos][0] not in ("{", ";", "}"):
                words.append(tokens[pos][0])
                pos += 1
            if pos >= len(tokens) or not words:
                raise ValueError(f"line {ln}: unexpected end or empty directive")
            if tokens[pos][0] == ";":
                pos += 1
                items.append((words[0], words[1:], None, ln))
            elif tokens[pos][0] == "{":
                pos += 1
                items.append((words[0], words[1:], block(), ln))
            else:
                raise ValueError(f"line {ln}: missing ';'")
        return items

    tree = block()
    if pos != len(tokens):
        raise ValueError("unbalanced '}'")
    return tree


def nginx_walk(tree):
    for item in tree:
        yield item
        if item[2] is not None:
            yield from nginx_walk(item[2])


# The default CHAT_MAX_UPLOAD_MB (10) and the server's 64 KiB of form around the file.
UPLOAD_BODY_MIN = 10 * 1024 * 1024 + 64 * 1024


def parse_size(raw):
    """nginx sizes: 64k, 11m, 1g, or bytes; None if unreadable."""
    units = {"k": 1024, "m": 1024 * 1024, "g": 1024 * 1024 * 1024}
    raw = raw.lower()
    try:
        if raw and raw[-1] in units:
            return int(raw[:-1]) * units[raw[-1]]
        return int(raw)
    except ValueError:
        return None


def check_nginx(c, path, replicas):
    where = str(path)
    text = path.read_text(encoding="utf-8")
    try:
        tree = nginx_parse(text)
    except ValueError as e:
        c.error(where, f"does not parse: {e}")
        return
    top = {name for name, _, _, _ in tree}
    for required in ("events", "http"):
        if not any(n == required and ch is not None for n, _, ch, _ in tree):
            c.error(where, f"needs a top-level `{required} {{}}` block (contract)")
    for name in ("pid", "user", "daemon"):
        if name in top:
            c.error(where, f"main-level `{name}` is not allowed (contract: the test sets it)")
    for name, _, _, ln in nginx_walk(tree):
        if name == "include":
            c.error(where, f"line {ln}: no `include` allowed (contract)")
    listens = [args for name, args, _, _ in nginx_walk(tree) if name == "listen"]
    if listens != [["80"]] or "listen 80;" not in text:
        c.error(where, f"one server, listening with the exact string `listen 80;` (contract); has {listens}")
    for name in ("chat1:8080", "chat2:8080"):
        if name not in text:
            c.error(where, f"must contain `{name}` (contract)")

    upstreams = [item for item in nginx_walk(tree) if item[0] == "upstream"]
    if len(upstreams) != 1:
        c.error(where, f"needs exactly one upstream block, found {len(upstreams)}")
    else:
        servers = {args[0] for name, args, _, _ in upstreams[0][2] if name == "server" and args}
        wanted = {f"{r}:8080" for r in replicas}
        if servers != wanted:
            c.error(
                where,
                f"upstream servers {sorted(servers)} must be exactly the replicas {sorted(wanted)}",
            )

    directives = list(nginx_walk(tree))
    maps = [args for name, args, _, _ in directives if name == "map"]
    if ["$http_upgrade", "$connection_upgrade"] not in maps:
        c.error(where, "needs `map $http_upgrade $connection_upgrade` for WebSockets")
    set_headers = {
        args[0].lower(): args[1] if len(args) > 1 else ""
        for name, args, _, _ in directives
        if name == "proxy_set_header" and args
    }
    for header, value in (
        ("upgrade", "$http_upgrade"),
        ("connection", "$connection_upgrade"),
        ("x-forwarded-for", "$proxy_add_x_forwarded_for"),
        ("x-forwarded-proto", "$scheme"),
        ("x-real-ip", "$remote_addr"),
    ):
        if set_headers.get(header) != value:
            c.error(where, f"proxy_set_header {header} {value} is missing")
    if "host" not in set_headers:
        c.error(where, "proxy_set_header Host is missing")
    # A location with its own proxy_set_header inherits none from the server level.
    for name, args, children, ln in directives:
        if name == "location" and children and any(d[0] == "proxy_set_header" for d in children):
            c.error(where, f"line {ln}: set proxy headers at server level only (a location's own drop the others)")
    sizes = [args for name, args, _, _ in directives if name == "client_max_body_size"]
    # 64k once (the server's body limit); the uploads location sets its own (below).
    if sizes.count(["64k"]) != 1 or len(sizes) > 2:
        c.error(
            where,
            "client_max_body_size must be 64k (the server's body limit), set once, besides the uploads location's",
        )
    for name, args, _, ln in directives:
        if name == "proxy_next_upstream" and "non_idempotent" in args:
            c.error(where, f"line {ln}: proxy_next_upstream must not retry non-idempotent requests")

    locations = {" ".join(args): children or [] for name, args, children, _ in directives if name == "location"}
    metrics = [body for key, body in locations.items() if key.split()[-1] == "/metrics"]
    if not metrics or not any(
        d[0] == "deny" or (d[0] == "return" and d[1] and d[1][0] in {"403", "404"}) for d in metrics[0]
    ):
        c.error(where, "/metrics must be refused at the proxy (a location returning 404/403 or deny)")
    uploads = [body for key, body in locations.items() if "attachments" in key]
    if not uploads:
        c.error(where, "needs a location for attachment uploads (POST /api/v1/chats/{id}/attachments)")
    else:
        limits = [d[1][0] for d in uploads[0] if d[0] == "client_max_body_size" and d[1]]
        if not limits or parse_size(limits[0]) is None or parse_size(limits[0]) < UPLOAD_BODY_MIN:
            c.error(where, "the uploads location needs client_max_body_size of at least 11m (CHAT_MAX_UPLOAD_MB 10 + form)")
        if not any(d[0] == "proxy_request_buffering" and d[1] == ["off"] for d in uploads[0]):
            c.error(where, "the uploads location needs proxy_request_buffering off (the server bounds the body)")
    ws = [body for key, body in locations.items() if key.split()[-1] == "/ws"]
    if not ws:
        c.error(where, "needs a `location /ws` for the WebSocket endpoints")
    else:
        for timeout in ("proxy_read_timeout", "proxy_send_timeout"):
            values = [parse_duration(d[1][0]) for d in ws[0] if d[0] == timeout and d[1]]
            if not values or values[0] is None or values[0] <= WS_IDLE_CLOSE:
                c.error(
                    where,
                    f"location /ws needs {timeout} above {WS_IDLE_CLOSE:.0f}s (server idle close)",
                )


# --- compose files -------------------------------------------------------------------


def is_chat_server(service):
    build = service.get("build")
    dockerfile = build.get("dockerfile", "") if isinstance(build, dict) else ""
    image = str(service.get("image", ""))
    return dockerfile.endswith("docker/Dockerfile") or "chat-server" in image


def check_services(c, where, services):
    """Rules every compose file follows. Returns (one_shots, servers)."""
    one_shots = set()
    for name, svc in services.items():
        for dep, cond in depends_of(svc).items():
            if cond == "service_completed_successfully":
                one_shots.add(dep)

    servers = []
    for name, svc in services.items():
        at = f"{where}: service {name}"
        if not isinstance(svc, dict):
            c.error(at, "is not a mapping")
            continue
        if not svc.get("image") and not svc.get("build"):
            c.error(at, "needs an image or a build")
        restart = str(svc.get("restart", "")).strip()
        if name in one_shots:
            if restart != "no" and not restart.startswith("on-failure"):
                c.error(at, 'is a one-shot (others wait for it to complete): restart must be "no" or on-failure')
        else:
            if restart not in LONG_RUNNING_RESTART:
                c.error(at, f"needs restart: unless-stopped (or always), has {restart or 'none'}")
            if healthcheck_test(svc) is None:
                c.error(at, "needs a healthcheck")
        for dep, cond in depends_of(svc).items():
            if dep not in services:
                c.error(at, f"depends on unknown service {dep}")
                continue
            expected = "service_completed_successfully" if dep in one_shots else "service_healthy"
            if cond != expected:
                c.error(at, f"must wait for {dep} with condition: {expected} (has {cond})")
            if not svc.get("profiles") and services[dep].get("profiles"):
                c.error(at, f"is always started but depends on {dep}, which only runs in a profile")

        if is_chat_server(svc) and name not in one_shots:
            servers.append(name)
            env = env_of(svc)
            bind = env.get("CHAT_BIND", "0.0.0.0:8080")
            if bind not in {"0.0.0.0:8080", "[::]:8080"}:
                c.error(at, f"CHAT_BIND must be 0.0.0.0:8080 in a container (has {bind})")
            test = healthcheck_test(svc) or []
            if "chat-server" not in " ".join(test) or "healthcheck" not in test:
                c.error(at, "healthcheck must run `chat-server healthcheck`")
            grace = parse_duration(env.get("CHAT_SHUTDOWN_GRACE") or DEFAULT_SHUTDOWN_GRACE)
            stop = parse_duration(svc.get("stop_grace_period", "10s"))
            if grace is None or stop is None or stop <= grace:
                c.error(
                    at,
                    f"stop_grace_period ({svc.get('stop_grace_period', '10s (default)')}) must exceed "
                    f"CHAT_SHUTDOWN_GRACE ({env.get('CHAT_SHUTDOWN_GRACE') or '10s (default)'})",
                )
    return one_shots, servers


def url_host(url):
    m = re.search(r"@([A-Za-z0-9_.-]+):\d+", url) or re.match(r"[a-z]+://([A-Za-z0-9_.-]+):\d+", url)
    return m.group(1) if m else None


def env_example_vars(path):
    """{name: value} of .env.example: `NAME=value` lines, and `#NAME=default` (no
    space after the #) for optional ones; prose comments may mention NAME=x freely."""
    out = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        m = re.match(r"^#?([A-Z][A-Z0-9_]*)=(.*)$", line)
        if m:
            out[m.group(1)] = m.group(2).strip()
    return out


def check_prod(c, path, env_example, check_env_script, nginx_path, prom_path):
    where = str(path)
    doc = load_yaml(path)
    services = (doc or {}).get("services") or {}
    if not services:
        c.error(where, "no services")
        return
    one_shots, servers = check_services(c, where, services)

    replicas = sorted(s for s in servers if re.fullmatch(r"chat\d+", s))
    for s in servers:
        if s not in replicas:
            c.error(f"{where}: service {s}", "a chat-server replica must be named chatN (nginx and Prometheus list them)")
    if len(replicas) < 2:
        c.error(where, f"needs at least two replicas chat1, chat2 (has {replicas})")

    migrates = [s for s in one_shots if command_words(services[s].get("command")) == ["migrate"]]
    if len(migrates) != 1:
        c.error(where, "needs exactly one one-shot service running `migrate`")
    checkers = [
        s for s in one_shots
        if "check-env" in " ".join(command_words(services[s].get("entrypoint")) + command_words(services[s].get("command")))
    ]
    if len(checkers) != 1:
        c.error(where, "needs exactly one one-shot check-env service (docker/check-env.sh)")

    for r in replicas:
        at = f"{where}: service {r}"
        env = env_of(services[r])
        for key, test, want in (
            ("CHAT_DATABASE_URL", lambda v: v.startswith("postgres://"), "postgres://..."),
            ("CHAT_REDIS_URL", lambda v: v.startswith("redis://") or v.startswith("rediss://"), "redis://..."),
            ("CHAT_JWT_SECRET", lambda v: v.startswith("${CHAT_JWT_SECRET:?"), "${CHAT_JWT_SECRET:?...} (required)"),
            ("CHAT_ENV", lambda v: v.strip().lower() in {"prod", "production"}, "prod"),
            ("CHAT_TRUST_PROXY_HEADERS", truthy, "true (behind nginx)"),
            ("CHAT_AUTO_MIGRATE", falsy, "false (the migrate service runs them)"),
        ):
            if key not in env:
                c.error(at, f"needs {key}={want}")
            elif not test(env[key]):
                c.error(at, f"{key} must be {want}, is {env[key]!r}")
        deps = depends_of(services[r])
        for m in migrates:
            if deps.get(m) != "service_completed_successfully":
                c.error(at, f"must wait for {m} (service_completed_successfully)")
        for key in ("CHAT_DATABASE_URL", "CHAT_REDIS_URL"):
            host = url_host(env.get(key, ""))
            if host and host not in services:
                c.error(at, f"{key} names host {host}, which is not a service")
            elif host and deps.get(host) != "service_healthy":
                c.error(at, f"must wait for {host} (service_healthy), named by {key}")

    for m in migrates:
        env = env_of(services[m])
        if replicas and env.get("CHAT_DATABASE_URL") != env_of(services[replicas[0]]).get("CHAT_DATABASE_URL"):
            c.error(f"{where}: service {m}", "must migrate the database the replicas use (same CHAT_DATABASE_URL)")

    # Secrets: the .env.example placeholders.
    example = env_example_vars(env_example)
    secrets = sorted(k for k, v in example.items() if PLACEHOLDER in v.lower())
    if not secrets:
        c.error(str(env_example), f"no required secret (value containing {PLACEHOLDER!r}) found")
    used = variables_in(doc)
    script = check_env_script.read_text(encoding="utf-8")
    for secret in secrets:
        if secret not in used:
            c.error(str(env_example), f"{secret} is a secret there but docker-compose.prod.yml never uses it")
        for modifier in used.get(secret, []):
            if not modifier.startswith(":?"):
                c.error(where, f"${{{secret}{modifier}}}: a secret must be required, ${{{secret}:?message}}")
        if not re.search(rf"\bcheck {secret}\b", script):
            c.error(str(check_env_script), f"does not check {secret}")
        for ck in checkers:
            if secret not in env_of(services[ck]):
                c.error(f"{where}: service {ck}", f"must receive {secret} to check it")
    for name, svc in services.items():
        if name in checkers:
            continue
        given = set(variables_in(svc)) & set(secrets)
        if given and not set(checkers) & transitive_deps(services, name):
            c.error(f"{where}: service {name}", f"receives {sorted(given)} but does not wait for check-env")
    for var in sorted(set(used) - set(example)):
        c.error(where, f"${{{var}}} is not documented in {env_example.name}")
    for var in sorted(set(example) - set(used)):
        c.error(str(env_example), f"{var} is listed but docker-compose.prod.yml does not use it")

    # nginx in front of exactly the replicas.
    proxies = [
        s for s, svc in services.items()
        if any(str(v).endswith("nginx.conf:ro") or ":/etc/nginx/nginx.conf" in str(v) for v in svc.get("volumes") or [])
    ]
    if len(proxies) != 1:
        c.error(where, "needs one nginx service mounting docker/nginx.conf")
    for p in proxies:
        deps = depends_of(services[p])
        for r in replicas:
            if deps.get(r) != "service_healthy":
                c.error(f"{where}: service {p}", f"must wait for replica {r} (service_healthy)")
        if not services[p].get("ports"):
            c.error(f"{where}: service {p}", "must publish a port")
    for name, svc in services.items():
        if name not in proxies and svc.get("ports") and not all(
            str(port).startswith("127.0.0.1:") for port in svc["ports"]
        ):
            c.error(f"{where}: service {name}", "only nginx may publish a port beyond the loopback")
    check_nginx(c, nginx_path, replicas)

    # Prometheus scrapes exactly the replicas.
    prom = load_yaml(prom_path) or {}
    targets = set()
    for job in prom.get("scrape_configs") or []:
        for sc in job.get("static_configs") or []:
            targets.update(str(t) for t in sc.get("targets") or [])
    chat_targets = {t for t in targets if re.fullmatch(r"chat\d+:\d+", t)}
    wanted = {f"{r}:8080" for r in replicas}
    if chat_targets != wanted:
        c.error(str(prom_path), f"scrapes {sorted(chat_targets)}, must scrape exactly the replicas {sorted(wanted)}")
    monitors = [s for s, svc in services.items() if "prometheus" in str(svc.get("image", ""))]
    for m in monitors:
        if services[m].get("profiles") != ["monitoring"]:
            c.error(f"{where}: service {m}", "belongs to the monitoring profile")
    return replicas


def check_dev(c, path):
    where = str(path)
    services = (load_yaml(path) or {}).get("services") or {}
    if not services:
        c.error(where, "no services")
        return
    _, servers = check_services(c, where, services)
    if len(servers) != 1:
        c.error(where, f"needs one chat-server service, has {servers}")
    for s in servers:
        at = f"{where}: service {s}"
        env = env_of(services[s])
        deps = depends_of(services[s])
        if falsy(env.get("CHAT_AUTO_MIGRATE", "true")):
            c.error(at, "must migrate on start (CHAT_AUTO_MIGRATE true)")
        for key, scheme in (("CHAT_DATABASE_URL", "postgres://"), ("CHAT_REDIS_URL", "redis://")):
            value = env.get(key, "")
            host = url_host(value)
            if not value.startswith(scheme) or host not in services:
                c.error(at, f"{key} must be a {scheme} URL naming a service of this file")
            elif deps.get(host) != "service_healthy":
                c.error(at, f"must wait for {host} (service_healthy)")
        if not services[s].get("ports"):
            c.error(at, "must publish its port")


def check_dashboard(c, dashboard, datasources, root):
    where = str(dashboard)
    try:
        dash = json.loads(dashboard.read_text(encoding="utf-8"))
    except ValueError as e:
        c.error(where, f"is not JSON: {e}")
        return
    uids = {d.get("uid") for d in (load_yaml(datasources) or {}).get("datasources") or []}
    panels = [p for p in dash.get("panels") or [] if p.get("type") != "row"]
    if not panels:
        c.error(where, "has no panels")
    metrics = set()
    for p in panels:
        at = f"{where}: panel {p.get('title')!r}"
        if (p.get("datasource") or {}).get("uid") not in uids:
            c.error(at, f"uses a data source other than the provisioned {sorted(uids)}")
        exprs = [t.get("expr") for t in p.get("targets") or []]
        if not exprs or not all(exprs):
            c.error(at, "needs at least one query, each with an expr")
        for e in exprs:
            metrics.update(re.findall(r"\b((?:chat|http)_[a-z_]+?)(?:_bucket|_sum|_count)?\b(?=\s*[{\[)])", e or ""))
    # The server may not export every series yet: say which, without failing.
    sources = "".join(p.read_text(encoding="utf-8", errors="replace") for p in (root / "crates").rglob("*.rs"))
    missing = sorted(m for m in metrics if m not in sources)
    if missing:
        c.warn(where, "metrics not (yet) exported by the server: " + ", ".join(missing))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--root", type=Path, default=Path(__file__).resolve().parent.parent)
    ap.add_argument("--prod", type=Path)
    ap.add_argument("--dev", type=Path)
    ap.add_argument("--nginx", type=Path)
    ap.add_argument("--prometheus", type=Path)
    ap.add_argument("--env-example", type=Path)
    ap.add_argument("--check-env", type=Path)
    ap.add_argument("--dashboard", type=Path)
    ap.add_argument("--datasources", type=Path)
    a = ap.parse_args()
    r = a.root
    c = Checker()
    try:
        check_prod(
            c,
            a.prod or r / "docker-compose.prod.yml",
            a.env_example or r / ".env.example",
            a.check_env or r / "docker/check-env.sh",
            a.nginx or r / "docker/nginx.conf",
            a.prometheus or r / "docker/prometheus/prometheus.yml",
        )
        check_dev(c, a.dev or r / "docker-compose.dev.yml")
        check_dashboard(
            c,
            a.dashboard or r / "docker/grafana/dashboards/chat-server.json",
            a.datasources or r / "docker/grafana/provisioning/datasources/prometheus.yml",
            r,
        )
    except (OSError, yaml.YAMLError) as e:
        c.error("check_deploy.py", str(e))
    for w in c.warnings:
        print(f"warning: {w}", file=sys.stderr)
    for e in c.errors:
        print(f"error: {e}", file=sys.stderr)
    if c.errors:
        print(f"check_deploy.py: {len(c.errors)} problem(s)", file=sys.stderr)
        return 1
    print("check_deploy.py: compose files, nginx.conf, prometheus.yml, .env.example and dashboard agree")
    return 0


if __name__ == "__main__":
    sys.exit(main())
