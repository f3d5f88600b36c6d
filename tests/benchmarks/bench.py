"""Benchmark the script against the simplest thing a user could write instead.

    uv run python tests/benchmarks/bench.py              # full run, about 10 minutes
    uv run python tests/benchmarks/bench.py --quick      # fewer rounds and memories, for a smoke check

Starts its own dev server(s) on loopback with temporary SQLite databases. Each
pair runs alternately (ours, baseline, ours, ...) after a warm-up, on the same
server in the same run; the table gives medians and the ratio ours/baseline.
Peak memory is the max RSS of the measured process alone.
"""

import argparse
import atexit
import datetime
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "manage_memories.py"
sys.path.insert(0, str(ROOT / "tests"))

from conftest import CLEAN_ENV, start_server  # noqa: E402

BASELINE_LIST = """
import asyncio, sys
from agno.client import AgentOSClient

async def main():
    page = await AgentOSClient(base_url=sys.argv[1]).list_memories(user_id=sys.argv[2])
    for memory in page.data:
        print(memory.memory_id, memory.memory)

asyncio.run(main())
"""

BASELINE_LIST_UV = (
    """# /// script
# requires-python = ">=3.11"
# dependencies = ["agno[os]>=3.1.10", "httpx>=0.27"]
# ///
"""
    + BASELINE_LIST
)

BASELINE_EXPORT_PAGES = """
import asyncio, json, sys
from agno.client import AgentOSClient

async def main():
    client = AgentOSClient(base_url=sys.argv[1])
    with open(sys.argv[3], "w") as out:
        page = 1
        while True:
            result = await client.list_memories(user_id=sys.argv[2], page=page)
            for memory in result.data:
                out.write(json.dumps(memory.model_dump(mode="json")) + "\\n")
            if page >= result.meta.total_pages:
                break
            page += 1

asyncio.run(main())
"""

BASELINE_EXPORT_ONE_CALL = """
import asyncio, json, sys
from agno.client import AgentOSClient

async def main():
    result = await AgentOSClient(base_url=sys.argv[1]).list_memories(user_id=sys.argv[2], limit=int(sys.argv[4]))
    with open(sys.argv[3], "w") as out:
        for memory in result.data:
            out.write(json.dumps(memory.model_dump(mode="json")) + "\\n")

asyncio.run(main())
"""

BASELINE_IMPORT_LOOP = """
import asyncio, json, sys
from agno.client import AgentOSClient

async def main():
    client = AgentOSClient(base_url=sys.argv[1])
    with open(sys.argv[2]) as lines:
        for line in lines:
            item = json.loads(line)
            await client.create_memory(item["memory"], user_id=item["user_id"], topics=item.get("topics"))

asyncio.run(main())
"""

# Runs a command and reports its own peak RSS: RUSAGE_CHILDREN of a fresh wrapper
# covers exactly the one child it waited for.
MAX_RSS_WRAPPER = """
import resource, subprocess, sys
code = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL).returncode
print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, code)
"""


def timed(command, env=None):
    started = time.perf_counter()
    result = subprocess.run(command, env=env or CLEAN_ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    elapsed = time.perf_counter() - started
    if result.returncode != 0:
        raise SystemExit(
            f"benchmark command failed ({result.returncode}): {' '.join(map(str, command))}\n{result.stderr}"
        )
    return elapsed


def max_rss_mb(command, env=None):
    output = subprocess.run(
        [sys.executable, "-c", MAX_RSS_WRAPPER, *map(str, command)],
        env=env or CLEAN_ENV,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    if output[1] != "0":
        raise SystemExit(f"benchmark command failed: {' '.join(map(str, command))}")
    return int(output[0]) / 1024


def alternate(ours, baseline, rounds, warmup=1, before_each=None):
    """Median seconds of each, run ours/baseline alternately after a warm-up."""
    times = {"ours": [], "baseline": []}
    for round_number in range(warmup + rounds):
        for name, command in (("ours", ours), ("baseline", baseline)):
            if before_each:
                command = before_each(name, command)
            elapsed = timed(command)
            if round_number >= warmup:
                times[name].append(elapsed)
    return statistics.median(times["ours"]), statistics.median(times["baseline"])


def seed(server, user_id, count):
    """Write memories straight through agno's database layer: fast, and the same rows an agent writes."""
    from agno.db.schemas import UserMemory

    memories = [
        UserMemory(
            memory=f"fact number {n} about {user_id}", memory_id=f"{user_id}-{n:06d}", user_id=user_id, topics=["bench"]
        )
        for n in range(count)
    ]
    database = server.database()
    for start in range(0, count, 1000):
        database.upsert_memories(memories[start : start + 1000])


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5, help="measured runs of each command (default: 5)")
    parser.add_argument("--memories", type=int, default=10_000, help="memories for export/import (default: 10000)")
    parser.add_argument("--warmup", type=int, default=1, help="unmeasured runs of each command first (default: 1)")
    parser.add_argument("--quick", action="store_true", help="3 rounds, 1000 memories")
    parser.add_argument("--json", type=Path, help="also write the results to this JSON file")
    args = parser.parse_args()
    if args.quick:
        args.rounds, args.memories = 3, 1000

    work = Path(tempfile.mkdtemp(prefix="agentos-bench-"))
    atexit.register(shutil.rmtree, work, ignore_errors=True)  # its databases can take gigabytes
    for name, code in (
        ("list.py", BASELINE_LIST),
        ("list_uv.py", BASELINE_LIST_UV),
        ("export_pages.py", BASELINE_EXPORT_PAGES),
        ("export_one_call.py", BASELINE_EXPORT_ONE_CALL),
        ("import_loop.py", BASELINE_IMPORT_LOOP),
    ):
        (work / name).write_text(textwrap.dedent(code))
    python = sys.executable
    rows = []
    peak_sizes = sorted({min(1000, args.memories), args.memories})

    def row(name, ours, baseline, target):
        rows.append(
            {
                "benchmark": name,
                "ours_s": round(ours, 3),
                "baseline_s": round(baseline, 3),
                "ratio": round(ours / baseline, 2),
                "target": target,
            }
        )
        print(
            f"{name:<58} ours {ours:7.3f} s  baseline {baseline:7.3f} s  ratio {ours / baseline:5.2f}  (target {target})",
            flush=True,
        )

    (work / "server-main").mkdir()
    server = start_server(work / "server-main")
    try:
        seed(server, "alice", 20)
        seed(server, "big", args.memories)
        url = server.url

        ours, base = alternate(
            [python, SCRIPT, "--help"], [python, "-c", "import agno.client"], args.rounds, args.warmup
        )
        row("1. --help vs import agno.client", ours, base, "< 0.25")

        ours, base = alternate(
            [python, SCRIPT, "--base-url", url, "--user-id", "alice"],
            [python, work / "list.py", url, "alice"],
            args.rounds,
            args.warmup,
        )
        row("2. one list call vs minimal client script", ours, base, "<= 1.10")

        uv_env = dict(CLEAN_ENV, PYTHONDONTWRITEBYTECODE="1")
        uv_ours = ["uv", "run", "--quiet", "--no-project", SCRIPT, "--base-url", url, "--user-id", "alice"]
        uv_base = ["uv", "run", "--quiet", "--no-project", work / "list_uv.py", url, "alice"]
        times = {"ours": [], "baseline": []}
        for round_number in range(args.warmup + args.rounds):
            for name, command in (("ours", uv_ours), ("baseline", uv_base)):
                elapsed = timed(command, env=uv_env)
                if round_number >= args.warmup:
                    times[name].append(elapsed)
        row(
            "3. the same through uv run, PYTHONDONTWRITEBYTECODE=1",
            statistics.median(times["ours"]),
            statistics.median(times["baseline"]),
            "report",
        )

        out = work / "export.jsonl"
        count = args.memories
        ours_export = [python, SCRIPT, "--base-url", url, "--user-id", "big", "--export", out]
        pages, one_call = alternate(
            [python, work / "export_pages.py", url, "big", out],
            [python, work / "export_one_call.py", url, "big", out, str(count + 1)],
            args.rounds,
            args.warmup,
        )
        ours, base = alternate(
            ours_export,
            [python, work / "export_one_call.py", url, "big", out, str(count + 1)],
            args.rounds,
            args.warmup,
        )
        row(f"4a. export {count} memories vs sequential page loop", ours, pages, ">= 4x faster (<= 0.25)")
        row(f"4b. export {count} memories vs one list_memories(limit={count}) call", ours, base, "<= 1.25")
        assert len(out.read_text().splitlines()) == count

        peaks = {}
        for size in peak_sizes:
            user = "big" if size == count else f"size{size}"
            if size != count:
                seed(server, user, size)
            peaks[f"export {size}: ours"] = max_rss_mb(
                [python, SCRIPT, "--base-url", url, "--user-id", user, "--export", out]
            )
            peaks[f"export {size}: one call"] = max_rss_mb(
                [python, work / "export_one_call.py", url, user, out, str(size + 1)]
            )
    finally:
        server.stop()

    # Import: each run gets an empty server, started before the clock starts.
    lines = work / "import.jsonl"
    lines.write_text(
        "".join(
            json.dumps({"memory": f"fact number {n}", "user_id": f"user-{n % 10}", "topics": ["bench"]}) + "\n"
            for n in range(count)
        )
    )
    servers = []

    def on_empty_server(name, command):
        folder = work / f"import-{len(servers)}"
        folder.mkdir()
        fresh = start_server(folder)
        servers.append(fresh)
        return [fresh.url if part == "URL" else part for part in command]

    try:
        ours, base = alternate(
            [python, SCRIPT, "--base-url", "URL", "--import", lines, "--concurrency", "16"],
            [python, work / "import_loop.py", "URL", lines],
            max(1, args.rounds // 2),
            warmup=0,
            before_each=on_empty_server,
        )
        row(f"5. import {count} memories vs sequential create_memory loop", ours, base, ">= 1.4x faster (<= 0.71)")
        for size in peak_sizes:
            subset = work / f"import-{size}.jsonl"
            subset.write_text("".join(lines.read_text().splitlines(keepends=True)[:size]))
            fresh = on_empty_server("ours", ["URL"])[0]
            peaks[f"import {size}: ours"] = max_rss_mb(
                [python, SCRIPT, "--base-url", fresh, "--import", subset, "--concurrency", "16"]
            )
    finally:
        for fresh in servers:
            fresh.stop()

    print()
    for name, megabytes in peaks.items():
        print(f"6. peak RSS {name:<28} {megabytes:7.1f} MB", flush=True)

    import agno

    machine = {
        "date": datetime.date.today().isoformat(),
        "agno": getattr(agno, "__version__", None)
        or subprocess.run([python, "-m", "pip", "show", "agno"], capture_output=True, text=True).stdout,
        "python": platform.python_version(),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, {platform.system()} {platform.release()}",
        "rounds": args.rounds,
        "memories": count,
    }
    print("\n" + json.dumps(machine))
    if args.json:
        args.json.write_text(json.dumps({"machine": machine, "rows": rows, "peak_rss_mb": peaks}, indent=2))


if __name__ == "__main__":
    main()
