"""What curating a large user costs: --move-to of a 20,000-memory user among 200,000, its
--undo, and --add-topics by filter on the same 20,000 memories and its --undo.

    uv run python tests/benchmarks/curation.py                        # 200,000 memories, 1 round (about 15 minutes)
    uv run python tests/benchmarks/curation.py --rounds 3 --json results.json
    uv run python tests/benchmarks/curation.py --size 20000           # a quick look

Starts a dev server (SQLite, in a temporary folder) and fills it as tests/benchmarks/scale.py
does (a tenth of the memories belong to user "heavy", the rest ten per light user). Then
each round, each command a fresh process against that server, in this order:
  a  --user-id heavy --move-to newuser --yes --json      (newuser holds nothing: no model)
  b  --undo --json                                        (of a: the copies deleted, the originals back)
  c  --user-id heavy --add-topics bench2 --topics bench --yes --json
  d  --undo --json                                        (of c)
so every round starts from the same memories. The journal is on, in a temporary folder.
Per command: wall time (median, min-max), CPU user+sys (median, with the measuring
wrapper's few ms), peak RSS (max; the command's own process), and the requests the
server answered, by method, from its access log. The figures before these, and the old
way (export, rewrite, import, delete-all), are in docs/performance.md.
"""

import argparse
import atexit
import collections
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "manage_memories.py"
sys.path[:0] = [str(ROOT / "tests"), str(ROOT / "tests" / "benchmarks")]

from conftest import start_server  # noqa: E402
from same_fact_scale import machine_facts, run, script_digest  # noqa: E402
from scale import fill  # noqa: E402

COMMANDS = {
    "a": "`--user-id heavy --move-to newuser --yes`",
    "b": "`--undo` of that move",
    "c": "`--user-id heavy --add-topics bench2 --topics bench --yes`",
    "d": "`--undo` of that topic edit",
}


def requests_by_method(lines):
    """'7 GET, 20,000 POST, 5 DELETE': the access log's lines, counted by method."""
    counts = collections.Counter(line.split(" ", 1)[0] for line in lines)
    return ", ".join(f"{counts[method]:,} {method}" for method in ("GET", "POST", "PATCH", "DELETE") if counts[method])


def check(key, answer, heavy):
    """Stop the run if a command did not do the whole work it is timed for."""
    done = {
        "a": lambda: answer["moved"] + len(answer["already_held"]),
        "b": lambda: answer["recreated"] + answer["reverted"],
        "c": lambda: answer["changed"],
        "d": lambda: answer["reverted"],
    }[key]()
    if done != heavy:
        raise SystemExit(f"{key} did {done:,} of {heavy:,}: {json.dumps(answer)[:300]}")
    if key in ("b", "d") and (answer["failed"] or answer["conflicts"]):
        raise SystemExit(f"{key} left memories behind: {json.dumps(answer)[:300]}")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=200_000, help="memories in all, a tenth the heavy user's")
    parser.add_argument("--rounds", type=int, default=1, help="runs of each command (default 1)")
    parser.add_argument("--json", type=Path, help="also write the results to this JSON file")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="agentos-curation-"))
    atexit.register(shutil.rmtree, work, ignore_errors=True)
    heavy = args.size // 10
    facts = machine_facts() | {"memories": args.size, "heavy_user": heavy, "rounds": args.rounds}
    facts["load_before"] = [round(value, 2) for value in os.getloadavg()]
    print(f"load average before: {facts['load_before']}", flush=True)

    server = start_server(work)
    try:
        started = time.perf_counter()
        fill(server, args.size)
        print(f"{args.size:,} memories filled in {time.perf_counter() - started:.0f} s", flush=True)
        ours = [sys.executable, SCRIPT, "--base-url", server.url]
        commands = {
            "a": [*ours, "--user-id", "heavy", "--move-to", "newuser", "--yes", "--json"],
            "b": [*ours, "--undo", "--json"],
            "c": [*ours, "--user-id", "heavy", "--add-topics", "bench2", "--topics", "bench", "--yes", "--json"],
            "d": [*ours, "--undo", "--json"],
        }
        env = {"AGENTOS_MEMORY_JOURNAL": work / "journal"}
        results = {key: {"walls": [], "cpus": [], "peaks": [], "requests": []} for key in commands}
        for round_ in range(args.rounds):
            for key, command in commands.items():
                out = work / f"{key}-{round_}.out"
                asked = len(server.requests())
                wall, cpu, peak = run(command, out, env)
                check(key, json.loads(out.read_text()), heavy)
                result = results[key]
                result["walls"].append(wall)
                result["cpus"].append(cpu)
                result["peaks"].append(peak)
                result["requests"].append(requests_by_method(server.requests()[asked:]))
                print(
                    f"  round {round_ + 1} {key}: {wall:7.2f} s  CPU {cpu:7.2f} s  peak RSS {peak:6.0f} MB  "
                    f"{result['requests'][-1]}",
                    flush=True,
                )
    finally:
        server.stop()

    print("\n| command | memories | wall, median (min-max) | CPU, median | peak RSS | requests |")
    print("|---|---|---|---|---|---|")
    rows = {}
    for key, result in results.items():
        rows[key] = {
            "work": COMMANDS[key],
            "wall_s": round(statistics.median(result["walls"]), 1),
            "walls": [round(wall, 1) for wall in result["walls"]],
            "cpu_s": round(statistics.median(result["cpus"]), 1),
            "peak_rss_mb": round(max(result["peaks"]), 1),
            "requests": result["requests"][0],
        }
        row = rows[key]
        print(
            f"| {row['work']} | {heavy:,} | {row['wall_s']:.1f} s ({min(row['walls']):.1f}-{max(row['walls']):.1f}) "
            f"| {row['cpu_s']:.1f} s | {row['peak_rss_mb']:.0f} MB | {row['requests']} |"
        )
    facts["load_after"] = [round(value, 2) for value in os.getloadavg()]
    if script_digest() != facts["script_sha256"]:
        print(f"warning: {SCRIPT.name} changed during the run: the rounds may have measured different versions")
    print(f"\nload average after: {facts['load_after']}")
    print(json.dumps(facts))
    if args.json:
        args.json.write_text(json.dumps({"machine": facts, "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
