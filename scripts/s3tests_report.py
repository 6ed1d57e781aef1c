#!/usr/bin/env python3
"""Summarise an s3-tests run (pytest --junitxml) by feature group.

    scripts/s3tests_report.py junit.xml [--failures FILE] [--top N]

Prints a table (group, passed, failed/errored, skipped, total). Groups go by
test name, so a test may count in several; 'other' is every test in none.
--failures writes each failing test with the first line of its error, and
--top prints the N most common of those first lines (long numbers and
bucket names masked so that alike errors count together).
"""

import argparse
import collections
import re
import xml.etree.ElementTree as ET

# group -> pattern searched for in the test's name
GROUPS = {
    "versioning": r"version",
    "object_lock": r"object_lock",
    "tagging": r"(^|_)tag",  # tag, tags, tagging; not etag or percentage
    "lifecycle": r"lifecycle",
    "conditional": r"if_?(none_?)?match|if_?(un)?modified_?since|conditional",
    "multipart": r"multipart",
    "bucket_list": r"bucket_list|list_objects",
    "bucket_policy": r"policy",
    "acl": r"acl",
    "ownership": r"ownership",
    "public_access_block": r"public_access|block_public",
    "cors": r"cors",
    "post_object": r"post_object",
    "presigned": r"presigned",
    "encryption": r"encrypt|sse",
    "checksum": r"checksum",
}


def results(path):
    """{test name: (outcome, reason)}; outcome is passed, failed or skipped."""
    out = {}
    for case in ET.parse(path).getroot().iter("testcase"):
        name = case.get("name")
        bad = case.find("failure")
        if bad is None:
            bad = case.find("error")
        skip = case.find("skipped")
        if bad is not None:
            text = bad.get("message") or bad.text or bad.tag
            lines = [l.strip() for l in text.splitlines() if l.strip()]
            out[name] = ("failed", (lines[0] if lines else bad.tag)[:300])
        elif skip is not None and out.get(name, ("",))[0] != "failed":
            out[name] = ("skipped", skip.get("message", ""))
        elif name not in out:
            out[name] = ("passed", "")
    return out


def groups_of(name):
    hit = [g for g, pat in GROUPS.items() if re.search(pat, name)]
    return hit or ["other"]


def mask(reason):
    reason = re.sub(r"s3t-[a-z0-9]+-\d+", "<bucket>", reason)
    return re.sub(r"\d{4,}", "N", reason)  # sizes, times; keeps status codes


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("junit")
    ap.add_argument("--failures", help="write failing tests and reasons here")
    ap.add_argument("--top", type=int, default=0, help="print the N most common reasons")
    args = ap.parse_args()

    res = results(args.junit)
    counts = collections.defaultdict(collections.Counter)
    for name, (outcome, _) in res.items():
        for g in groups_of(name) + ["ALL"]:
            counts[g][outcome] += 1

    print(f"{'group':<20} {'passed':>7} {'failed':>7} {'skipped':>8} {'total':>6}")
    for g in list(GROUPS) + ["other", "ALL"]:
        c = counts[g]
        print(f"{g:<20} {c['passed']:>7} {c['failed']:>7} {c['skipped']:>8} {sum(c.values()):>6}")

    failing = sorted((n, r) for n, (o, r) in res.items() if o == "failed")
    if args.failures:
        with open(args.failures, "w") as f:
            for name, reason in failing:
                f.write(f"{name}\t{reason}\n")
    if args.top:
        print(f"\nmost common failure reasons (of {len(failing)} failing tests):")
        common = collections.Counter(mask(r) for _, r in failing).most_common(args.top)
        for reason, n in common:
            print(f"{n:>5}  {reason}")


if __name__ == "__main__":
    main()
