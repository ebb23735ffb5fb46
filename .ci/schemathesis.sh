#!/usr/bin/env bash
# A short schemathesis run against `ferry serve` on loopback (issue 14's API
# fuzzing, the CI version of the README's "### schemathesis" run).
#
#   bash .ci/schemathesis.sh            # after `cargo test`, which builds target/debug/ferry
#
# It installs a pinned schemathesis into a virtualenv under the target dir
# (reused while the pin holds; Debian's python3-venv is installed when missing
# and we are root), copies fixtures/acme into a temporary folder, creates and
# applies acme-dev, makes a token, starts the debug `ferry serve` on
# 127.0.0.1 (a free port), and runs schemathesis against /openapi.json for a
# bounded time with a fixed seed. Every check of schemathesis runs; any 5xx,
# response that contradicts the document, or schema-violating request that is
# accepted fails the run (non-zero exit). `.ci/schemathesis.toml` holds the
# one allowance (and why), `.ci/schemathesis_hooks.py` sends ZIP uploads as
# raw bytes. The live-sync routes are left out (see the README's
# "### schemathesis"). The server is stopped and the folder removed on every
# exit. Nothing is skipped: a missing python3, pip or network fails loudly.
#
# Knobs: FERRY_BIN (the ferry binary), SCHEMATHESIS_MAX_TIME (seconds, 60),
# SCHEMATHESIS_SEED (1), SCHEMATHESIS_VENV (the virtualenv's folder).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$(pwd)"

VERSION=4.32.5
TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
FERRY_BIN="${FERRY_BIN:-$TARGET_DIR/debug/ferry}"
VENV="${SCHEMATHESIS_VENV:-$TARGET_DIR/schemathesis-venv}"
MAX_TIME="${SCHEMATHESIS_MAX_TIME:-60}"
SEED="${SCHEMATHESIS_SEED:-1}"

log() { echo "schemathesis.sh: $*" >&2; }

if [ ! -x "$FERRY_BIN" ]; then
    log "no ferry binary at $FERRY_BIN; run \`cargo test\` (or \`cargo build\`) first, or set FERRY_BIN"
    exit 1
fi

# python3 and its venv module (Debian ships venv's pip in python3-venv).
apt_python() {
    if [ "$(id -u)" != 0 ]; then
        log "python3 with a working venv is missing; install it with: sudo apt-get install -y python3 python3-venv"
        exit 1
    fi
    log "installing python3 and python3-venv from Debian's packages"
    DEBIAN_FRONTEND=noninteractive apt-get update >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends python3 python3-venv >&2
}
command -v python3 >/dev/null 2>&1 || apt_python

# The pinned schemathesis, in a virtualenv of its own (kept while the pin holds).
if [ "$("$VENV/bin/schemathesis" --version 2>/dev/null || true)" != "schemathesis, version $VERSION" ]; then
    log "installing schemathesis $VERSION into $VENV"
    rm -rf "$VENV"
    if ! python3 -m venv "$VENV" >&2; then
        rm -rf "$VENV"
        apt_python
        python3 -m venv "$VENV" >&2
    fi
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check "schemathesis==$VERSION" >&2
fi
"$VENV/bin/schemathesis" --version >&2

WORK="$(mktemp -d "${TMPDIR:-/tmp}/ferry-schemathesis.XXXXXX")"
SERVER_PID=""
cleanup() {
    if [ -n "$SERVER_PID" ] && kill -0 "$SERVER_PID" 2>/dev/null; then
        kill -TERM "$SERVER_PID" 2>/dev/null || true
        for _ in $(seq 1 100); do kill -0 "$SERVER_PID" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$SERVER_PID" 2>/dev/null || true
    fi
    rm -rf "$WORK"
}
trap cleanup EXIT

# The store: fixtures/acme with acme-dev applied, acme-staging and acme-prod empty, root as owner.
cp -a "$ROOT/fixtures/acme" "$WORK/repo"
ferry() {
    (cd "$WORK/repo" && env -u FERRY_STORE NO_COLOR=1 \
        GIT_AUTHOR_NAME="${GIT_AUTHOR_NAME:-ferry-ci}" GIT_AUTHOR_EMAIL="${GIT_AUTHOR_EMAIL:-ferry-ci@example.invalid}" \
        GIT_COMMITTER_NAME="${GIT_COMMITTER_NAME:-ferry-ci}" GIT_COMMITTER_EMAIL="${GIT_COMMITTER_EMAIL:-ferry-ci@example.invalid}" \
        "$FERRY_BIN" "$@")
}
ferry tenant create acme-dev --environment dev >/dev/null
ferry apply --tenant acme-dev --yes >/dev/null
for t in acme-staging acme-prod; do ferry tenant create "$t" >/dev/null; done
ferry --as root user add root >/dev/null
TOKEN="$(ferry --as root token create --user root --tenant acme-dev)"

# The server on a free loopback port; it prints "ferry: listening on http://HOST:PORT".
: >"$WORK/server.log"
(cd "$WORK/repo" && exec env -u FERRY_STORE NO_COLOR=1 "$FERRY_BIN" serve --addr 127.0.0.1:0) \
    >"$WORK/server.out" 2>"$WORK/server.log" &
SERVER_PID=$!
BASE=""
for _ in $(seq 1 300); do
    BASE="$(sed -n 's/^ferry: listening on //p' "$WORK/server.log" | head -n 1)"
    [ -n "$BASE" ] && break
    if ! kill -0 "$SERVER_PID" 2>/dev/null; then
        log "ferry serve exited before listening:"
        cat "$WORK/server.log" >&2
        exit 1
    fi
    sleep 0.1
done
if [ -z "$BASE" ]; then
    log "ferry serve did not listen within 30 s:"
    cat "$WORK/server.log" >&2
    exit 1
fi
log "ferry serve on $BASE; schemathesis for ${MAX_TIME} s, seed $SEED"

# The live-sync routes are left out: they reach out to the made-up source
# hosts they are given, and refuse them with 400s by design (README).
status=0
(cd "$WORK" && PYTHONPATH="$ROOT/.ci" SCHEMATHESIS_HOOKS=schemathesis_hooks \
    timeout --kill-after=30 "$((MAX_TIME + 300))" \
    "$VENV/bin/schemathesis" --config-file "$ROOT/.ci/schemathesis.toml" run "$BASE/openapi.json" \
    -H "Authorization: Bearer $TOKEN" \
    --exclude-path-regex '^/backup/import/sync' \
    --max-time "$MAX_TIME" --seed "$SEED" -w 1 \
    --generation-database none --no-color) || status=$?

if grep -q 'panicked' "$WORK/server.log"; then
    log "ferry serve panicked:"
    grep -A5 'panicked' "$WORK/server.log" >&2
    status=1
fi
if [ "$status" != 0 ]; then
    log "FAILED (exit $status): a 5xx, a response that contradicts /openapi.json, or a broken setup; see above"
    exit "$status"
fi
log "passed"
