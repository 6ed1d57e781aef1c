#!/usr/bin/env bash
# Create (idempotently) a Python venv and install a requirements file into it,
# only when that file's content changed since the last successful install
# (hash kept in <venv>/.req-hash).
#   setup_venv.sh [REQUIREMENTS VENV]
# Default: tests/interop/requirements.txt into <repo>/.venv (the interop
# suite); tests/milvus uses its own (Milvus needs numpy below 2).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
req="${1:-$here/requirements.txt}"
venv="${2:-$root/.venv}"
stamp="$venv/.req-hash"
python="${PYTHON:-python3}"

if [[ -x "$venv/bin/python" ]] && "$venv/bin/python" -c 'import sys' 2>/dev/null; then
    echo "setup_venv: using existing venv $venv"
else
    echo "setup_venv: creating venv $venv with $("$python" --version 2>&1)"
    rm -rf "$venv"
    "$python" -m venv "$venv"
fi

want="$(sha256sum "$req" | cut -d' ' -f1)"
have="$(cat "$stamp" 2>/dev/null || true)"
if [[ "$want" == "$have" ]]; then
    echo "setup_venv: requirements unchanged (sha256 ${want:0:12}), nothing to install"
    exit 0
fi

prev="${have:0:12}"
echo "setup_venv: installing $req (sha256 ${want:0:12}; previous install: ${prev:-none})"
rm -f "$stamp"
"$venv/bin/python" -m pip install --disable-pip-version-check -q -r "$req"
"$venv/bin/python" -m pip check
echo "$want" > "$stamp"
echo "setup_venv: installed: $("$venv/bin/python" -m pip freeze --disable-pip-version-check | tr '\n' ' ')"
