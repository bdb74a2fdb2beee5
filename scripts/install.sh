#!/usr/bin/env bash
# Create or refresh the virtual environment with the project installed from the lock files.
# Used by the Makefile and the Dockerfile (through scripts/image-build.sh), so every install
# path is the same.
#   scripts/install.sh [VENV_DIR] [--st] [--dev]
#   (no option)  requirements/base.lock
#   --st         requirements/st.lock, and torch's CPU build
#   --dev        requirements/dev.lock (every extra: st, eval, dev), and torch's CPU build
# Every package is pinned with its hashes (pip, setuptools and wheel too); `make lock` regenerates
# the lock files. torch comes on its own from requirements/torch-cpu.txt: pip finds it where it
# is configured to look (this machine: /opt/wheels), or in TORCH_INDEX_URL when that is set (the
# Dockerfile: https://download.pytorch.org/whl/cpu).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
venv="${1:-.venv}"; shift || true
lock=base
torch=0
for arg in "$@"; do
  case "$arg" in
    --st) [ "$lock" = dev ] || lock=st; torch=1 ;;
    --dev) lock=dev; torch=1 ;;
    *) echo "install.sh: unknown option $arg" >&2; exit 2 ;;
  esac
done
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
pip=("$venv/bin/python" -m pip --quiet --disable-pip-version-check --no-input)
run_pip() {  # pip, less its warnings about configured package locations that do not exist
  { "${pip[@]}" "$@" 2>&1 1>&3 3>&- \
      | { grep -v 'is ignored: it is neither a file nor a directory' || true; } >&2; } 3>&1
}
run_pip install --require-hashes --no-deps -r "$root/requirements/$lock.lock"
if [ "$torch" = 1 ]; then
  torch_source=()
  if [ -n "${TORCH_INDEX_URL:-}" ]; then torch_source=(--index-url "$TORCH_INDEX_URL"); fi
  run_pip install --no-deps "${torch_source[@]}" -r "$root/requirements/torch-cpu.txt" || {
    echo "install.sh: no CPU build of torch found; set TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu" >&2
    exit 1
  }
fi
# The project itself, editable, built with the locked setuptools (no download, no isolation).
run_pip install --no-deps --no-build-isolation --editable "$root"
if ! problems="$("$venv/bin/python" -m pip check 2>&1)"; then
  echo "install.sh: the environment is inconsistent (is a lock file stale? run make lock):" >&2
  echo "$problems" >&2
  exit 1
fi
