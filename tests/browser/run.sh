#!/usr/bin/env bash
# A real browser against a Strata binary: headless Chromium (Debian's
# chromium and chromium-driver, installed here if missing) driven by
# selenium with /usr/bin/chromedriver as its service.
#   STRATA_BIN=/abs/path/to/strata tests/browser/run.sh [pytest args...]
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
: "${STRATA_BIN:?point STRATA_BIN at the strata executable}"
export STRATA_BIN
if [[ ! -x /usr/bin/chromium || ! -x /usr/bin/chromedriver ]]; then
    echo "browser tests: installing Debian's chromium and chromium-driver"
    if [[ "$(id -u)" == 0 ]]; then sudo=(); else sudo=(sudo); fi
    "${sudo[@]}" apt-get update -qq
    DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq chromium chromium-driver
fi
"$root/tests/interop/setup_venv.sh" "$here/requirements.txt" "$root/.venv-browser"
cd "$root"
exec "$root/.venv-browser/bin/python" -m pytest tests/browser -q -p no:cacheprovider "$@"
