#!/usr/bin/env bash
# The whole test suite: Rust unit, property, fault and integration tests,
# then the client interoperability suite (boto3, aws CLI, minio, pyarrow)
# against the real server binary, in a pinned venv this script creates, a
# real browser (headless chromium, installed with apt-get when missing),
# and a real Milvus on that binary, each in a venv of its own.
set -euo pipefail
cd "$(dirname "$0")"

cargo fmt --all -- --check
cargo build --workspace --all-targets
cargo test --workspace --no-fail-fast
# The fuzz targets are a workspace of their own: check that they still build
# (running them needs nightly and cargo-fuzz; see fuzz/README.md).
cargo check --manifest-path fuzz/Cargo.toml --bins --target-dir target/fuzz-check

STRATA_BIN="$PWD/target/debug/strata" tests/interop/run.sh "$@"
# A real browser (Debian's headless chromium, installed if missing) for
# CORS and form uploads.
STRATA_BIN="$PWD/target/debug/strata" tests/browser/run.sh
# A real Milvus (PyPI's milvus 2.3.5, in its own venv) on the same binary.
STRATA_BIN="$PWD/target/debug/strata" tests/milvus/run.sh
