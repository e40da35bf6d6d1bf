#!/usr/bin/env python3
"""Counts test cases in meson testlog.json files and prints one summary line.

A meson test is one program; inside it cmocka or unittest runs many cases.
We count those cases from each program's output. A program that failed
without printing a summary (a crash, a sanitizer abort) counts as one
failure, so nothing can fail silently.
"""
import json
import re
import sys

CMOCKA_PASSED = re.compile(r"^\[  PASSED  \] (\d+) test", re.M)
CMOCKA_FAILED = re.compile(r"^\[  FAILED  \] (\d+) test", re.M)
UNITTEST_RAN = re.compile(r"^Ran (\d+) tests? in", re.M)
UNITTEST_FAILED = re.compile(r"^FAILED \((.*)\)$", re.M)
UNITTEST_SKIPPED = re.compile(r"skipped=(\d+)")


def count(output, ok):
    """Returns (passed, failed, skipped) for one test program."""
    passed = sum(int(n) for n in CMOCKA_PASSED.findall(output))
    failed = sum(int(n) for n in CMOCKA_FAILED.findall(output))
    if passed or failed:
        return passed, failed, 0
    ran = UNITTEST_RAN.findall(output)
    if ran:
        total = sum(int(n) for n in ran)
        bad = 0
        for detail in UNITTEST_FAILED.findall(output):
            bad += sum(int(n) for k, n in re.findall(r"(failures|errors)=(\d+)", detail))
        skipped = sum(int(n) for n in UNITTEST_SKIPPED.findall(output))
        if not ok and bad == 0:
            bad = 1
        return total - bad - skipped, bad, skipped
    return (1, 0, 0) if ok else (0, 1, 0)


def main(paths):
    passed = failed = skipped = 0
    for path in paths:
        try:
            with open(path) as f:
                lines = [json.loads(l) for l in f if l.strip()]
        except OSError as e:
            print(f"missing test log {path}: {e}")
            failed += 1
            continue
        for t in lines:
            ok = t.get("result") in ("OK", "EXPECTEDFAIL")
            out = (t.get("stdout") or "") + "\n" + (t.get("stderr") or "")
            p, f, s = count(out, ok)
            if not ok and f == 0:
                f = 1
            passed, failed, skipped = passed + p, failed + f, skipped + s
            if not ok:
                print(f"FAILED: {t.get('name')} ({t.get('result')}) in {path}")
    line = f"{passed} passed, {failed} failed"
    if skipped:
        line += f", {skipped} skipped"
    print(line)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
