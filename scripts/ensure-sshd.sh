#!/bin/sh
# Install the OpenSSH server and client from Debian's packages when they are missing.
# Idempotent and fast when both are already there (no apt call at all). The ssh-marked tests
# start their own throwaway sshd on 127.0.0.1; this script never starts or enables a service.
set -eu

have() { command -v "$1" >/dev/null 2>&1 || [ -x "/usr/sbin/$1" ]; }

if have sshd && have ssh && have scp && have ssh-keygen; then
    exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
    SUDO="sudo"
    command -v sudo >/dev/null 2>&1 || {
        echo "ensure-sshd: openssh-server/openssh-client are missing and this is not root;" \
             "install them with: apt-get install openssh-server openssh-client" >&2
        exit 1
    }
else
    SUDO=""
fi
command -v apt-get >/dev/null 2>&1 || {
    echo "ensure-sshd: apt-get not found; install the OpenSSH server (sshd) and client" \
         "with this system's package manager" >&2
    exit 1
}

export DEBIAN_FRONTEND=noninteractive
# policy-rc.d keeps the package's post-install from starting a system sshd (not wanted in CI
# containers, and it would hold port 22); removed again afterwards unless it was there before.
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
$SUDO apt-get install -y -qq --no-install-recommends openssh-server openssh-client >/dev/null
have sshd || { echo "ensure-sshd: sshd still missing after apt-get install" >&2; exit 1; }
echo "ensure-sshd: installed $(/usr/sbin/sshd -V 2>&1 | head -n1 || true)"
