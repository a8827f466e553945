#!/usr/bin/env python3
"""Adds up meson testlog.json files into one closing line: 'N passed, N failed'.

Each failure is repeated with the end of its output, so that the last
screen of a long run (all a CI page may keep) says what went wrong."""
import json
import sys

TAIL_LINES = 25

passed = failed = skipped = 0
for path in sys.argv[1:]:
    try:
        with open(path) as f:
            lines = f.readlines()
    except OSError:
        failed += 1
        print(f"missing test log: {path}")
        continue
    build = path.split("/meson-logs/")[0]
    for line in lines:
        r = json.loads(line)
        res = r.get("result")
        if res in ("OK", "EXPECTEDFAIL"):
            passed += 1
        elif res == "SKIP":
            skipped += 1
        else:
            failed += 1
            print(f"FAILED: {r.get('name')} ({res}) in {build}")
            for stream in ("stdout", "stderr"):
                out = (r.get(stream) or "").rstrip("\n")
                for text in out.split("\n")[-TAIL_LINES:] if out else []:
                    print(f"    {stream}: {text}")
print(f"{passed} passed, {failed} failed, {skipped} skipped")
sys.exit(1 if failed else 0)
