"""Every action against a hostile server: a fixed corpus of bad answers (wrong types, nulls,
ids that would leave their path, deep nesting, repeated pages, lying meta, endless and
slow bodies, non-JSON, HTML, empty and 204 answers, a nested 500, redirects, garbage
answers to writes, endless or old-looking identification). Each run must end in time,
in bounded memory, with one line of a declared error type (or a success that no garbage
answer fed), never a traceback, and never a request outside the memory API."""

import json
import re
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import pytest

from conftest import CLEAN_ENV, EVERY_ACTION, ROOT, NoInvocation, invocation, run_script, run_script_measured
from faults import CREATED, AgentOSThenFault
from hostile_server import HostileServer, Reply, endless, trickle
from test_hostile_input import outside_memory_api

sys.path.insert(0, str(ROOT / "scripts"))
import manage_memories  # noqa: E402

pytestmark = pytest.mark.xdist_group("fuzz")

TIMEOUT = 3  # the script's --timeout
# An endless body must be cut by its size, not by --timeout: against those families the
# script gets a longer one, so that a client that would read one whole is seen doing it
# (past RSS_BOUND_MB) however busy the machine is.
ENDLESS_TIMEOUT = 10
ENDLESS = ("endless_body", "endless_identity")
SLACK = 10  # a run still going this many seconds after its --timeout is killed, and fails
RSS_BOUND_MB = 200
# What a run may take at all (RLIMIT_DATA): past RSS_BOUND_MB it fails anyway; this keeps
# a client that would read a hostile answer whole from taking the machine with it.
DATA_LIMIT = 1 << 30
WORKERS = 12  # runs at once: most of a run's time is the script starting, or waiting on the server
DEPTH = 50_000
ALLOWED_EXIT_CODES = (1, 3, 4)  # failed, not an AgentOS or unreachable, auth: what a hostile server may bring


# --- shapes ------------------------------------------------------------------


def row(memory_id="m1", **fields):
    return {
        "memory_id": memory_id,
        "memory": "lives in Berlin",
        "topics": ["home"],
        "user_id": "alice",
        "agent_id": None,
        "team_id": None,
        "updated_at": "2026-01-01T00:00:00Z",
        **fields,
    }


def page(rows, total_count=None, **meta):
    """A page of rows (memories or user stats) as agno answers it, its meta overridden by meta."""
    total = len(rows) if total_count is None else total_count
    meta = {"page": 1, "limit": 20, "total_pages": -(-total // 20), "total_count": total, **meta}
    return {"data": rows, "meta": meta}


def stats_row(user_id="alice", **fields):
    return {"user_id": user_id, "total_memories": 2, "last_memory_updated_at": "2026-01-01T00:00:00Z", **fields}


class DeepList:
    """A JSON value of `depth` nested lists, kept as text: json.dumps would recurse on it."""

    def __init__(self, depth):
        self.text = "[" * depth + "]" * depth


def dumps(value):
    """JSON text of value, with DeepList placeholders spliced in as text."""
    marks = {}

    def default(item):
        if isinstance(item, DeepList):
            mark = f"@@deep{len(marks)}@@"
            marks[mark] = item.text
            return mark
        raise TypeError(item)

    text = json.dumps(value, default=default)
    for mark, deep_text in marks.items():
        text = text.replace(f'"{mark}"', deep_text)
    return text.encode()


def answer(value, status=200, honest=False):
    return Reply(status, dumps(value), honest=honest)


def by_route(asked, *, listing, memory, topics, user_stats, written=None, honest=False):
    """What a memory-API route answers: each body given as a JSON value or a Reply, memory
    and written also as functions of the memory id asked; deletes answered 204, as agno does."""
    memory_id = asked.path.removeprefix("/memories/")
    method, path = asked.method, asked.path
    if method == "GET" and path == "/memories":
        body = listing
    elif method == "GET" and path.startswith("/memories/"):
        body = memory(memory_id) if callable(memory) else memory
    elif method in ("POST", "PATCH") and path.startswith("/memories"):
        body = written if written is not None else memory
        body = body(memory_id) if callable(body) else body
    elif method == "DELETE" and path.startswith("/memories"):
        body = Reply(204, honest=True)
    elif method == "GET" and path == "/memory_topics":
        body = topics
    elif method == "GET" and path == "/user_memory_stats":
        body = user_stats
    else:
        return answer({"detail": "Not Found"}, 404, honest=True)
    return body if isinstance(body, Reply) else answer(body, honest=honest)


# --- the corpus --------------------------------------------------------------
#
# Each family is an answer function (Asked -> Reply). Most shape only the memory routes
# (@memory_routes), and /health and /info answer as agno 3.1.10 does, so that the script
# gets past identification; a few shape identification itself (@every_route).

CORPUS = {}
IDENTITY_ROUTES = ("/health", "/info")


def plausible_identity(asked):
    if asked.path == "/info":
        return answer({"agno_version": "3.1.10", "auth_mode": "none", "user_isolation": False}, honest=True)
    return answer({"status": "ok", "instantiated_at": "2026-01-01T00:00:00Z"}, honest=True)


def memory_routes(family):
    def answer_any(asked):
        return plausible_identity(asked) if asked.path in IDENTITY_ROUTES else family(asked)

    CORPUS[family.__name__] = answer_any
    return family


def every_route(family):
    CORPUS[family.__name__] = family
    return family


def honest_memories(asked):
    """A small AgentOS: alice's two memories that state one fact, answered as agno does."""
    rows = [row("m1"), row("m2", topics=["city"])]
    return by_route(
        asked,
        listing=page(rows),
        memory=lambda memory_id: row(memory_id),
        topics=["city", "home"],
        user_stats=page([stats_row()]),
        honest=True,
    )


@memory_routes
def data_not_a_list(asked):
    return by_route(
        asked,
        listing={"data": {"m1": row()}, "meta": page([])["meta"] | {"total_count": 1}},
        memory=[row()],
        topics={"topics": ["home"]},
        user_stats={"data": {"alice": 2}, "meta": page([])["meta"] | {"total_count": 1}},
    )


@memory_routes
def rows_are_strings(asked):
    return by_route(asked, listing=page(["m1", "m2"]), memory="m1", topics="home,city", user_stats=page(["alice"]))


@memory_routes
def wrong_types(asked):
    rows = [row("m1", topics=[1, 2]), row(7), row("m3", updated_at={"seconds": 1}), row("m4", memory=["a"])]
    return by_route(
        asked,
        listing=page(rows),
        memory=lambda memory_id: row(memory_id, topics=3, updated_at={"seconds": 1}),
        written=row(7),
        topics=[1, 2, 3],
        user_stats=page([stats_row(5, total_memories="2", last_memory_updated_at={"seconds": 1})]),
    )


@memory_routes
def nulls(asked):
    rows = [row(None), row("m2", memory=None, user_id=None, topics=None)]
    return by_route(
        asked,
        listing={"data": rows, "meta": {"page": None, "limit": None, "total_pages": None, "total_count": "2"}},
        memory=row(None),
        written=answer(None),
        topics=None,
        user_stats={"data": None, "meta": None},
    )


PATH_LIKE_IDS = ["../../health?x=", "a/b", "%2e%2e", "..", "m1/../../info", "m1?user_id=mallory"]


@memory_routes
def path_like_ids(asked):
    rows = [row(memory_id) for memory_id in PATH_LIKE_IDS]
    return by_route(
        asked,
        listing=page(rows),
        memory=row("../../health?x="),
        written=row("a/b"),
        # Topics and user ids are text, never part of a path: these are honest, and shown.
        topics=answer(["../../health"], honest=True),
        user_stats=answer(page([stats_row("../../health?x=")]), honest=True),
    )


@memory_routes
def deep_nesting(asked):
    """Rows that are right but for one field nested 50,000 deep, which a client may ignore."""
    return by_route(
        asked,
        listing=page([row("m1", extra=DeepList(DEPTH)), row("m2")]),
        memory=lambda memory_id: row(memory_id, extra=DeepList(DEPTH)),
        topics=answer(["home", DeepList(DEPTH)]),
        user_stats=page([stats_row(extra=DeepList(DEPTH))]),
        honest=True,
    )


@memory_routes
def same_page_forever(asked):
    """Every page is the first, with an id twice and a total of a billion: only the first is honest."""
    first = asked.page == 1
    rows = [row("m1"), row("m1"), row("m2")]
    return by_route(
        asked,
        listing=answer(page(rows, 10**9, page=asked.page), honest=first),
        memory=lambda memory_id: row(memory_id),
        topics=["home"],
        user_stats=answer(page([stats_row()], 10**9), honest=first),
        honest=True,
    )


@memory_routes
def lying_meta(asked):
    """Right rows under a meta that lies: negative pages, a page past the total, a total
    of one for three rows and of a billion past the end."""
    rows = [row("m1"), row("m2"), row("m3", memory="works in Paris")]
    if asked.page == 1:
        listing = page(rows, 1, page=7, limit=-1, total_pages=-3)
    else:
        listing = page([], 10**9, page=1, total_pages=10**9)
    return by_route(
        asked,
        listing=listing,
        memory=lambda memory_id: row(memory_id),
        topics=["home"],
        user_stats=page([stats_row()], -5),
        honest=True,
    )


@memory_routes
def not_json(asked):
    return Reply(200, b'{"data": [this is not JSON')


@memory_routes
def html_page(asked):
    return Reply(200, b"<html><body><h1>Welcome to nginx!</h1></body></html>", "text/html")


@memory_routes
def empty_200(asked):
    return Reply(200, b"")


@memory_routes
def nested_500(asked):
    return answer({"detail": DeepList(DEPTH)}, 500)


@memory_routes
def no_content_204(asked):
    return Reply(204)


@memory_routes
def redirect(asked):
    """A redirect back to this server, outside the memory API: were it followed, the log shows it."""
    return Reply(307, b"", headers={"location": f"{asked.base_url}/elsewhere{asked.target}"})


@memory_routes
def endless_body(asked):
    return Reply(200, endless(b'{"data": [', json.dumps(row()).encode() + b", "))


@memory_routes
def slow_body(asked):
    return Reply(200, trickle(json.dumps(page([row()])).encode()))


@memory_routes
def writes_answer_garbage(asked):
    """Honest reads; every write answered with something no write answers."""
    if asked.method == "GET":
        return honest_memories(asked)
    if asked.method == "DELETE":
        return Reply(200, b"not JSON")
    return answer(row("../../health?x=", user_id="mallory", memory="not what was sent"))


@every_route
def endless_identity(asked):
    """/health and /info that never end; honest memory routes. A client may go on
    without knowing the release (as it does where there is no /info), so this is honest."""
    if asked.path in IDENTITY_ROUTES:
        return Reply(200, endless(b'{"agno_version": "', b"3"), honest=True)
    return honest_memories(asked)


@every_route
def old_release_identity(asked):
    """No /info, and a /health that says agno 2.2 or 2.3; honest memory routes."""
    if asked.path == "/info":
        return answer({"detail": "Not Found"}, 404, honest=True)
    if asked.path == "/health":
        return answer({"status": "ok", "instantiated_at": 1767225600}, honest=True)
    return honest_memories(asked)


# --- command lines -----------------------------------------------------------

# Command lines beyond the one conftest.invocation builds for a row: ones that make it
# walk every page.
MORE = {"stats": [["--all"]]}


@dataclass(frozen=True)
class Line:
    """One command line: an action (a name of EVERY_ACTION) with extra arguments."""

    action: str
    extra: tuple = ()

    @property
    def name(self):
        return " ".join([self.action, *self.extra])


LINES = [Line(action) for action in EVERY_ACTION] + [
    Line(action, tuple(extra)) for action, extras in MORE.items() for extra in extras
]

# Every line meets the families behind the sharpest checks (ids that would leave their
# path, garbage answers to writes, bodies without end or at a byte a second); the other
# families go round the lines, ROTATED_PER_LINE each, so that every family meets some
# lines; and the families that shape identification meet the actions that ask the server
# what it is (GET /info, /health: ask_auth, identify_release).
CORE = ("path_like_ids", "writes_answer_garbage", "endless_body", "slow_body")
ROTATED_PER_LINE = 2
TARGETED = [
    (Line(action), family)
    for action in ("whoami", "check", "topics_list")
    for family in ("endless_identity", "old_release_identity")
]


def pairings():
    rotated = [name for name in CORPUS if name not in CORE]
    pairs = []
    for number, line in enumerate(LINES):
        pairs += [(line, family) for family in CORE]
        pairs += [(line, rotated[(number * ROTATED_PER_LINE + k) % len(rotated)]) for k in range(ROTATED_PER_LINE)]
    return list(dict.fromkeys(pairs + TARGETED))


# --- a run -------------------------------------------------------------------


ENCODED_ESCAPE = re.compile(r"%2[ef]", re.IGNORECASE)


def strays(requests):
    """Requests outside the memory API, counting an encoded '.' or '/' in a path as one."""
    outside = outside_memory_api(requests)
    encoded = [
        line for line in requests if line not in outside and ENCODED_ESCAPE.search(line.split(" ", 1)[1].split("?")[0])
    ]
    return outside + encoded


def problems_of(run, server, offline):
    """What is wrong with a run, as short phrases; none if it ended as it must."""
    problems, result = [], run.result
    if run.killed:
        problems.append(f"still running after {run.seconds:.0f} s (killed)")
    if not run.peak_mb <= RSS_BOUND_MB:
        problems.append(f"peak RSS {run.peak_mb:.0f} MB")
    if "Traceback" in result.stderr:
        problems.append(f"traceback: {result.stderr.strip().splitlines()[-1][:200]}")
    if result.code == 0:
        garbage = server.garbage_answered()
        if garbage and not offline:
            problems.append(f"exit 0 after garbage answers to {garbage[:3]}")
        try:
            json.loads(result.stdout)
        except ValueError:
            problems.append(f"exit 0 without one JSON document on stdout: {result.stdout[:100]!r}")
    elif not run.killed:
        problems += error_problems(result)
    stray = strays(server.requests)
    if stray:
        problems.append(f"requests outside the memory API: {stray[:3]}")
    return problems


def error_problems(run):
    lines = run.stderr.splitlines()
    if len(lines) != 1 or not run.stderr.endswith("\n"):
        return [f"exit {run.code} with {len(lines)} lines on stderr: {run.stderr[:300]!r}"]
    try:
        error = json.loads(lines[0])["error"]
    except (ValueError, KeyError, TypeError):
        return [f"exit {run.code}, stderr not a JSON error: {lines[0][:200]!r}"]
    problems = []
    if error.get("type") not in manage_memories.ERROR_TYPES:
        problems.append(f"undeclared error type {error.get('type')!r}")
    elif error["type"] in ("internal", "usage"):
        problems.append(f"error type {error['type']}: {error.get('message', '')[:200]}")
    if run.code not in ALLOWED_EXIT_CODES:
        problems.append(f"exit {run.code} ({error.get('type')}: {error.get('message', '')[:120]})")
    return problems


def playing_agentos_until(family):
    """An answer that plays a small AgentOS until turn(), then answers as family: so that
    the journal can hold an operation on this server for --undo and --history."""
    honest = AgentOSThenFault(None)
    state = {"turned": False}

    def answer_any(asked):
        if state["turned"]:
            return family(asked)
        status, content_type, body = honest(asked.method, asked.target)
        return Reply(status, body.encode(), content_type, honest=True)

    answer_any.turn = lambda: state.update(turned=True)
    return answer_any


def fuzz_one(line, family_name, folder):
    """The problems of one command line against one family, each prefixed with both."""
    folder.mkdir(parents=True)
    try:
        call = invocation(line.action, folder, "m1")
    except NoInvocation as missing:
        return [f"{line.name}: no command line for this row of ACTIONS ({missing})"]
    env = {**CLEAN_ENV, **call.env, manage_memories.CACHE_DIR_ENV: str(folder / "cache")}
    answer_any = playing_agentos_until(CORPUS[family_name])
    with HostileServer(answer_any) as server:
        if call.reads_journal:
            created = run_script("--base-url", server.url, "--user-id", "alice", "--create", CREATED["memory"], env=env)
            if created.code != 0:
                return [f"{line.name} / {family_name}: the journaled create failed: {created.stderr.strip()}"]
        answer_any.turn()
        server.log.clear()
        timeout = ENDLESS_TIMEOUT if family_name in ENDLESS else TIMEOUT
        args = ["--base-url", server.url, *call.args, *line.extra, "--json", "--timeout", str(timeout)]
        run = run_script_measured(*args, env=env, timeout=timeout + SLACK, data_limit=DATA_LIMIT)
        problems = problems_of(run, server, call.action.offline)
    summary = f"exit {run.result.code}, {run.seconds:.1f} s, {run.peak_mb:.0f} MB"
    return [f"{line.name} / {family_name}: {problem} [{summary}]" for problem in problems]


# --- the test ----------------------------------------------------------------


def test_the_pairing_runs_every_family_and_every_line():
    met = {family for _, family in pairings()}
    assert met == set(CORPUS), set(CORPUS) - met
    assert {line for line, _ in pairings()} == set(LINES)


def test_every_action_ends_cleanly_on_hostile_answers(tmp_path):
    started = time.monotonic()
    with ThreadPoolExecutor(WORKERS) as pool:
        futures = [
            pool.submit(fuzz_one, line, family, tmp_path / f"{number}-{family}")
            for number, (line, family) in enumerate(pairings())
        ]
        problems = [problem for future in futures for problem in future.result()]
    assert not problems, f"{len(problems)} problems in {time.monotonic() - started:.0f} s:\n" + "\n".join(problems)
