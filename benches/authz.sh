#!/usr/bin/env bash
# The cost of authorisation on the hot path: 4 KiB GETs (s3load's get mode,
# 16 clients) by a user with MinIO's readwrite policy, alternately without
# and with a 20-statement bucket policy (IP and prefix conditions, and a
# Deny whose condition does not match), so each request is evaluated
# against both. Release build; about two minutes. Not part of ./test.sh.
#   benches/authz.sh [--duration-s S] [--rounds N] [--dir DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
duration_s=10
rounds=2
dir=/tmp/authz-bench
while [[ $# -gt 0 ]]; do
    case $1 in
        --duration-s) duration_s=$2; shift ;;
        --rounds) rounds=$2; shift ;;
        --dir) dir=$2; shift ;;
        -h|--help) sed -n 2,7p "$0"; exit 0 ;;
        *) echo "unknown argument: $1" >&2; exit 2 ;;
    esac
    shift
done
cargo build --release -p strata -p strata-benches
tests/interop/setup_venv.sh >/dev/null
mkdir -p "$dir"
rm -f "$dir/strata.img"
export STRATA_ACCESS_KEY=authz-root STRATA_SECRET_KEY=authz-secret-$RANDOM$RANDOM
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
endpoint=http://127.0.0.1:$port
STRATA_LOG=warn target/release/strata serve --address 127.0.0.1:$port --data "$dir/strata.img" \
    --size-bytes $((16 << 30)) >"$dir/strata.log" 2>&1 &
server=$!
trap 'kill $server 2>/dev/null; wait $server 2>/dev/null; rm -f "$dir/strata.img"' EXIT
until curl -sf "$endpoint/minio/health/ready" >/dev/null; do sleep 0.1; done

user=$(target/release/strata admin --endpoint "$endpoint" --json user add bench --policy readwrite)
export AWS_ACCESS_KEY_ID=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["access_key"])' "$user")
export AWS_SECRET_ACCESS_KEY=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["secret_key"])' "$user")

# The bucket policy, set and removed by the root through boto3.
policy() {
    .venv/bin/python - "$endpoint" "$1" <<'PY'
import json, os, sys
import boto3
endpoint, action = sys.argv[1], sys.argv[2]
s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1",
                  aws_access_key_id=os.environ["STRATA_ACCESS_KEY"],
                  aws_secret_access_key=os.environ["STRATA_SECRET_KEY"])
if action == "delete":
    s3.delete_bucket_policy(Bucket="authz")
    sys.exit(0)
statements = [{
    "Sid": f"team{i}", "Effect": "Allow",
    "Principal": {"AWS": f"arn:aws:iam::1111111111{i:02}:root"},
    "Action": ["s3:GetObject", "s3:PutObject"],
    "Resource": f"arn:aws:s3:::authz/team-{i}/*",
    "Condition": {"IpAddress": {"aws:SourceIp": f"10.{i}.0.0/16"}},
} for i in range(19)]
statements.append({
    "Sid": "loopback-only", "Effect": "Deny", "Principal": "*", "Action": "s3:*",
    "Resource": "arn:aws:s3:::authz/*",
    "Condition": {"NotIpAddress": {"aws:SourceIp": "127.0.0.0/8"}}})
s3.put_bucket_policy(Bucket="authz", Policy=json.dumps({"Version": "2012-10-17",
                                                        "Statement": statements}))
PY
}

run() {
    target/release/s3load --endpoint "$endpoint" --bucket authz --mode get --size 4096 \
        --prefill 2000 --concurrency 16 --duration-s "$duration_s" --max-attempts 1 \
        --label "$1" 2>>"$dir/s3load.err" | grep '^{' | tail -1
}

out=$root/target/bench/authz-$(date +%Y%m%d-%H%M%S).jsonl
mkdir -p target/bench
for round in $(seq "$rounds"); do
    run "no-policy-$round" >>"$out"
    policy put
    run "policy-$round" >>"$out"
    policy delete
done
python3 - "$out" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
print(f"{'run':>12} {'GET/s':>8} {'p50 ms':>7} {'p99 ms':>7} {'errors':>6}")
for r in rows:
    print(f"{r['label']:>12} {r['ops_per_s']:>8.0f} {r['latency_ms_p50']:>7.2f} {r['latency_ms_p99']:>7.2f} {r['errors']:>6}")
base = [r["ops_per_s"] for r in rows if r["label"].startswith("no-policy")]
with_policy = [r["ops_per_s"] for r in rows if r["label"].startswith("policy")]
print(f"with / without a bucket policy: {sum(with_policy) / len(with_policy) / (sum(base) / len(base)):.3f}")
PY
