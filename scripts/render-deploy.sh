#!/usr/bin/env bash
# Regenerates the packaging's generated files (README "Install"): the chart's copies of crds/
# and of the CF ClusterRoles (`kubefoundry rbac`), and deploy/ (the chart rendered with default
# values by real Helm 4, through helm-python-sdk, into plain manifests plus kustomization.yaml).
# Tests fail when any of them drifts. Uses the e2e venv (created on first use) and the debug
# binary unless KUBEFOUNDRY_BIN names one.
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
cd "$repo"

e2e/python/run.sh --venv-only
if [ -z "${KUBEFOUNDRY_BIN:-}" ]; then
  cargo build --quiet --locked -p kubefoundry
  export KUBEFOUNDRY_BIN="$repo/target/debug/kubefoundry"
fi
PYTHONDONTWRITEBYTECODE=1 "${KUBEFOUNDRY_VENV:-$repo/.venv}/bin/python" e2e/python/deploy_render.py
