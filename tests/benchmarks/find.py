"""What --find by meaning costs, against what it cannot avoid.

    uv run python tests/benchmarks/find.py                      # 40 and 1,000 memories, 5 rounds
    uv run python tests/benchmarks/find.py --scale              # also a 20,000-memory user among 200,000

For a user with 40 memories and one with 1,000 (SQLite, loopback), medians of the
rounds, each command a fresh process:
  list     --user-id U --all: reading the user's memories, nothing more
  embed    the floor of meaning: a Python process that loads ONNX Runtime, the tokenizer
           and the model, and embeds the same texts and the query, with the libraries
           alone (no HTTP, no cache)
  first    --find with an empty cache: reads, embeds every memory, ranks
  cached   --find again: the memories' vectors come from the cache, only the query is embedded
The target: first <= 1.3 x (list + embed).

With --scale, on 200,000 memories (a 20,000-memory user among 18,000 light users):
--find as it runs unasked (above 2,000 memories to embed it ranks by words), of the
heavy user and of everyone; and --by meaning of the heavy user, first (empty cache)
and cached. With --everyone, --by meaning of everyone as well (about 20 minutes
to embed 200,000 memories on two cores).
"""

import atexit
import argparse
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
from scale import measure  # noqa: E402

QUERY = "what does she do to relax in the evening"
SUBJECTS = ["tea", "running", "jazz", "Lisbon", "Python", "cats", "trains", "chess", "bread", "sailing"]
VERBS = ["likes", "avoids", "talks about", "is learning about", "reads about", "dreams of"]
WHEN = ["in the morning", "after work", "on weekends", "in winter", "before bed", "with friends"]

# The floor: the libraries alone, as someone would call them without this script.
FLOOR = """
import sys
import numpy, onnxruntime
from tokenizers import Tokenizer
folder, texts = sys.argv[1], open(sys.argv[2]).read().splitlines()
tokenizer = Tokenizer.from_file(folder + "/tokenizer.json")
tokenizer.enable_truncation(128)
tokenizer.enable_padding()
session = onnxruntime.InferenceSession(folder + "/model.onnx", providers=["CPUExecutionProvider"])
for start in range(0, len(texts), 32):
    batch = tokenizer.encode_batch(texts[start:start + 32])
    ids = numpy.array([encoding.ids for encoding in batch], dtype=numpy.int64)
    mask = numpy.array([encoding.attention_mask for encoding in batch], dtype=numpy.int64)
    session.run(None, {"input_ids": ids, "attention_mask": mask, "token_type_ids": numpy.zeros_like(ids)})
"""


def fact(number, user):
    """A memory text of its own for each number: the cache keys on the text."""
    subject = SUBJECTS[number % len(SUBJECTS)]
    verb = VERBS[number // len(SUBJECTS) % len(VERBS)]
    when = WHEN[number // (len(SUBJECTS) * len(VERBS)) % len(WHEN)]
    return f"{user} {verb} {subject} {when} (note {number})"


def fill(server, memories):
    """memories: {user: count}, written through agno's own bulk upsert."""
    from agno.db.schemas import UserMemory

    database = server.database()
    batch = []
    for user, count in memories.items():
        for number in range(count):
            batch.append(UserMemory(memory=fact(number, user), memory_id=f"{user}-{number:07d}", user_id=user))
            if len(batch) == 5000:
                database.upsert_memories(batch)
                batch = []
    if batch:
        database.upsert_memories(batch)


def median_of(rounds, command, before=None):
    times, peaks = [], []
    for _ in range(rounds):
        if before:
            before()
        elapsed, peak = measure(command)
        times.append(elapsed)
        peaks.append(peak)
    return statistics.median(times), max(peaks)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--sizes", default="40,1000", help="memories of each user measured (default %(default)s)")
    parser.add_argument("--scale", action="store_true", help="also 200,000 memories (about 5 minutes)")
    parser.add_argument("--everyone", action="store_true", help="with --scale: everyone by meaning too")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="agentos-find-"))
    atexit.register(shutil.rmtree, work, ignore_errors=True)  # its databases can take gigabytes
    cache = work / "cache"
    (work / "floor.py").write_text(FLOOR)
    env_cache = ["env", f"XDG_CACHE_HOME={cache}"]
    python = sys.executable

    def empty_cache():
        shutil.rmtree(cache, ignore_errors=True)

    server = start_server(work)
    try:
        sizes = {f"u{count}": count for count in map(int, args.sizes.split(","))}
        fill(server, sizes)
        print("| memories | list | embed (floor) | --find, first | ratio to list + embed | --find, cached | peak RSS |")
        print("|---|---|---|---|---|---|---|")
        for user, count in sizes.items():
            texts = work / f"{user}.txt"
            texts.write_text("\n".join([QUERY] + [fact(number, user) for number in range(count)]) + "\n")
            ours = [*env_cache, python, SCRIPT, "--base-url", server.url, "--user-id", user]
            listing, _ = median_of(args.rounds, [*ours, "--all"])
            floor, _ = median_of(args.rounds, [python, work / "floor.py", ROOT / "models" / "all-minilm-l6-v2", texts])
            first, peak = median_of(args.rounds, [*ours, "--find", QUERY], before=empty_cache)
            cached, _ = median_of(args.rounds, [*ours, "--find", QUERY])
            print(
                f"| {count:,} | {listing:.2f} s | {floor:.2f} s | {first:.2f} s | {first / (listing + floor):.2f} "
                f"| {cached:.2f} s | {peak:.0f} MB |",
                flush=True,
            )
    finally:
        server.stop()
    if args.scale:
        scale(work, env_cache, python, args.everyone)


def scale(work, env_cache, python, everyone):
    folder = work / "scale"
    folder.mkdir()
    server = start_server(folder)
    try:
        started = time.perf_counter()
        fill(server, {"heavy": 20_000} | {f"light-{number:05d}": 10 for number in range(18_000)})
        print(f"\n200,000 memories filled in {time.perf_counter() - started:.0f} s\n", flush=True)
        print("| --find of | as it runs unasked | --by meaning, first | --by meaning, cached | peak RSS |")
        print("|---|---|---|---|---|")
        for name, scope in (("the heavy user (20,000)", ["--user-id", "heavy"]), ("everyone (200,000)", [])):
            shutil.rmtree(work / "cache", ignore_errors=True)
            ours = [*env_cache, python, SCRIPT, "--base-url", server.url, *scope, "--find", QUERY]
            unasked, peak = median_of(1, ours)
            if scope or everyone:
                first, first_peak = median_of(1, [*ours, "--by", "meaning"])
                cached, cached_peak = median_of(1, [*ours, "--by", "meaning"])
                meaning = f"{first:.1f} s | {cached:.2f} s"
                peak = max(peak, first_peak, cached_peak)
            else:
                meaning = "not measured (--everyone) | -"
            print(f"| {name} | {unasked:.2f} s (words) | {meaning} | {peak:.0f} MB |", flush=True)
    finally:
        server.stop()


if __name__ == "__main__":
    main()
