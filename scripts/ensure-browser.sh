#!/usr/bin/env bash
# Find a Chromium for the browser tests (Playwright drives it through executable_path, since
# `playwright install` cannot download browsers everywhere), installing Debian's when root.
#   scripts/ensure-browser.sh    prints the browser's path on stdout; run by `make test`
# Looks at $CHROMIUM, /usr/bin/chromium, then Playwright's own browser cache; else, as root,
# installs the Debian package chromium. Without one it says what to install and still exits 0:
# the browser tests skip, the others run.
set -uo pipefail

found() { echo "ensure-browser: using $1" >&2; echo "$1"; exit 0; }
runs() { [ -x "$1" ] && "$1" --version >/dev/null 2>&1; }

if [ -n "${CHROMIUM:-}" ]; then
  runs "$CHROMIUM" && found "$CHROMIUM"
  echo "ensure-browser: CHROMIUM=$CHROMIUM does not run; looking elsewhere" >&2
fi
candidates() {
  echo /usr/bin/chromium
  local cache="${PLAYWRIGHT_BROWSERS_PATH:-$HOME/.cache/ms-playwright}"
  ls -d "$cache"/chromium-*/chrome-linux*/chrome \
        "$cache"/chromium_headless_shell-*/chrome-linux*/headless_shell 2>/dev/null | sort -rV
}
while read -r candidate; do
  runs "$candidate" && found "$candidate"
done < <(candidates)

if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  echo "ensure-browser: installing Debian's chromium (apt-get)" >&2
  log="$(mktemp)"
  if { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium; } \
       >"$log" 2>&1 && runs /usr/bin/chromium; then
    rm -f "$log"
    found /usr/bin/chromium
  fi
  tail -n 5 "$log" >&2
  rm -f "$log"
fi
echo "ensure-browser: no Chromium found; browser tests will skip (install Debian's chromium" \
     "package, or set CHROMIUM to a Chromium binary)" >&2
exit 0
