"""Every everyday command against the requests it sends.

    uv run python tests/benchmarks/calls.py                       # 10 rounds after a warm-up, 5 to 10 minutes
    uv run python tests/benchmarks/calls.py --rounds 2            # a smoke check
    uv run python tests/benchmarks/calls.py --script OTHER.py     # another version of the script

For each command, three programs send the same requests to the same server: the
script, a minimal script of raw httpx calls (imports httpx and json only), and a
minimal AgentOSClient script. Each is a whole process, started with this Python.
They run in turn, round after round (the order rotates each round), after one
warm-up round in which the server's access log shows what each sent: a baseline
that sends other requests than the script is reported, ids and query order aside.
The table gives the medians of wall time and the ratios of the medians; the CPU
time (user + system) of the same runs is given beside, as a busy machine moves it
less than wall time.

Starts its own dev server on loopback (SQLite in a temporary folder) and seeds a
user with 40 memories. Writes start every round from the same state: a delete acts
on a memory seeded for that run outside the timing, an update sends content that
differs from the last run's, a create for a new user names a user of its own.
"""

import argparse
import atexit
import dataclasses
import datetime
import itertools
import json
import os
import platform
import re
import resource
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from collections import Counter
from pathlib import Path
from urllib.parse import parse_qsl, urlencode

from bench import max_rss_mb  # the same peak-RSS wrapper

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests"))

from conftest import CLEAN_ENV, start_server  # noqa: E402

USER = "alice"
MEMORIES = 40
QUESTION = "which thing does alice like most?"
# The script looks for its model next to itself; a copy elsewhere (an old version
# taken out of git) is pointed at the checkout's, so that every version finds one.
MODEL = ROOT / "models" / "all-minilm-l6-v2"


# === the baselines ============================================================
# Each command's baseline is a body under one of two preludes, written to a file of
# its own and run as `python FILE URL ARG...`: `args` holds the run's values.

RAW_PRELUDE = """\
import json, sys

import httpx

url, *args = sys.argv[1:]
http = httpx.Client(base_url=url, timeout=30)


def send(method, path, **options):
    response = http.request(method, path, **options)
    response.raise_for_status()
    return response.json() if response.content else None


"""

CLIENT_PRELUDE = """\
import asyncio, json, sys

import httpx
from agno.client import AgentOSClient

url, *args = sys.argv[1:]
client = AgentOSClient(base_url=url)


async def main():
{body}


asyncio.run(main())
"""

# --find by words at its smallest: the memories that share the most words with the question.
RANK_BY_WORDS = """\
asked = set(question.lower().split())
ranked = sorted(memories, key=lambda memory: -len(asked & set(memory["memory"].lower().split())))
for memory in ranked[:10]:
    print(memory["memory_id"], memory["memory"])
"""


@dataclasses.dataclass
class Command:
    name: str
    flags: object  # (args) -> the script's command line after --base-url
    raw: str  # the raw-httpx body
    client: str  # the AgentOSClient body (inside async def main)
    prepare: object  # (server, run number) -> the run's values, set up outside the timing
    target: float | None = None  # the most script/raw may be


def fixed(*values):
    return lambda server, number: list(values)


def seeded(server, number):
    """A memory of its own for a run that deletes one."""
    return [USER, server.seed(USER, f"a memory to delete, number {number}", ["bench"])["memory_id"]]


COMMANDS = [
    Command(
        "show",
        lambda args: ["--user-id", args[0], "--memory-id", args[1]],
        raw="""
user_id, memory_id = args
print(json.dumps(send("GET", f"/memories/{memory_id}", params={"user_id": user_id})))
""",
        client="""
user_id, memory_id = args
memory = await client.get_memory(memory_id, user_id=user_id)
print(memory.model_dump_json())
""",
        prepare=None,  # the first seeded memory: set in main()
        target=1.5,
    ),
    Command(
        "update",
        lambda args: ["--user-id", args[0], "--memory-id", args[1], "--update", args[2]],
        raw="""
user_id, memory_id, content = args
memory = send("GET", f"/memories/{memory_id}", params={"user_id": user_id})
assert memory["user_id"] == user_id
body = {"memory": content, "user_id": user_id, "topics": memory["topics"]}
print(json.dumps(send("PATCH", f"/memories/{memory_id}", json=body)))
""",
        client="""
user_id, memory_id, content = args
memory = await client.get_memory(memory_id, user_id=user_id)
assert memory.user_id == user_id
updated = await client.update_memory(memory_id, content, user_id, topics=memory.topics)
print(updated.model_dump_json())
""",
        prepare=None,
        target=1.5,
    ),
    Command(
        "update --topics alone",
        lambda args: ["--user-id", args[0], "--memory-id", args[1], "--topics", args[2]],
        raw="""
user_id, memory_id, topics = args
memory = send("GET", f"/memories/{memory_id}", params={"user_id": user_id})
assert memory["user_id"] == user_id
body = {"memory": memory["memory"], "user_id": user_id, "topics": topics.split(",")}
print(json.dumps(send("PATCH", f"/memories/{memory_id}", json=body)))
""",
        client="""
user_id, memory_id, topics = args
memory = await client.get_memory(memory_id, user_id=user_id)
assert memory.user_id == user_id
updated = await client.update_memory(memory_id, memory.memory, user_id, topics=topics.split(","))
print(updated.model_dump_json())
""",
        prepare=None,
        target=1.5,
    ),
    Command(
        "delete",
        lambda args: ["--user-id", args[0], "--memory-id", args[1], "--delete"],
        raw="""
user_id, memory_id = args
path, owner = f"/memories/{memory_id}", {"user_id": user_id}
memory = send("GET", path, params=owner)
send("DELETE", path, params=owner)
assert http.get(path, params=owner).status_code == 404
print(json.dumps(memory))
""",
        client="""
user_id, memory_id = args
memory = await client.get_memory(memory_id, user_id=user_id)
await client.delete_memory(memory_id, user_id=user_id)
try:
    await client.get_memory(memory_id, user_id=user_id)
    raise SystemExit("still there")
except httpx.HTTPStatusError as error:
    assert error.response.status_code == 404
print(memory.model_dump_json())
""",
        prepare=seeded,
        target=1.5,
    ),
    Command(
        "--topics-list",
        lambda args: ["--topics-list"],
        raw="""
send("GET", "/info")
print(json.dumps(send("GET", "/memory_topics")))
""",
        # AgentOSClient has no call of its own for /info (nor /health): its generic GET.
        client="""
await client._aget("/info")
print(json.dumps(await client.get_memory_topics()))
""",
        prepare=fixed(),
        target=1.5,
    ),
    Command(
        "--create, a user with no memories",
        lambda args: ["--user-id", args[0], "--create", args[1], "--topics", "preferences"],
        raw="""
user_id, content = args
newest = {"user_id": user_id, "sort_by": "updated_at", "sort_order": "desc", "limit": 1, "page": 1}
every = {"user_id": user_id, "sort_by": "memory_id", "sort_order": "asc", "limit": 5000, "page": 1}
send("GET", "/memories", params=newest)
assert all(memory["memory"] != content for memory in send("GET", "/memories", params=every)["data"])
body = {"memory": content, "user_id": user_id, "topics": ["preferences"]}
print(json.dumps(send("POST", "/memories", json=body)))
""",
        client="""
user_id, content = args
await client.list_memories(user_id=user_id, limit=1)
every = await client.list_memories(user_id=user_id, sort_by="memory_id", sort_order="asc", limit=5000)
assert all(memory.memory != content for memory in every.data)
memory = await client.create_memory(content, user_id, topics=["preferences"])
print(memory.model_dump_json())
""",
        prepare=lambda server, number: [f"newcomer-{secrets.token_hex(4)}", "Prefers dark mode"],
        target=1.5,
    ),
    Command(
        "--create --allow-duplicate",
        lambda args: ["--user-id", args[0], "--create", args[1], "--allow-duplicate"],
        raw="""
user_id, content = args
print(json.dumps(send("POST", "/memories", json={"memory": content, "user_id": user_id, "topics": []})))
""",
        client="""
user_id, content = args
memory = await client.create_memory(content, user_id, topics=[])
print(memory.model_dump_json())
""",
        # A user of its own, so that alice keeps her 40 memories for the reads.
        prepare=fixed("writer", "Prefers dark mode"),
    ),
    Command(
        "listing (--user-id)",
        lambda args: ["--user-id", args[0]],
        raw="""
newest = {"user_id": args[0], "sort_by": "updated_at", "sort_order": "desc", "limit": 20, "page": 1}
for memory in send("GET", "/memories", params=newest)["data"]:
    print(memory["memory_id"], memory["memory"])
""",
        client="""
page = await client.list_memories(user_id=args[0])
for memory in page.data:
    print(memory.memory_id, memory.memory)
""",
        prepare=fixed(USER),
    ),
    Command(
        "--stats",
        lambda args: ["--stats"],
        raw="""
for user in send("GET", "/user_memory_stats", params={"limit": 20, "page": 1})["data"]:
    print(user["user_id"], user["total_memories"])
""",
        client="""
stats = await client.get_user_memory_stats()
for user in stats.data:
    print(user.user_id, user.total_memories)
""",
        prepare=fixed(),
    ),
    Command(
        "--whoami",
        lambda args: ["--whoami"],
        raw="""
print(json.dumps(send("GET", "/info")))
""",
        client="""
print(json.dumps(await client._aget("/info")))
""",
        prepare=fixed(),
    ),
    Command(
        "--check",
        # The script names its probe user itself; the baselines take theirs from args.
        lambda args: ["--check"],
        raw="""
user_id = args[0]
first = "agentos-api-memory check probe: prefers green tea"
newest = {"user_id": user_id, "sort_by": "updated_at", "sort_order": "desc", "limit": 1, "page": 1}
every = {"user_id": user_id, "sort_by": "memory_id", "sort_order": "asc", "limit": 5000, "page": 1}
owner = {"user_id": user_id}
http.get("/health")
send("GET", "/info")
send("GET", "/memories", params=newest)
send("GET", "/user_memory_stats", params={"limit": 50000, "page": 1})
send("GET", "/memories", params=newest)
send("GET", "/memories", params=every)
probe = send("POST", "/memories", json={"memory": first, "user_id": user_id, "topics": ["check"]})
path = f"/memories/{probe['memory_id']}"
assert send("GET", path, params=owner)["memory"] == first
assert probe["memory_id"] in [memory["memory_id"] for memory in send("GET", "/memories", params=every)["data"]]
memory = send("GET", path, params=owner)
body = {"memory": "agentos-api-memory check probe: prefers black coffee", "user_id": user_id, "topics": memory["topics"]}
send("PATCH", path, json=body)
assert probe["memory_id"] in [memory["memory_id"] for memory in send("GET", "/memories", params=every)["data"]]
send("GET", path, params=owner)
send("DELETE", path, params=owner)
assert http.get(path, params=owner).status_code == 404
assert http.get(path, params=owner).status_code == 404
print("ok")
""",
        client="""
user_id = args[0]
first = "agentos-api-memory check probe: prefers green tea"
await client._aget("/health")
await client._aget("/info")
await client.list_memories(user_id=user_id, limit=1)
await client.get_user_memory_stats(limit=50000)
await client.list_memories(user_id=user_id, limit=1)
await client.list_memories(user_id=user_id, sort_by="memory_id", sort_order="asc", limit=5000)
probe = await client.create_memory(first, user_id, topics=["check"])
assert (await client.get_memory(probe.memory_id, user_id=user_id)).memory == first
every = await client.list_memories(user_id=user_id, sort_by="memory_id", sort_order="asc", limit=5000)
assert probe.memory_id in [memory.memory_id for memory in every.data]
memory = await client.get_memory(probe.memory_id, user_id=user_id)
await client.update_memory(probe.memory_id, "agentos-api-memory check probe: prefers black coffee", user_id, topics=memory.topics)
every = await client.list_memories(user_id=user_id, sort_by="memory_id", sort_order="asc", limit=5000)
assert probe.memory_id in [memory.memory_id for memory in every.data]
await client.get_memory(probe.memory_id, user_id=user_id)
await client.delete_memory(probe.memory_id, user_id=user_id)
for _ in range(2):
    try:
        await client.get_memory(probe.memory_id, user_id=user_id)
        raise SystemExit("still there")
    except httpx.HTTPStatusError as error:
        assert error.response.status_code == 404
print("ok")
""",
        prepare=lambda server, number: [f"agentos-api-memory-check-{secrets.token_hex(4)}"],
        target=2.0,
    ),
    Command(
        "--find --by words",
        lambda args: ["--user-id", args[0], "--find", args[1], "--by", "words"],
        raw="""
user_id, question = args
every = {"user_id": user_id, "sort_by": "memory_id", "sort_order": "asc", "limit": 5000, "page": 1}
memories = send("GET", "/memories", params=every)["data"]
"""
        + RANK_BY_WORDS,
        client="""
user_id, question = args
every = await client.list_memories(user_id=user_id, sort_by="memory_id", sort_order="asc", limit=5000)
memories = [memory.model_dump() for memory in every.data]
"""
        + RANK_BY_WORDS,
        prepare=fixed(USER, QUESTION),
    ),
]


def write_baselines(folder):
    """{command name: {"raw": path, "client": path}}, one file per command and kind."""
    files = {}
    for number, command in enumerate(COMMANDS):
        raw, client = folder / f"raw_{number:02d}.py", folder / f"client_{number:02d}.py"
        raw.write_text(RAW_PRELUDE + textwrap.dedent(command.raw).lstrip())
        body = textwrap.indent(textwrap.dedent(command.client).strip(), "    ")
        client.write_text(CLIENT_PRELUDE.format(body=body))
        files[command.name] = {"raw": raw, "client": client}
    return files


# === what each sent ===========================================================

UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
RUN_SUFFIX = re.compile(r"-[0-9a-f]{8}\b")  # the run's own user ids: newcomer-..., ...-check-...


def normalized(line):
    """'METHOD PATH?QUERY STATUS' with ids made alike and the query sorted: AgentOSClient
    sends list parameters in another order than the script, the same request."""
    method, target, status = line.split(" ")
    path, _, query = target.partition("?")
    query = urlencode(sorted(parse_qsl(query)))
    target = f"{path}?{query}" if query else path
    return RUN_SUFFIX.sub("-{run}", UUID.sub("{id}", f"{method} {target} {status}"))


def summary(lines):
    """The requests in a few words: the methods in order, or counted when there are many."""
    methods = [line.split(" ")[0] for line in lines]
    if len(methods) <= 4:
        return ", ".join(methods)
    counted = ", ".join(f"{count} {method}" if count > 1 else method for method, count in Counter(methods).items())
    return f"{len(methods)}: {counted}"


# === the runs =================================================================


def timed(command, env):
    """(wall seconds, CPU seconds) of one whole process: CPU is user + system, as the
    operating system counts it for the child once reaped."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    result = subprocess.run(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, check=False)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if result.returncode != 0:
        raise SystemExit(
            f"benchmark command failed ({result.returncode}): {' '.join(map(str, command))}\n{result.stderr}"
        )
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


@dataclasses.dataclass
class Measured:
    command: Command
    requests: list  # the script's, as the access log shows them
    mismatches: dict  # kind -> (the script's requests, the baseline's), where they differ
    seconds: dict  # kind -> [wall seconds of each run]
    cpu: dict  # kind -> [CPU seconds of each run]

    def median(self, kind, of="seconds"):
        return statistics.median(getattr(self, of)[kind])

    def ratio(self, kind, of="seconds"):
        return self.median("script", of) / self.median(kind, of)

    def paired(self, kind):
        """Each round's script/baseline: its spread says how noisy the machine was."""
        return sorted(mine / theirs for mine, theirs in zip(self.seconds["script"], self.seconds[kind]))


def measure(server, command, programs, rounds, warmup):
    """Run the three in turn, the order rotating each round; the warm-up rounds record the requests."""
    kinds = list(programs)
    seconds = {kind: [] for kind in kinds}
    cpu = {kind: [] for kind in kinds}
    sent = {}
    numbers = itertools.count()
    for round_number in range(warmup + rounds):
        turn = round_number % len(kinds)
        order = kinds[turn:] + kinds[:turn]
        for kind in order:
            args = command.prepare(server, next(numbers))
            program, env = programs[kind]
            before = len(server.requests())
            wall, used = timed(program(args), env=env)
            if round_number < warmup:
                sent[kind] = server.requests()[before:]
            else:
                seconds[kind].append(wall)
                cpu[kind].append(used)
    script = [normalized(line) for line in sent["script"]]
    mismatches = {}
    for kind in ("raw", "client"):
        theirs = [normalized(line) for line in sent[kind]]
        if theirs != script:
            mismatches[kind] = (script, theirs)
    return Measured(command, sent["script"], mismatches, seconds, cpu)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--script", type=Path, default=ROOT / "scripts" / "manage_memories.py", help="the script to measure"
    )
    parser.add_argument("--rounds", type=int, default=10, help="measured rounds of each command (default: 10)")
    parser.add_argument("--warmup", type=int, default=1, help="unmeasured rounds first (default: 1)")
    parser.add_argument("--only", action="append", help="measure only the commands whose name contains this")
    parser.add_argument("--json", type=Path, help="also write the results to this JSON file")
    args = parser.parse_args()
    if args.warmup < 1:
        parser.error("--warmup must be 1 or more: the warm-up round records the requests")
    if args.rounds < 2:
        parser.error("--rounds must be 2 or more: the spread of the rounds says how noisy the machine was")

    work = Path(tempfile.mkdtemp(prefix="agentos-calls-"))
    atexit.register(shutil.rmtree, work, ignore_errors=True)
    baselines = write_baselines(work)
    python = sys.executable
    script_env = dict(CLEAN_ENV, AGENTOS_MEMORY_MODEL=str(MODEL))

    def script_command(command):
        return lambda values: [python, args.script, "--base-url", server.url, *command.flags(values)]

    def baseline_command(path):
        return lambda values: [python, path, server.url, *values]

    (work / "server").mkdir()
    server = start_server(work / "server")
    try:
        seeded_ids = [
            server.seed(USER, f"alice likes thing number {n} very much", ["bench", f"topic-{n % 5}"])["memory_id"]
            for n in range(MEMORIES)
        ]
        shown, updated, retopiced = seeded_ids[:3]
        prepared = {
            "show": fixed(USER, shown),
            # Content and topics differ from the last run's, so that every run sends its PATCH.
            "update": lambda server, number: [USER, updated, f"alice likes thing number 1, as of run {number}"],
            "update --topics alone": lambda server, number: [USER, retopiced, f"bench,run-{number % 2}"],
        }
        commands = [
            dataclasses.replace(command, prepare=prepared.get(command.name, command.prepare)) for command in COMMANDS
        ]
        if args.only:
            commands = [command for command in commands if any(part in command.name for part in args.only)]

        results = []
        for command in commands:
            programs = {
                "script": (script_command(command), script_env),
                "raw": (baseline_command(baselines[command.name]["raw"]), CLEAN_ENV),
                "client": (baseline_command(baselines[command.name]["client"]), CLEAN_ENV),
            }
            measured = measure(server, command, programs, args.rounds, args.warmup)
            results.append(measured)
            low, middle, high = statistics.quantiles(measured.paired("raw"), n=4)
            print(
                f"{command.name:<36} {summary(measured.requests):<28} script {measured.median('script'):6.3f} s  "
                f"raw {measured.median('raw'):6.3f} s  client {measured.median('client'):6.3f} s  "
                f"script/raw {measured.ratio('raw'):4.2f} (by round: median {middle:.2f}, middle half "
                f"{low:.2f}-{high:.2f})  "
                f"script/client {measured.ratio('client'):4.2f}  "
                f"CPU script {measured.median('script', 'cpu'):5.3f} s raw {measured.median('raw', 'cpu'):5.3f} s "
                f"client {measured.median('client', 'cpu'):5.3f} s",
                flush=True,
            )
            for kind, (script, theirs) in measured.mismatches.items():
                print(f"    the {kind} baseline sent other requests than the script:", file=sys.stderr)
                print(f"      script: {script}\n      {kind}: {theirs}", file=sys.stderr)

        peaks = {}
        show = next((command for command in commands if command.name == "show"), None)
        if show:
            values = show.prepare(server, 0)
            for kind, command, env in (
                ("script", script_command(show)(values), script_env),
                ("raw", baseline_command(baselines["show"]["raw"])(values), CLEAN_ENV),
                ("client", baseline_command(baselines["show"]["client"])(values), CLEAN_ENV),
            ):
                peaks[kind] = statistics.median(max_rss_mb(command, env=env) for _ in range(3))
    finally:
        server.stop()

    print()
    print(table(results))
    if peaks:
        print()
        print(", ".join(f"{kind} {megabytes:.1f} MB" for kind, megabytes in peaks.items()), "(peak RSS of show)")
        print()
    machine = {
        "date": datetime.date.today().isoformat(),
        "script": str(args.script),
        "python": platform.python_version(),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, {platform.system()} {platform.release()}",
        "rounds": args.rounds,
        "load average": os.getloadavg(),
    }
    print(json.dumps(machine))
    if args.json:
        rows = [
            {
                "command": measured.command.name,
                "requests": measured.requests,
                "seconds": measured.seconds,
                "cpu_seconds": measured.cpu,
                "ratio_raw": round(measured.ratio("raw"), 3),
                "ratio_client": round(measured.ratio("client"), 3),
                "paired_raw": [round(ratio, 3) for ratio in measured.paired("raw")],
                "target": measured.command.target,
                "mismatches": measured.mismatches,
            }
            for measured in results
        ]
        args.json.write_text(json.dumps({"machine": machine, "rows": rows, "peak_rss_mb": peaks}, indent=2))


def table(results):
    """The results as a Markdown table, ready for docs/performance.md."""
    header = (
        "| command | requests sent | script | raw httpx | AgentOSClient | script/raw | script/AgentOSClient "
        "| script/raw, CPU | target |"
    )
    lines = [
        header,
        "|---|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    for measured in results:
        target = measured.command.target
        verdict = ""
        if target:
            verdict = f"≤ {target:g}x: {'met' if measured.ratio('raw') <= target else 'missed'}"
        lines.append(
            f"| {measured.command.name} | {summary(measured.requests)} | {measured.median('script'):.3f} s "
            f"| {measured.median('raw'):.3f} s | {measured.median('client'):.3f} s "
            f"| {measured.ratio('raw'):.2f} | {measured.ratio('client'):.2f} | {measured.ratio('raw', 'cpu'):.2f} "
            f"| {verdict} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    main()
