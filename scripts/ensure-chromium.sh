#!/bin/sh
# Install Chromium from Debian's packages when it is missing, so that the report test
# (tests/report/test_report_chromium.py) opens report.html in a real headless browser in CI.
# Idempotent and fast when a browser is already there (no apt call at all); a no-op where it
# cannot install (not root and no sudo, no apt-get): the test then skips and says why.
set -eu

have() { command -v "$1" >/dev/null 2>&1; }

if have chromium || have chromium-browser || have google-chrome; then
    exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
    if ! have sudo; then
        echo "ensure-chromium: Chromium is missing and this is not root; install it with:" \
             "apt-get install chromium (the report's browser test is skipped until then)" >&2
        exit 0
    fi
    SUDO="sudo"
else
    SUDO=""
fi
if ! have apt-get; then
    echo "ensure-chromium: apt-get not found; install Chromium with this system's package manager" \
         "(the report's browser test is skipped until then)" >&2
    exit 0
fi

export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq || { echo "ensure-chromium: apt-get update failed (no network?); the browser test is skipped" >&2; exit 0; }
if ! $SUDO apt-get install -y -qq --no-install-recommends chromium >/dev/null; then
    echo "ensure-chromium: apt-get install chromium failed; the browser test is skipped" >&2
    exit 0
fi
echo "ensure-chromium: installed $(chromium --version 2>/dev/null || echo chromium)"
