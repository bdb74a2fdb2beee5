#!/usr/bin/env bash
# Create or refresh the virtual environment with the project installed.
# Used by the Makefile and (later) the Dockerfile, so every install path is the same.
#   scripts/install.sh [VENV_DIR] [--st] [--dev]
set -euo pipefail
venv="${1:-.venv}"; shift || true
extras=()
want_st=0
for arg in "$@"; do
  case "$arg" in
    --st) extras+=(st); want_st=1 ;;
    --dev) extras+=(dev) ;;
    *) echo "install.sh: unknown option $arg" >&2; exit 2 ;;
  esac
done
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
pip=("$venv/bin/python" -m pip install --quiet --disable-pip-version-check)
"${pip[@]}" --upgrade pip setuptools wheel
if [ "$want_st" = 1 ]; then
  # The CPU build of torch comes from a local file; a bare "torch" would pull CUDA wheels.
  "${pip[@]}" "torch==2.13.0"
fi
spec="."
if [ ${#extras[@]} -gt 0 ]; then spec=".[$(IFS=,; echo "${extras[*]}")]"; fi
"${pip[@]}" -e "$spec"
