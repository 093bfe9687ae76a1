#!/usr/bin/env bash
# README's first command: install and start the gateway in development mode.
# Dask: the current release (requirements-dask.txt, 2026.7.1) in .venv-dask,
# installed by scripts/install-dask-venv.sh from a wheelhouse or the Python
# package index; when that is not possible, Debian's python3-distributed
# (2022.12.1). Both are supported. Then it builds the project and starts
# `scheduler-gateway run --dev` in the foreground with that interpreter: a
# development CA in certs/, a Dask scheduler on loopback, the gateway on 8786
# (Dask, mutual TLS) and 8787 (dashboard, HTTPS), and the exact commands to
# connect a worker and a client printed on stderr. Ctrl-C drains.
set -euo pipefail
cd "$(dirname "$0")/.."
SUDO=""
[ "$(id -u)" = 0 ] || SUDO="sudo"
python=.venv-dask/bin/python
# A venv needs python3-venv on Debian; without apt the install below simply falls back.
if command -v apt-get >/dev/null && ! /usr/bin/python3 -c 'import ensurepip' 2>/dev/null; then
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends python3-venv >/dev/null || true
fi
if ! bash scripts/install-dask-venv.sh; then
  echo "quickstart: could not install the current Dask into .venv-dask; using Debian's python3-distributed" >&2
  python=/usr/bin/python3
  if command -v apt-get >/dev/null && ! /usr/bin/python3 -c 'import distributed' 2>/dev/null; then
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends python3-distributed python3-prometheus-client >/dev/null
  fi
fi
npm ci --no-audit --no-fund
exec npx scheduler-gateway run --dev --dask-python "$python" "$@"
