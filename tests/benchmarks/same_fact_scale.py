"""What comparing by meaning costs on a large server: --duplicates --by meaning and
--conflicts for a 20,000-memory user among 200,000, against what they cannot avoid.

    uv run python tests/benchmarks/same_fact_scale.py                    # 200,000 memories, 3 rounds (about 20 minutes)
    uv run python tests/benchmarks/same_fact_scale.py --json results.json
    uv run python tests/benchmarks/same_fact_scale.py --size 20000 --rounds 1   # a quick look

Starts a dev server (SQLite, in a temporary folder) and fills it as tests/benchmarks/scale.py
does (its fill: a tenth of the memories belong to user "heavy", the rest ten per light
user). Then, against that server, in turn (a b c d e, a b c d e, ...), each a fresh process:
  a  --user-id heavy --duplicates --by meaning --json, with an empty embedding cache each
     time: the first run's cost, every one of the heavy user's memories embedded
  b  the same with the cache warm (filled by one run beforehand, not counted)
  c  --user-id heavy --duplicates --json: by words, what the script could do before
  d  --user-id heavy --conflicts --json, with the same warm cache
  e  the floor: one raw httpx GET /memories?user_id=heavy&limit=N, JSON parsed (scale.py's FLOOR)
The journal goes to a temporary folder of its own. Per command: the wall time (median,
min-max), the CPU time, user + system (median; getrusage(RUSAGE_CHILDREN) around
scale.py's measure, so it includes its small wrapper process, given as "overhead"), the
peak RSS (max; the measured process alone) and the answer's meta, to check it ran.

The heavy user's memories are near-identical ("fact N of heavy: prefers tea in the
morning and reads before bed") and differ only by N: each memory's NEIGHBOURS closest
others all score above SAME_COSINE and are all turned down by the number rule (and
--conflicts reports them all as "number"), so the pair loop judges every candidate pair:
close to its worst case. Real memories are further apart, and most candidate pairs fall
below the threshold before any rule is read.
"""

import argparse
import atexit
import datetime
import hashlib
import json
import os
import platform
import resource
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "manage_memories.py"
sys.path[:0] = [str(ROOT / "tests"), str(ROOT / "tests" / "benchmarks")]

from conftest import start_server  # noqa: E402
from scale import FLOOR, fill, measure  # noqa: E402

TIMEOUT = 600  # seconds: a command that takes longer fails the run
COMMANDS = {
    "a": "`--duplicates --by meaning`, empty cache",
    "b": "`--duplicates --by meaning`, warm cache",
    "c": "`--duplicates` (by words)",
    "d": "`--conflicts`, warm cache",
    "e": "floor: raw GET + JSON parse",
}
META_KEYS = ("searched", "groups", "duplicates", "pairs", "shown")


def cpu_seconds():
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run(command, out, env=None):
    """(wall s, CPU s, peak RSS MB) of one command, its stdout to out and stderr to out.err.

    env and the redirections go through env(1) and sh's exec, which replace themselves
    with the command; timeout(1) stays as its parent (a few hundred KB, no CPU to speak of)."""
    settings = [f"{name}={value}" for name, value in (env or {}).items()]
    wrapped = ["timeout", TIMEOUT, "env", *settings, "sh", "-c", 'exec "$@" >"$0" 2>"$0.err"', out, *command]
    before, started = cpu_seconds(), time.perf_counter()
    try:
        wall, peak = measure(wrapped)
    except SystemExit:
        elapsed = time.perf_counter() - started
        error = Path(f"{out}.err").read_text() if Path(f"{out}.err").exists() else ""
        why = f"over {TIMEOUT} s" if elapsed >= TIMEOUT else f"failed after {elapsed:.1f} s"
        print(f"\n{why}: {' '.join(map(str, command))}\nstderr:\n{error}", file=sys.stderr, flush=True)
        raise
    return wall, cpu_seconds() - before, peak


def script_digest():
    return hashlib.sha256(SCRIPT.read_bytes()).hexdigest()[:16]


def machine_facts():
    from importlib.metadata import version

    def git(*args):
        return subprocess.run(["git", "-C", ROOT, *args], capture_output=True, text=True).stdout.strip()

    return {
        "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "commit": git("rev-parse", "--short", "HEAD"),
        "script_uncommitted": bool(git("status", "--short", "--", "scripts/manage_memories.py")),
        "script_sha256": script_digest(),  # the script runs from the working tree: which version was measured
        "agno": version("agno"),
        "python": platform.python_version(),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, {platform.system()} {platform.release()}",
    }


def markdown_table(rows, ratios):
    lines = [
        "| command | wall, median (min-max) | CPU user+sys, median | peak RSS | answer |",
        "|---|---|---|---|---|",
    ]
    for key, row in rows.items():
        wall = f"{row['wall_s']:.2f} s ({min(row['walls']):.2f}-{max(row['walls']):.2f})"
        meta = ", ".join(f"{name} {value:,}" for name, value in row["meta"].items())
        lines.append(
            f"| {key}. {COMMANDS[key]} | {wall} | {row['cpu_s']:.2f} s | {row['peak_rss_mb']:.0f} MB | {meta} |"
        )
    lines.append("")
    lines.append(", ".join(f"{name} {value:.2f}" for name, value in ratios.items()) + " (wall medians)")
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=200_000, help="memories in all, a tenth the heavy user's")
    parser.add_argument("--rounds", type=int, default=3, help="runs of each command (default 3)")
    parser.add_argument("--json", type=Path, help="also write the results to this JSON file")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="agentos-same-fact-"))
    atexit.register(shutil.rmtree, work, ignore_errors=True)
    (work / "floor.py").write_text(FLOOR)
    python, heavy = sys.executable, args.size // 10
    load_before = os.getloadavg()
    facts = machine_facts()
    print(f"load average before: {' '.join(f'{value:.2f}' for value in load_before)}", flush=True)

    server = start_server(work)
    try:
        started = time.perf_counter()
        fill(server, args.size)
        print(f"{args.size:,} memories filled in {time.perf_counter() - started:.0f} s", flush=True)
        ours = [python, SCRIPT, "--base-url", server.url, "--user-id", "heavy"]
        journal = {"AGENTOS_MEMORY_JOURNAL": work / "journal"}
        warm = journal | {"AGENTOS_MEMORY_CACHE": work / "cache-warm"}
        commands = {
            "a": [*ours, "--duplicates", "--by", "meaning", "--json"],
            "b": [*ours, "--duplicates", "--by", "meaning", "--json"],
            "c": [*ours, "--duplicates", "--json"],
            "d": [*ours, "--conflicts", "--json"],
            "e": [python, work / "floor.py", server.url, "user_id=heavy", f"limit={heavy}"],
        }
        envs = {"b": warm, "c": journal, "d": warm, "e": None}

        # The wrapper's own CPU, in every CPU figure below: the least of five runs of nothing.
        overhead = min(run(["true"], work / "true.out")[1] for _ in range(5))
        wall, cpu, _ = run(commands["b"], work / "warm-up.json", warm)
        with sqlite3.connect(work / "cache-warm" / "embeddings.sqlite") as db:
            cached = db.execute("SELECT count(*) FROM vectors").fetchone()[0]
        print(f"warm-up (fills the cache): {wall:.1f} s, CPU {cpu:.1f} s, {cached:,} vectors cached", flush=True)
        if cached < heavy:
            raise SystemExit(f"the warm-up cached {cached:,} vectors, not {heavy:,}")

        results = {key: {"walls": [], "cpus": [], "peaks": [], "metas": []} for key in commands}
        for round_ in range(args.rounds):
            for key, command in commands.items():
                env = envs.get(key)
                if key == "a":  # a cache of its own, new each time
                    env = journal | {"AGENTOS_MEMORY_CACHE": work / f"cache-cold-{round_}"}
                out = work / f"{key}-{round_}.out"
                wall, cpu, peak = run(command, out, env)
                if key == "a":
                    shutil.rmtree(work / f"cache-cold-{round_}")
                if key == "e":
                    meta = {"searched": int(out.read_text())}
                else:
                    answer = json.loads(out.read_text())["meta"]
                    meta = {name: answer[name] for name in META_KEYS if name in answer}
                    if key == "b" and "embedded again" in Path(f"{out}.err").read_text():
                        raise SystemExit("the warm cache could not be used: " + Path(f"{out}.err").read_text())
                if meta["searched"] != heavy:
                    raise SystemExit(f"{key} read {meta['searched']:,} memories, not {heavy:,}")
                result = results[key]
                result["walls"].append(wall)
                result["cpus"].append(cpu)
                result["peaks"].append(peak)
                result["metas"].append(meta)
                print(
                    f"  round {round_ + 1} {key}: {wall:7.2f} s  CPU {cpu:7.2f} s  peak RSS {peak:6.0f} MB  {meta}",
                    flush=True,
                )
    finally:
        server.stop()

    rows = {}
    for key, result in results.items():
        if any(meta != result["metas"][0] for meta in result["metas"]):
            raise SystemExit(f"{key} answered differently from one round to another: {result['metas']}")
        rows[key] = {
            "work": COMMANDS[key],
            "wall_s": round(statistics.median(result["walls"]), 2),
            "walls": [round(wall, 2) for wall in result["walls"]],
            "cpu_s": round(statistics.median(result["cpus"]), 2),
            "cpus": [round(cpu, 2) for cpu in result["cpus"]],
            "peak_rss_mb": round(max(result["peaks"]), 1),
            "meta": result["metas"][0],
        }
    wall = {key: row["wall_s"] for key, row in rows.items()}
    ratios = {
        "a/e": wall["a"] / wall["e"],
        "b/e": wall["b"] / wall["e"],
        "b/c": wall["b"] / wall["c"],
        "d/e": wall["d"] / wall["e"],
    }
    load_after = os.getloadavg()
    if script_digest() != facts["script_sha256"]:
        print(f"warning: {SCRIPT.name} changed during the run: the rounds may have measured different versions")
        facts["script_sha256_after"] = script_digest()
    facts |= {
        "memories": args.size,
        "heavy_user": heavy,
        "rounds": args.rounds,
        "cpu_overhead_s": round(overhead, 3),
        "load_before": [round(value, 2) for value in load_before],
        "load_after": [round(value, 2) for value in load_after],
    }
    print("\n" + markdown_table(rows, ratios))
    print(f"\nCPU figures include the measuring wrapper's {overhead:.2f} s.")
    print(f"load average after: {' '.join(f'{value:.2f}' for value in load_after)}")
    print(json.dumps(facts))
    if args.json:
        ratios = {name: round(value, 2) for name, value in ratios.items()}
        args.json.write_text(json.dumps({"machine": facts, "rows": rows, "ratios": ratios}, indent=2))


if __name__ == "__main__":
    main()
