#!/usr/bin/env bash
# Run the Python client-interoperability suite against a Strata binary.
#   STRATA_BIN=/abs/path/to/strata tests/interop/run.sh [pytest args...]
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"

if [[ -z "${STRATA_BIN:-}" ]]; then
    echo "run.sh: STRATA_BIN is not set; point it at the strata executable, e.g." >&2
    echo "  STRATA_BIN=\$PWD/target/release/strata tests/interop/run.sh" >&2
    exit 2
fi
if [[ ! -x "$STRATA_BIN" ]]; then
    echo "run.sh: STRATA_BIN=$STRATA_BIN is not an executable file" >&2
    exit 2
fi
STRATA_BIN="$(cd "$(dirname "$STRATA_BIN")" && pwd)/$(basename "$STRATA_BIN")"
export STRATA_BIN

"$here/setup_venv.sh"
cd "$root"
exec "$root/.venv/bin/python" -m pytest tests/interop -q "$@"
