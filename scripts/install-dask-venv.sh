#!/usr/bin/env bash
# Installs the current Dask (requirements-dask.txt) into .venv-dask with
# Debian's /usr/bin/python3 (CPython 3.11). Offline from a wheelhouse when one
# is found ($DASK_WHEELHOUSE, ../shared/wheelhouse beside the clone, or
# /work/shared/wheelhouse); from the Python package index otherwise.
# Idempotent: does nothing when the venv already has the pinned version.
set -euo pipefail
cd "$(dirname "$0")/.."
venv=.venv-dask
want=$(sed -nE 's/^distributed==([^ ]+)$/\1/p' requirements-dask.txt)
if [ -x "$venv/bin/python" ] && "$venv/bin/python" -c "import distributed, bokeh, sys; sys.exit(distributed.__version__ != '$want')" 2>/dev/null; then
  exit 0
fi
wheels=""
for d in "${DASK_WHEELHOUSE:-}" ../shared/wheelhouse /work/shared/wheelhouse; do
  if [ -n "$d" ] && ls "$d"/distributed-"$want"-*.whl >/dev/null 2>&1; then wheels=$(cd "$d" && pwd); break; fi
done
rm -rf "$venv"
/usr/bin/python3 -m venv "$venv"
if [ -n "$wheels" ]; then
  echo "installing Dask $want into $venv from $wheels"
  "$venv/bin/pip" install -q --no-index --find-links "$wheels" -r requirements-dask.txt
else
  echo "installing Dask $want into $venv from the package index"
  "$venv/bin/pip" install -q -r requirements-dask.txt
fi
"$venv/bin/python" -c "import distributed; print('Dask', distributed.__version__, 'in $venv')"
