#!/usr/bin/env bash
# The PostgreSQL server the multi-worker tests start (on loopback, in a throwaway data
# directory). Installed from Debian's packages when it is missing; needs root for that.
set -euo pipefail
if ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
    exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
    echo "PostgreSQL server not installed and not root: the PostgreSQL tests will be skipped" >&2
    exit 0
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq postgresql >/dev/null
