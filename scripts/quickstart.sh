#!/usr/bin/env bash
# README's first command: install and start the gateway on its embedded
# defaults. Installs Debian's Dask when apt-get is available (the gateway then
# runs a development scheduler on loopback), builds the project, and starts
# `scheduler-gateway run` in the foreground: a development CA in certs/, the
# gateway on 8786 (Dask, mutual TLS) and 8787 (dashboard, HTTPS), and the exact
# commands to connect a worker and a client printed on stderr. Ctrl-C drains.
set -euo pipefail
cd "$(dirname "$0")/.."
SUDO=""
[ "$(id -u)" = 0 ] || SUDO="sudo"
if command -v apt-get >/dev/null && ! /usr/bin/python3 -c 'import distributed' 2>/dev/null; then
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends python3-distributed python3-prometheus-client >/dev/null
fi
npm ci --no-audit --no-fund
exec npx scheduler-gateway run "$@"
