#!/usr/bin/env bash
# Real Milvus (standalone, from PyPI) against a Strata binary:
#   STRATA_BIN=/abs/path/to/strata tests/milvus/run.sh [pytest args...]
# Installs its pinned venv at <repo>/.venv-milvus on first use (about a
# minute, 300 MB), then runs tests/milvus (about 3 minutes).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
: "${STRATA_BIN:?point STRATA_BIN at the strata executable}"
export STRATA_BIN
"$root/tests/interop/setup_venv.sh" "$here/requirements.txt" "$root/.venv-milvus"
cd "$root"
exec "$root/.venv-milvus/bin/python" -m pytest tests/milvus -q -p no:cacheprovider "$@"
