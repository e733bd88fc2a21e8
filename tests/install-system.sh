#!/usr/bin/env bash
# What the tests need from Debian's packages: the PostgreSQL server the multi-worker tests
# start (on loopback, in a throwaway data directory) and the Chromium the service's browser
# test drives with Playwright. Installed when missing; needs root for that.
set -euo pipefail
missing=()
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing+=(postgresql)
[ -x /usr/bin/chromium ] || missing+=(chromium)
if [ ${#missing[@]} -eq 0 ]; then
    exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
    echo "not root: ${missing[*]} not installed; the tests that need them will be skipped" >&2
    exit 0
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq "${missing[@]}" >/dev/null
