#!/bin/sh
# Install the PostgreSQL server binaries from Debian's packages when they are missing, so that
# the postgres-marked tests (edgeslim tune with several workers on one study) run in CI.
# Idempotent and fast when they are already there (no apt call at all). The tests start their
# own throwaway server on 127.0.0.1 (tests/tune/conftest.py); this script never starts or
# enables a service, and is a no-op where it cannot install (not root, no sudo, no apt-get).
set -eu

have_server() {
    for d in /usr/lib/postgresql/*/bin; do
        if [ -x "$d/initdb" ] && [ -x "$d/pg_ctl" ]; then
            return 0
        fi
    done
    command -v initdb >/dev/null 2>&1 && command -v pg_ctl >/dev/null 2>&1
}

if have_server; then
    exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
    if ! command -v sudo >/dev/null 2>&1; then
        echo "ensure-postgres: PostgreSQL is missing and this is not root; install it with:" \
             "apt-get install postgresql (the postgres tests are skipped until then)" >&2
        exit 0
    fi
    SUDO="sudo"
else
    SUDO=""
fi
if ! command -v apt-get >/dev/null 2>&1; then
    echo "ensure-postgres: apt-get not found; install the PostgreSQL server with this system's" \
         "package manager (the postgres tests are skipped until then)" >&2
    exit 0
fi

export DEBIAN_FRONTEND=noninteractive
# policy-rc.d keeps the package's post-install from starting a system server (not wanted in CI
# containers, and it would hold port 5432); removed again afterwards unless it was there before.
POLICY=/usr/sbin/policy-rc.d
ADDED_POLICY=0
if [ ! -e "$POLICY" ]; then
    printf '#!/bin/sh\nexit 101\n' | $SUDO tee "$POLICY" >/dev/null
    $SUDO chmod +x "$POLICY"
    ADDED_POLICY=1
fi
cleanup() { [ "$ADDED_POLICY" = 1 ] && $SUDO rm -f "$POLICY"; return 0; }
trap cleanup EXIT

$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends postgresql >/dev/null
have_server || { echo "ensure-postgres: initdb/pg_ctl still missing after apt-get install" >&2; exit 1; }
echo "ensure-postgres: installed $(ls -d /usr/lib/postgresql/*/bin | tail -n1)"
