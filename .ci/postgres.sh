#!/usr/bin/env bash
# A throwaway PostgreSQL cluster for ferry's tests.
#
#   eval "$(.ci/postgres.sh start)"   # installs PostgreSQL if missing, starts a cluster,
#                                     # prints the exports the tests read
#   cargo test                        # now runs the PostgreSQL tests too
#   .ci/postgres.sh stop              # stops the cluster and removes its folder
#
# The cluster lives in a temporary folder, listens on 127.0.0.1 on a free
# port (and on a Unix socket in its folder), trusts local connections, and
# has a database `ferry_test`. Each test makes its own database in it.
# As root (CI), the server runs as the `postgres` user; otherwise as you.
# Status goes to stderr; only the export lines go to stdout.
set -euo pipefail

STATE_FILE="${FERRY_PG_STATE:-${TMPDIR:-/tmp}/ferry-test-postgres.dir}"

log() { echo "postgres.sh: $*" >&2; }

# The folder of initdb and pg_ctl: on PATH, else the newest Debian install.
find_bindir() {
    local d
    for d in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
        if [ -x "$d/initdb" ]; then echo "$d"; return 0; fi
    done
    if command -v pg_config >/dev/null 2>&1 && [ -x "$(pg_config --bindir)/initdb" ]; then
        pg_config --bindir; return 0
    fi
    return 1
}

install_postgres() {
    if [ "$(id -u)" != 0 ]; then
        log "PostgreSQL is not installed; install it with: sudo apt-get install -y postgresql"
        exit 1
    fi
    log "installing PostgreSQL from Debian's packages"
    apt-get update >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y postgresql >&2
}

# Run a command as the cluster's owner.
as_owner() {
    if [ "$(id -u)" = 0 ]; then
        runuser -u postgres -- "$@"
    else
        "$@"
    fi
}

free_port() {
    local p
    for p in $(seq 55432 55532); do
        if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then echo "$p"; return 0; fi
    done
    return 1
}

start() {
    local bindir dir port user
    bindir="$(find_bindir || true)"
    if [ -z "$bindir" ]; then
        install_postgres
        bindir="$(find_bindir)"
    fi
    dir="$(mktemp -d "${TMPDIR:-/tmp}/ferry-pg.XXXXXX")"
    if [ "$(id -u)" = 0 ]; then
        id postgres >/dev/null 2>&1 || useradd --system --home-dir /var/lib/postgresql postgres
        chown postgres "$dir"
        user=postgres
    else
        user="$(id -un)"
    fi
    chmod 700 "$dir"
    port="$(free_port)"
    log "initdb into $dir ($("$bindir/postgres" --version))"
    as_owner "$bindir/initdb" -D "$dir/data" -U "$user" --auth=trust --encoding=UTF8 --locale=C >/dev/null
    as_owner "$bindir/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 \
        -o "-c listen_addresses=127.0.0.1 -c port=$port -c unix_socket_directories=$dir -c max_connections=400 -c fsync=off" \
        start >/dev/null
    as_owner "$bindir/psql" -h 127.0.0.1 -p "$port" -U "$user" -d postgres -qAt \
        -c "CREATE DATABASE ferry_test" >/dev/null
    echo "$dir" >"$STATE_FILE"
    echo "$bindir" >"$dir/bindir"
    log "listening on 127.0.0.1:$port and in $dir; stop it with .ci/postgres.sh stop"
    echo "export FERRY_TEST_POSTGRES_URL='postgres://$user@127.0.0.1:$port/ferry_test'"
    echo "export FERRY_TEST_POSTGRES_SOCKET_URL='postgresql://$user@localhost:$port/ferry_test?host=$dir'"
    echo "export FERRY_TEST_POSTGRES_DATA='$dir/data'"
    echo "export FERRY_TEST_POSTGRES_BIN='$bindir'"
}

stop() {
    local dir
    dir="${1:-$(cat "$STATE_FILE" 2>/dev/null || true)}"
    if [ -z "$dir" ] || [ ! -d "$dir" ]; then
        log "no cluster to stop"
        return 0
    fi
    as_owner "$(cat "$dir/bindir")/pg_ctl" -D "$dir/data" -m immediate stop >/dev/null 2>&1 || true
    rm -rf "$dir"
    rm -f "$STATE_FILE"
    log "stopped and removed $dir"
}

case "${1:-}" in
    start) start ;;
    stop) stop "${2:-}" ;;
    *) echo "usage: $0 start|stop [DIR]" >&2; exit 2 ;;
esac
