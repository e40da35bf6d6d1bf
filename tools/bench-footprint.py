#!/usr/bin/env python3
"""bench-footprint.py RINGKVD - what 100,000 records cost one node (`make bench-footprint`).

Starts one ringkvd alone (`--data DIR --insecure`, every other setting at its
default, as a newcomer would), writes RECORDS records (default 100,000) whose
values are about 50 words of text each (a seeded vocabulary, so the text
compresses like text, not like a repeated byte), then reports:
  - the node's resident memory (VmRSS) after the load, and its peak (VmHWM);
  - the data dir's size on disk while running, after a clean stop, and after
    a full compaction with RocksDB's own `ldb compact` (Debian's
    rocksdb-tools) on every column family.
All traffic goes to 127.0.0.1; the node is stopped on exit. Prints one
`RESULT key=value ...` line and a markdown table; --markdown FILE replaces
the bench:footprint section of that file (docs/benchmarks.md).
"""
import argparse
import http.client
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_kib(pid, field="VmRSS"):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def du_bytes(path):
    total = 0
    for root, _, files in os.walk(path):
        for name in files:
            try:
                total += os.path.getsize(os.path.join(root, name))
            except OSError:
                pass
    return total


def vocabulary(rng, size=2000):
    letters = "abcdefghijklmnopqrstuvwxyz"
    return ["".join(rng.choice(letters) for _ in range(rng.randint(2, 9))) for _ in range(size)]


def loader(port, start, end, words, seed, errors):
    rng = random.Random(seed)
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    for i in range(start, end):
        text = " ".join(rng.choice(words) for _ in range(50))
        body = json.dumps({"value": text})
        for attempt in range(3):
            try:
                conn.request("PUT", f"/docs/key/doc-{i:07d}", body,
                             {"Content-Type": "application/json"})
                resp = conn.getresponse()
                resp.read()
                if resp.status in (200, 201):
                    break
                errors.append(f"doc-{i}: {resp.status}")
                break
            except (OSError, http.client.HTTPException):
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        else:
            errors.append(f"doc-{i}: no answer")
    conn.close()


def wait_health(port, proc, timeout=20):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"ringkvd exited with {proc.returncode}")
        try:
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
            c.request("GET", "/health")
            if c.getresponse().status == 200:
                return
        except OSError:
            pass
        time.sleep(0.1)
    raise SystemExit("ringkvd did not answer /health within 20 s")


def compact(db):
    ldb = shutil.which("ldb") or shutil.which("rocksdb_ldb")
    if ldb is None:
        raise SystemExit("ldb not found: apt-get install rocksdb-tools")
    for cf in ("default", "data", "hints", "meta"):
        r = subprocess.run([ldb, f"--db={db}", f"--column_family={cf}", "compact"],
                           capture_output=True, text=True, timeout=600)
        if r.returncode != 0 and "does not exist" not in (r.stderr + r.stdout):
            raise SystemExit(f"ldb compact {cf}: {r.stderr.strip() or r.stdout.strip()}")


def replace_section(path, text):
    begin, end = "<!-- bench:footprint -->", "<!-- /bench:footprint -->"
    with open(path) as f:
        doc = f.read()
    block = f"{begin}\n{text}\n{end}"
    if begin in doc and end in doc:
        doc = doc[:doc.index(begin)] + block + doc[doc.index(end) + len(end):]
    else:
        doc = doc.rstrip("\n") + "\n\n" + block + "\n"
    with open(path, "w") as f:
        f.write(doc)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("ringkvd")
    ap.add_argument("--records", type=int, default=100000)
    ap.add_argument("--threads", type=int, default=4)
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--markdown", help="replace the bench:footprint section of this file")
    args = ap.parse_args()

    work = tempfile.mkdtemp(prefix="ringkv-footprint-")
    data = os.path.join(work, "data")
    http_port, rpc_port = free_port(), free_port()
    env = dict(os.environ, RINGKV_HTTP=f"127.0.0.1:{http_port}", RINGKV_RPC=f"127.0.0.1:{rpc_port}")
    log = open(os.path.join(work, "ringkvd.log"), "w")
    proc = subprocess.Popen([args.ringkvd, "--data", data, "--insecure"], env=env,
                            stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_health(http_port, proc)
        rss_idle = rss_kib(proc.pid)
        words = vocabulary(random.Random(args.seed))
        errors = []
        per = (args.records + args.threads - 1) // args.threads
        t0 = time.monotonic()
        threads = [threading.Thread(target=loader, args=(http_port, k * per,
                                                         min(args.records, (k + 1) * per),
                                                         words, args.seed + k + 1, errors))
                   for k in range(args.threads)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        load_s = time.monotonic() - t0
        if errors:
            raise SystemExit(f"{len(errors)} writes failed, e.g. {errors[:3]}")
        rss_loaded, rss_peak = rss_kib(proc.pid), rss_kib(proc.pid, "VmHWM")
        disk_running = du_bytes(data)
        proc.send_signal(signal.SIGTERM)
        if proc.wait(timeout=60) != 0:
            raise SystemExit(f"ringkvd exited with {proc.returncode} on SIGTERM")
        disk_stopped = du_bytes(data)
        compact(os.path.join(data, "db"))
        disk_compacted = du_bytes(data)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        log.close()
    mib = 1024 * 1024
    raw = args.records * (50 * 6)  # ~50 words of ~5.5 letters and a space
    print(f"RESULT records={args.records} load_s={load_s:.1f} rss_idle_mib={rss_idle / 1024:.1f} "
          f"rss_loaded_mib={rss_loaded / 1024:.1f} rss_peak_mib={rss_peak / 1024:.1f} "
          f"disk_running_mib={disk_running / mib:.1f} disk_stopped_mib={disk_stopped / mib:.1f} "
          f"disk_compacted_mib={disk_compacted / mib:.1f}")
    table = "\n".join([
        f"### Footprint: {args.records:,} records of about 50 words each, one node",
        "",
        f"Measured {time.strftime('%Y-%m-%d')} with `make bench-footprint` "
        f"(tools/bench-footprint.py --records {args.records}): one `ringkvd --data DIR "
        "--insecure` with every other setting at its default; values are 50 words drawn from a "
        f"seeded vocabulary (about {raw / args.records:.0f} bytes of text each, "
        f"{raw / mib:.0f} MiB in all); loaded in {load_s:.0f} s over {args.threads} keep-alive "
        "connections. Disk after compaction: the node stopped, then RocksDB's `ldb compact` on "
        "every column family.",
        "",
        "| measure | value |",
        "|---|---|",
        f"| resident memory, idle before the load | {rss_idle / 1024:.1f} MiB |",
        f"| resident memory after the load (peak) | {rss_loaded / 1024:.1f} MiB "
        f"({rss_peak / 1024:.1f} MiB) |",
        f"| data dir while running | {disk_running / mib:.1f} MiB |",
        f"| data dir after a clean stop | {disk_stopped / mib:.1f} MiB |",
        f"| data dir after a full compaction | {disk_compacted / mib:.1f} MiB |",
    ])
    print(table)
    if args.markdown:
        replace_section(args.markdown, table)
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
