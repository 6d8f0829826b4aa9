#!/usr/bin/env bash
# The Helm and Python-client e2e suites against `kubefoundry sim`: creates (or reuses) the venv
# at <repo>/.venv, installs the pinned requirements when they changed, builds the sim binary
# unless KUBEFOUNDRY_BIN names one, and runs pytest quietly. Extra arguments go to pytest;
# `run.sh --venv-only` stops once the venv is ready (scripts/render-deploy.sh uses it).
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
venv="${KUBEFOUNDRY_VENV:-$repo/.venv}"
python="${PYTHON:-python3}"
requirements="$here/requirements.txt"

say() { printf '%s\n' "$*" >&2; }

if ! command -v "$python" >/dev/null; then
  say "run.sh: $python is required (Debian: apt-get install python3)"
  exit 1
fi

# Debian's python3 lacks ensurepip until python3-venv is installed; `python3 -m venv` then
# fails and leaves a venv without pip behind.
if [ ! -x "$venv/bin/pip" ]; then
  rm -rf "$venv"
  if ! "$python" -m venv "$venv" >/dev/null 2>&1; then
    rm -rf "$venv"
    if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null; then
      say "run.sh: installing python3-venv"
      DEBIAN_FRONTEND=noninteractive apt-get update -qq
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null
      "$python" -m venv "$venv"
    else
      say "run.sh: '$python -m venv' failed; install python3-venv (as root: apt-get install python3-venv)"
      exit 1
    fi
  fi
fi

# Reinstall only when requirements.txt changed since the last successful install.
stamp="$venv/.kubefoundry-requirements.sha256"
want="$(sha256sum "$requirements" | cut -d' ' -f1)"
if [ "$(cat "$stamp" 2>/dev/null || true)" != "$want" ]; then
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-input -r "$requirements"
  printf '%s\n' "$want" >"$stamp"
fi
if [ "${1:-}" = "--venv-only" ]; then
  exit 0
fi

if [ -z "${KUBEFOUNDRY_BIN:-}" ]; then
  (cd "$repo" && cargo build --quiet --locked -p kubefoundry)
  export KUBEFOUNDRY_BIN="${CARGO_TARGET_DIR:-$repo/target}/debug/kubefoundry"
fi

cd "$here"
# No bytecode caches in the source tree; pytest.ini already turns off .pytest_cache.
export PYTHONDONTWRITEBYTECODE=1
exec "$venv/bin/python" -m pytest -q "$@"
