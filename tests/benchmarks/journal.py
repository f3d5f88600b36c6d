"""Journal benchmark: what writing the journal first costs the bulk changes.

    uv run python tests/benchmarks/journal.py                       # docs/performance.md's rows (about 15 minutes)
    uv run python tests/benchmarks/journal.py --size 20000 --rounds 1  # a quick look

Fills a SQLite server with --size memories through agno's own upsert_memories (the
scale benchmark's fill: a tenth of them one heavy user's), then times, in pairs with
and without --no-journal so that the machine's drift falls on both alike:
- --delete-all of the heavy user, refilled before each run;
- an --import that updates every memory of the heavy user (each round a new text).
Prints the medians and the ratio journal / no journal.
"""

import argparse
import atexit
import json
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from scale import SCRIPT, fill, measure  # noqa: E402

from conftest import start_server  # noqa: E402


def updating_import(path, heavy, round_number):
    """An import file that changes the text of each of the heavy user's memories."""
    with open(path, "w") as out:
        for memory in heavy:
            line = dict(memory, memory=f"{memory['memory']} (round {round_number})")
            out.write(json.dumps(line) + "\n")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=200_000, help="memories on the server (default: %(default)s)")
    parser.add_argument("--rounds", type=int, default=3, help="pairs of runs of each command (default: %(default)s)")
    parser.add_argument(
        "--work", choices=("both", "delete-all", "import"), default="both", help="which work to time (default: both)"
    )
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="agentos-journal-bench-"))
    atexit.register(shutil.rmtree, work, ignore_errors=True)  # its databases can take gigabytes
    server = start_server(work)
    python = sys.executable
    try:
        fill(server, args.size)
        ours = [python, SCRIPT, "--base-url", server.url]
        results = {}

        delete = [*ours, "--user-id", "heavy", "--delete-all", "--yes"]
        for journal in (True, False):
            results[("--delete-all, the heavy user", journal)] = []
        for _ in range(args.rounds if args.work != "import" else 0):
            for journal in (True, False):
                elapsed, _ = measure(delete + ([] if journal else ["--no-journal"]))
                results[("--delete-all, the heavy user", journal)].append(elapsed)
                fill(server, args.size, heavy_only=True)

        export = work / "heavy.jsonl"
        measure([*ours, "--user-id", "heavy", "--export", export])
        heavy = [json.loads(line) for line in export.read_text().splitlines()]
        name = f"--import updating the heavy user's {len(heavy):,}"
        for journal in (True, False):
            results[(name, journal)] = []
        for round_number in range(args.rounds if args.work != "delete-all" else 0):
            for journal in (True, False):
                updating_import(work / "update.jsonl", heavy, f"{round_number}-{journal}")
                command = [*ours, "--import", work / "update.jsonl"] + ([] if journal else ["--no-journal"])
                elapsed, _ = measure(command)
                results[(name, journal)].append(elapsed)

        print(f"\nSQLite, {args.size:,} memories, medians of {args.rounds}\n")
        print("| work | with the journal | --no-journal | ratio |")
        print("|---|---|---|---|")
        for work_name in dict.fromkeys(name for (name, _), runs in results.items() if runs):
            with_journal = statistics.median(results[(work_name, True)])
            without = statistics.median(results[(work_name, False)])
            print(f"| {work_name} | {with_journal:.2f} s | {without:.2f} s | {with_journal / without:.2f}x |")
    finally:
        server.stop()


if __name__ == "__main__":
    main()
