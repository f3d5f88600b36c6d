"""Scale benchmark: bulk work on servers the size of real deployments.

    uv run python tests/benchmarks/scale.py                                 # docs/performance.md's table (about 25 minutes)
    uv run python tests/benchmarks/scale.py --sizes postgres:1000000 --large-rounds 3  # medians of 3 at 1,000,000
    uv run python tests/benchmarks/scale.py --sizes sqlite:20000 --rounds 1  # a quick look
    uv run python tests/benchmarks/scale.py --table results.json           # the table of an earlier --json run

Fills each server through agno's own bulk upsert_memories: a tenth of the memories
belong to one heavy user, the rest to many light users (ten each), and every 5,000
share one updated_at second. For each operation it times the script against the
floor, one raw HTTP request for the same memories (httpx, JSON parsed), and the
script's peak RSS; then the same export while about 30 writes a second hit the server.
--delete-all also gets the least a delete can cost: that GET, then the raw bulk DELETEs.
PostgreSQL runs on a throwaway cluster from the machine's own binaries.
"""

import argparse
import atexit
import datetime
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "manage_memories.py"
sys.path.insert(0, str(ROOT / "tests"))

from conftest import CLEAN_ENV, free_port, start_server  # noqa: E402

FLOOR = """
import httpx, sys
params = dict(arg.split("=", 1) for arg in sys.argv[2:])
body = httpx.get(sys.argv[1] + "/memories", params=params, timeout=3600).json()
print(len(body["data"]))
"""
# The least a delete of those memories can cost: the same GET, then the raw bulk
# DELETEs of their ids (each batch a size of its own, as the script sends them).
FLOOR_DELETE = """
import httpx, sys
params = dict(arg.split("=", 1) for arg in sys.argv[2:])
with httpx.Client(base_url=sys.argv[1], timeout=3600) as http:
    ids = [memory["memory_id"] for memory in http.get("/memories", params=params).json()["data"]]
    start, size = 0, 5000
    while start < len(ids):
        body = {"memory_ids": ids[start : start + size], "user_id": params["user_id"]}
        http.request("DELETE", "/memories", json=body).raise_for_status()
        start, size = start + size, size - 1
print(len(ids))
"""
FLOOR_STATS = """
import httpx, sys
body = httpx.get(sys.argv[1] + "/user_memory_stats", params={"limit": 10_000_000}, timeout=3600).json()
print(len(body["data"]))
"""
# Runs a command and reports its wall time and its own peak RSS (RUSAGE_CHILDREN of a
# fresh wrapper covers exactly the one child it waited for).
MEASURE = """
import resource, subprocess, sys, time
started = time.perf_counter()
code = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode
print(time.perf_counter() - started, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, code)
"""


def measure(command):
    output = subprocess.run(
        [sys.executable, "-c", MEASURE, *map(str, command)], env=CLEAN_ENV, capture_output=True, text=True, check=True
    ).stdout.split()
    if output[2] != "0":
        raise SystemExit(f"failed: {' '.join(map(str, command))}")
    return float(output[0]), int(output[1]) / 1024


def fill(server, size, heavy_only=False):
    """size memories: a tenth of them one heavy user's, the rest ten per light user
    (with heavy_only, the heavy user's again, as after a delete)."""
    from agno.db.schemas import UserMemory

    heavy = size // 10
    stamp = int(time.time()) - 86_400
    database = server.database()
    batch = []
    for n in range(heavy if heavy_only else size):
        user = "heavy" if n < heavy else f"user-{(n - heavy) // 10:06d}"
        batch.append(
            UserMemory(
                memory=f"fact {n} of {user}: prefers tea in the morning and reads before bed",
                memory_id=f"m-{(n * 2654435761) % 2**32:08x}-{n:07d}",  # scattered, so pages mix users
                user_id=user,
                topics=["bench", f"t{n % 7}"],
                updated_at=stamp + n // 5000,
                created_at=stamp + n // 5000,
            )
        )
        if len(batch) == 5000:
            database.upsert_memories(batch)
            batch = []
    if batch:
        database.upsert_memories(batch)


class Writer:
    """About `rate` creates a second against the server, in a thread, until stopped."""

    def __init__(self, url, rate=30):
        self.url, self.rate, self.count = url, rate, 0
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self):
        import httpx

        with httpx.Client(base_url=self.url, timeout=60) as http:
            while not self.stopped.wait(1 / self.rate):
                http.post(
                    "/memories", json={"memory": f"live write {self.count}", "user_id": f"live-{self.count % 50}"}
                )
                self.count += 1

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stopped.set()
        self.thread.join()


def markdown_table(rows):
    """docs/performance.md's table: 'start-up bound' where the work took less time than the start-up."""
    lines = [
        "| server | memories | work | floor | ours | ratio | after start-up | peak RSS |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        server = {"sqlite": "SQLite", "postgres": "PostgreSQL"}[row["backend"]]
        flags, joint, rest = (re.split(r"(, | of )", row["work"], maxsplit=1) + ["", ""])[:3]
        work = f"`{flags}`{joint}{rest}"
        work_alone = row["ours_s"] - row["startup_s"]
        bound = work_alone < row["startup_s"]
        if "floor_with_deletes_s" in row:
            work += f" (GET + raw DELETEs: {row['floor_with_deletes_s']:.2f} s"
            if not bound:
                work += f"; ours {work_alone / row['floor_with_deletes_s']:.2f}x that after start-up"
            work += ")"
        after = "start-up bound" if bound else f"{row['ratio_after_startup']:.2f}"
        lines.append(
            f"| {server} | {row['memories']:,} | {work} | {row['floor_s']:.2f} s | {row['ours_s']:.2f} s "
            f"| {row['ratio']:.2f} | {after} | {row['peak_rss_mb']:.0f} MB |"
        )
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--sizes",
        default="sqlite:20000,sqlite:200000,postgres:200000,postgres:1000000",
        help="comma-separated backend:memories (default: %(default)s)",
    )
    parser.add_argument("--rounds", type=int, default=3, help="runs of each command below 500,000 memories (default 3)")
    parser.add_argument("--large-rounds", type=int, default=1, help="runs of each command from 500,000 (default 1)")
    parser.add_argument("--json", type=Path, help="also write the results to this JSON file")
    parser.add_argument("--only", metavar="TEXT", help="measure only the rows whose work contains TEXT")
    parser.add_argument(
        "--table", type=Path, metavar="JSON", help="print docs/performance.md's table from a --json file, and stop"
    )
    args = parser.parse_args()
    if args.table:
        print(markdown_table(json.loads(args.table.read_text())["rows"]))
        return

    work = Path(tempfile.mkdtemp(prefix="agentos-scale-"))
    atexit.register(shutil.rmtree, work, ignore_errors=True)  # its databases can take gigabytes
    (work / "floor.py").write_text(FLOOR)
    (work / "floor_stats.py").write_text(FLOOR_STATS)
    (work / "floor_delete.py").write_text(FLOOR_DELETE)
    python = sys.executable
    cluster = None
    rows = []
    try:
        for spec in args.sizes.split(","):
            backend, size = spec.split(":")
            size = int(size)
            rounds = args.rounds if size < 500_000 else args.large_rounds
            db_url = None
            if backend == "postgres":
                if cluster is None:
                    from postgres import PostgresCluster, find_bin_dir

                    cluster = PostgresCluster(find_bin_dir(), free_port()).start()
                db_url = cluster.create_database()
            folder = work / f"{backend}-{size}"
            folder.mkdir()
            server = start_server(folder, db_url=db_url)
            try:
                started = time.perf_counter()
                fill(server, size)
                print(f"\n{backend} {size:,}: filled in {time.perf_counter() - started:.0f} s", flush=True)
                url = server.url
                out = folder / "out.jsonl"
                ours = [python, SCRIPT, "--base-url", url]
                floor = [python, folder.parent / "floor.py", url]
                heavy = size // 10

                # The script's fixed start-up, the same command with nothing to do: with
                # pages only (no agno import), and with agno's client imported. The least
                # of five: a fixed cost that the machine's noise can only lengthen (a median
                # of three once read 0.62 s where every other size read 0.26-0.41 s).
                startups = {
                    "pages": min(measure([*ours, "--user-id", "nobody", "--export", out])[0] for _ in range(5)),
                    "client": min(measure([*ours, "--user-id", "nobody", "--topics-list"])[0] for _ in range(5)),
                }
                print(f"  fixed start-up: {startups['pages']:.2f} s (pages only), {startups['client']:.2f} s (client)")

                def row(name, command, baseline, startup, rounds=rounds, deletes=None):
                    if args.only and args.only not in name:
                        return
                    times, peaks, floors, delete_floors = [], [], [], []
                    for _ in range(rounds):  # the floor first: --delete-all leaves nothing to read
                        floors.append(measure(baseline)[0])
                        if deletes:  # the raw deletes, then the memories back for the script
                            delete_floors.append(measure(deletes)[0])
                            fill(server, size, heavy_only=True)
                        elapsed, peak = measure(command)
                        times.append(elapsed)
                        peaks.append(peak)
                        if deletes:
                            fill(server, size, heavy_only=True)
                    result = {
                        "backend": backend,
                        "memories": size,
                        "work": name,
                        "floor_s": round(statistics.median(floors), 2),
                        "ours_s": round(statistics.median(times), 2),
                        "ratio": round(statistics.median(times) / statistics.median(floors), 2),
                        "startup_s": round(startups[startup], 2),
                        "ratio_after_startup": round(
                            (statistics.median(times) - startups[startup]) / statistics.median(floors), 2
                        ),
                        "peak_rss_mb": round(max(peaks), 1),
                    }
                    if deletes:
                        result["floor_with_deletes_s"] = round(statistics.median(delete_floors), 2)
                    rows.append(result)
                    print(
                        f"  {name:<44} floor {result['floor_s']:7.2f} s  ours {result['ours_s']:7.2f} s  "
                        f"ratio {result['ratio']:5.2f}  after start-up {result['ratio_after_startup']:5.2f}  "
                        f"peak RSS {result['peak_rss_mb']:6.1f} MB"
                        + (f"  (GET + raw DELETEs {result['floor_with_deletes_s']:.2f} s)" if deletes else ""),
                        flush=True,
                    )

                everything = [*floor, f"limit={size + 1000}"]
                heavy_only = [*floor, "user_id=heavy", f"limit={heavy + 1000}"]
                stats_floor = [python, folder.parent / "floor_stats.py", url]
                row("--export, every user", [*ours, "--export", out], everything, "pages")
                row("--export, the heavy user", [*ours, "--user-id", "heavy", "--export", out], heavy_only, "pages")
                all_heavy = [*ours, "--user-id", "heavy", "--all", "--json"]
                row("--all --json, the heavy user", all_heavy, heavy_only, "pages")
                find_heavy = [*ours, "--user-id", "heavy", "--find", "tea before bed"]
                row("--find, the heavy user", find_heavy, heavy_only, "pages")
                row("--find, every user", [*ours, "--find", "tea before bed"], everything, "pages")
                row("--stats --sort count", [*ours, "--stats", "--sort", "count"], stats_floor, "pages")
                row("--duplicates, every user", [*ours, "--duplicates", "--json"], everything, "pages")
                subprocess.run([*ours, "--export", out], env=CLEAN_ENV, check=True, capture_output=True)
                row("--import of that export (all there)", [*ours, "--import", out], everything, "client")
                with Writer(url) as writer:
                    row("--export, every user, ~30 writes/s", [*ours, "--export", out], everything, "pages")
                print(f"  ({writer.count} live writes)", flush=True)
                delete_heavy = [*ours, "--user-id", "heavy", "--delete-all", "--yes"]
                delete_floor = [
                    python,
                    folder.parent / "floor_delete.py",
                    url,
                    "user_id=heavy",
                    f"limit={heavy + 1000}",
                ]
                row("--delete-all, the heavy user", delete_heavy, heavy_only, "pages", deletes=delete_floor)
            finally:
                server.stop()
    finally:
        if cluster is not None:
            cluster.stop()

    import agno  # noqa: F401
    from importlib.metadata import version

    machine = {
        "date": datetime.date.today().isoformat(),
        "agno": version("agno"),
        "python": platform.python_version(),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, {platform.system()} {platform.release()}",
    }
    print("\n" + markdown_table(rows) + "\n\n" + json.dumps(machine))
    if args.json:
        args.json.write_text(json.dumps({"machine": machine, "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
