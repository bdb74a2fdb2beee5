#!/usr/bin/env bash
# Regenerate the lock files from pyproject.toml (`make lock`); scripts/install.sh installs from them.
#   scripts/lock.sh [UV] [uv pip compile options, e.g. --upgrade or --upgrade-package NAME]
#   requirements/dev.lock   base + st + eval + dev extras (what `make test` installs)
#   requirements/st.lock    base + st                     (the image with a baked model)
#   requirements/base.lock  base                          (`make run`, the default image)
# Each pins every package with its hashes, pip/setuptools/wheel included (requirements/tools.in),
# for CPython 3.11 on x86_64 Linux. st.lock and base.lock take dev.lock's versions, so the three
# never disagree. torch is left out: the CPU build in requirements/torch-cpu.txt is installed on
# its own. Resolving needs that wheel's metadata: TORCH_FIND_LINKS is a directory or page that
# holds it (default /opt/wheels; elsewhere https://download.pytorch.org/whl/cpu/torch/).
# Versions already in a lock file are kept unless an --upgrade option asks otherwise.
set -euo pipefail
cd "$(dirname "$0")/.."
uv="${1:-uv}"; shift || true
torch_links="${TORCH_FIND_LINKS:-/opt/wheels}"
out=requirements
common=(--quiet --generate-hashes --python-version 3.11 --python-platform x86_64-manylinux_2_28
        --no-emit-package torch --constraints "$out/torch-cpu.txt" --find-links "$torch_links"
        --custom-compile-command "make lock" "$@")
compile() {  # compile OUTPUT [extra options]: write OUTPUT only when the resolution succeeds
  local target="$1"; shift
  if [ -f "$target" ]; then cp "$target" "$target.new"; fi  # its pins are uv's preferences
  "$uv" pip compile pyproject.toml "$out/tools.in" "${common[@]}" "$@" -o "$target.new"
  if grep -Eiq '^(torch|triton|nvidia-[a-z0-9-]+)==' "$target.new"; then
    echo "lock.sh: $target would hold torch, triton or CUDA packages" >&2; exit 1
  fi
  if cmp -s "$target.new" "$target"; then rm "$target.new"; else mv "$target.new" "$target"; fi
}
trap 'rm -f "$out"/*.lock.new "$out/.dev-pins.txt"' EXIT
compile "$out/dev.lock" --extra st --extra eval --extra dev
# The subsets are pinned to dev.lock's versions (constraints without hashes).
sed -n 's/^\([A-Za-z0-9_.-]*==[^ ]*\).*/\1/p' "$out/dev.lock" > "$out/.dev-pins.txt"
compile "$out/st.lock" --extra st --constraints "$out/.dev-pins.txt"
compile "$out/base.lock" --constraints "$out/.dev-pins.txt"
echo "lock.sh: $(grep -c '==' "$out/dev.lock") packages in dev.lock," \
  "$(grep -c '==' "$out/st.lock") in st.lock, $(grep -c '==' "$out/base.lock") in base.lock"
