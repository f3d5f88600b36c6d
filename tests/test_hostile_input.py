"""Hostile input: what a server answers (ids that would leave /memories/{id}, rows of the
wrong types, endless pages, huge or deeply nested bodies), and what a user passes (tokens
with control characters, URLs with credentials or bad ports, absurd spans, JWTs with odd
expiries, stdin that is not UTF-8), and a reader or a signal that ends the run early."""

import base64
import hashlib
import hmac
import json
import os
import signal
import subprocess
import sys
import time
from urllib.parse import parse_qs, urlsplit

import pytest

import conftest
from conftest import (
    CLEAN_ENV,
    ON_SQLITE_ALONE,
    ROOT,
    SCRIPT,
    TOKEN,
    Result,
    run_script,
    run_script_measured,
    start_script,
)
from faults import FaultServer
from hostile_server import HostileServer, Reply, trickle

ALLOWED_PATHS = {"/memories", "/info", "/health", "/memory_topics", "/user_memory_stats"}


def row(memory_id="m1", **fields):
    return {
        "memory_id": memory_id,
        "memory": "m",
        "topics": [],
        "user_id": "alice",
        "agent_id": None,
        "team_id": None,
        "updated_at": "2026-01-01T00:00:00Z",
        **fields,
    }


def page_of(rows, total_count=None):
    total = len(rows) if total_count is None else total_count
    return json.dumps(
        {"data": rows, "meta": {"page": 1, "limit": 20, "total_pages": -(-total // 20), "total_count": total}}
    )


def agentos_listing(page):
    """An answer that plays an AgentOS whose every listing page is `page` (a JSON text)."""

    def answer(method, path):
        if method == "GET" and path.startswith("/memories?"):
            return 200, "application/json", page
        if method == "GET" and path.startswith("/health"):
            return 200, "application/json", json.dumps({"status": "ok"})
        return 404, "application/json", json.dumps({"detail": "Not Found"})

    return answer


def assert_one_line(result, code, error_type=None):
    """Exit `code`, one line on stderr and no traceback; with --json, an error of `error_type`."""
    assert result.code == code, (result.code, result.stderr)
    assert result.stderr.count("\n") == 1 and result.stderr.endswith("\n"), result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    if error_type is not None:
        assert result.error()["type"] == error_type, result.stderr


def writes(requests):
    return [line for line in requests if line.startswith(("POST", "PATCH", "DELETE"))]


def outside_memory_api(requests):
    """Requests whose path is not one of the memory API's (nor a /memories/{id} that stays put)."""
    strays = []
    for line in requests:
        path = line.split(" ", 1)[1]
        bare = path.split("?", 1)[0]
        if bare in ALLOWED_PATHS:
            continue
        if bare.startswith("/memories/") and ".." not in bare and "/" not in bare[len("/memories/") :]:
            continue
        strays.append(line)
    return strays


# --- what a server answers ---------------------------------------------------

ESCAPING_IDS = ["../../health?x=", "a/b"]


@pytest.mark.parametrize("memory_id", ESCAPING_IDS)
def test_a_memory_id_that_would_leave_its_path_is_not_agentos_when_listed(memory_id):
    with FaultServer(agentos_listing(page_of([row(memory_id)]))) as server:
        result = run_script("--base-url", server.url, "--user-id", "alice", "--json")
    assert_one_line(result, 3, "not_agentos")
    assert outside_memory_api(server.requests) == [], server.requests


@pytest.mark.parametrize("memory_id", ESCAPING_IDS)
@pytest.mark.parametrize("action", [["--dedupe", "--yes"], ["--delete-all", "--yes"]])
def test_a_memory_id_that_would_leave_its_path_is_never_written_to(memory_id, action):
    # Two rows of one fact, so that --dedupe has a duplicate to delete were the ids taken.
    rows = [row(memory_id, memory="lives in Berlin"), row(memory_id + "2", memory="lives in Berlin")]
    with FaultServer(agentos_listing(page_of(rows))) as server:
        result = run_script("--base-url", server.url, "--user-id", "alice", *action, "--json")
    assert_one_line(result, 3, "not_agentos")
    assert writes(server.requests) == [], server.requests
    assert outside_memory_api(server.requests) == [], server.requests


@pytest.mark.parametrize(
    "bad_field", [{"topics": [1, 2]}, {"updated_at": {"seconds": 1}}], ids=["numeric-topics", "object-updated-at"]
)
def test_a_row_of_the_wrong_types_is_not_agentos(bad_field):
    with FaultServer(agentos_listing(page_of([row("m1", **bad_field)]))) as server:
        result = run_script("--base-url", server.url, "--user-id", "alice", "--json")
    assert_one_line(result, 3, "not_agentos")
    plain_server = FaultServer(agentos_listing(page_of([row("m1", **bad_field)])))
    with plain_server:
        plain = run_script("--base-url", plain_server.url, "--user-id", "alice")
    assert_one_line(plain, 3)


def test_a_server_that_repeats_the_same_page_forever_ends_with_exit_3():
    rows = [row(f"m{n}", memory=f"fact {n}") for n in range(3)]
    with FaultServer(agentos_listing(page_of(rows, total_count=10**9))) as server:
        started = time.monotonic()
        result = run_script("--base-url", server.url, "--user-id", "alice", "--all", "--json", timeout=60)
    assert_one_line(result, 3)
    assert time.monotonic() - started < 60


NESTED_ROW = json.dumps(row("m1")).replace('"memory":', '"extra": ' + "[" * 50_000 + "]" * 50_000 + ', "memory":')


@pytest.mark.parametrize(
    "action",
    [
        [],
        ["--all"],
        ["--export", "-"],
        ["--find", "fact", "--by", "words"],
        ["--duplicates"],
        ["--delete-all", "--dry-run"],
    ],
    ids=["listing", "all", "export", "find", "duplicates", "delete-all"],
)
def test_a_row_nested_50000_deep_is_refused_in_little_memory(action):
    page = '{"data": [%s], "meta": {"page": 1, "limit": 20, "total_pages": 1, "total_count": 1}}' % NESTED_ROW
    with FaultServer(agentos_listing(page)) as server:
        run = run_script_measured("--base-url", server.url, "--user-id", "alice", "--json", *action)
    assert_one_line(run.result, 3, "not_agentos")
    assert "nested more than" in run.result.error()["message"], run.result.stderr
    assert run.peak_mb < 200, f"peak {run.peak_mb:.0f} MB"


@pytest.mark.parametrize(
    "action", [["--find", "long"], ["--find", "long", "--by", "words"], ["--duplicates"]], ids=["find", "words", "dup"]
)
def test_a_16_mb_memory_is_answered_in_bounded_time_and_memory(action, tmp_path):
    # Past the API's 5,000 characters (agno's database layer takes any length): judged by its start.
    text = "a long memory " * ((16 << 20) // 14)
    rows = [row("m-huge", memory=text), row("m-huge-2", memory=text), row("m3", memory="short")]

    def answer(method, path):  # an AgentOS's pages: no more rows than the limit asked for
        limit = int(parse_qs(urlsplit(path).query).get("limit", ["20"])[0])
        return agentos_listing(page_of(rows[:limit], total_count=len(rows)))(method, path)

    with FaultServer(answer) as server:
        run = run_script_measured(
            "--base-url", server.url, "--user-id", "alice", "--json", *action,
            env={"AGENTOS_MEMORY_CACHE": str(tmp_path / "cache")},
        )  # fmt: skip
    assert run.result.code == 0, run.result.stderr
    assert "m-huge" in run.result.stdout
    assert run.seconds < 20 and run.peak_mb < 400, (run.seconds, run.peak_mb)


SLOW_TIMEOUT = 2


@pytest.mark.parametrize(
    "action",
    [["--user-id", "alice"], ["--user-id", "alice", "--all"], ["--user-id", "alice", "--memory-id", "m1"],
     ["--export", "-"], ["--check", "--wait", "5"]],
    ids=["listing", "all", "show", "export", "check"],
)  # fmt: skip
def test_an_answer_sent_a_byte_a_second_ends_within_the_timeout_and_a_second(action):
    asked_at = []

    def answer(asked):
        asked_at.append(time.monotonic())
        return Reply(200, trickle(page_of([row("m1")]).encode()))

    with HostileServer(answer) as server:
        process = start_script("--base-url", server.url, "--json", "--timeout", SLOW_TIMEOUT, *action)
        stdout, stderr = process.communicate(timeout=60)
        ended = time.monotonic()
    assert_one_line(Result(process.returncode, stdout, stderr), 3, "unreachable")
    # --timeout bounds each request whole, from the moment it is sent: the last one asked ends the run.
    assert ended - asked_at[-1] <= SLOW_TIMEOUT + 1, f"{ended - asked_at[-1]:.1f} s after the last request"


def stats_page(rows, total_count):
    meta = {"page": 1, "limit": 50_000, "total_pages": -(-total_count // 50_000), "total_count": total_count}
    return json.dumps({"data": rows, "meta": meta})


def test_user_stats_that_repeat_the_same_page_forever_end_with_exit_3():
    rows = [{"user_id": f"u{n}", "total_memories": 1, "last_memory_updated_at": None} for n in range(3)]

    def answer(method, path):
        if path.startswith("/user_memory_stats"):
            return 200, "application/json", stats_page(rows, 10**9)
        return agentos_listing(page_of([]))(method, path)

    with FaultServer(answer) as server:
        result = run_script("--base-url", server.url, "--stats", "--sort", "count", "--json", timeout=60)
        asked = [line for line in server.requests if "/user_memory_stats" in line]
    assert_one_line(result, 3, "not_agentos")
    assert len(asked) == 2, asked


def test_pages_sorted_by_created_at_that_repeat_forever_end_with_exit_3():
    rows = [row(f"m{n}", memory=f"fact {n}") for n in range(4)]

    def answer(method, path):
        if path.startswith("/info"):
            return 200, "application/json", json.dumps({"auth_mode": "none", "agno_version": "3.1.10"})
        if "sort_by=created_at" in path:  # never the fourth memory, whatever page is asked
            return 200, "application/json", page_of(rows[:3], total_count=10**9)
        return agentos_listing(page_of(rows))(method, path)

    with FaultServer(answer) as server:
        result = run_script(
            "--base-url", server.url, "--user-id", "alice", "--all", "--sort", "created_at", "--json", timeout=60
        )
        asked = [line for line in server.requests if "sort_by=created_at" in line]
    assert_one_line(result, 3, "not_agentos")
    assert len(asked) == 2, asked


def test_an_answer_larger_than_64_mb_is_refused():
    huge = json.dumps(row("m1", memory="x" * 70_000_000)).encode()

    def answer(method, path):
        if method == "GET" and path.startswith("/memories/m1"):
            return 200, "application/json", huge
        return agentos_listing(page_of([]))(method, path)

    with FaultServer(answer) as server:
        started = time.monotonic()
        result = run_script("--base-url", server.url, "--user-id", "alice", "--memory-id", "m1", "--json")
    assert_one_line(result, 3, "not_agentos")
    assert "more than 64 MB" in result.error()["message"], result.stderr
    assert time.monotonic() - started < 15


def test_a_500_with_json_nested_100000_deep_is_one_line():
    deep = "[" * 100_000 + "]" * 100_000
    with FaultServer(lambda method, path: (500, "application/json", deep)) as server:
        result = run_script("--base-url", server.url, "--user-id", "alice")
    assert result.code in (1, 3), (result.code, result.stderr)
    assert_one_line(result, result.code)
    assert "RecursionError" not in result.stderr


# --- what a user passes ------------------------------------------------------


@pytest.mark.parametrize("ending", ["\r\n", "\n", "\r"])
def test_a_token_with_a_trailing_line_ending_is_used_stripped(secured, ending):
    result = run_script("--base-url", secured.url, "--user-id", "alice", "--token", TOKEN + ending)
    assert result.code == 0, result.stderr
    from_env = run_script("--base-url", secured.url, "--user-id", "alice", env={"AGNO_ADMIN_TOKEN": TOKEN + ending})
    assert from_env.code == 0, from_env.stderr


def test_a_token_with_a_control_character_inside_is_a_usage_error(secured):
    token = "ab\x01cd"
    before = len(secured.requests())
    result = run_script("--base-url", secured.url, "--user-id", "alice", "--token", token, "--json")
    assert_one_line(result, 2, "usage")
    for shown in (token, "ab\\u0001cd", "ab\\x01cd"):
        assert shown not in result.stdout and shown not in result.stderr, result.stderr
    assert secured.requests()[before:] == [], "the token was sent"


def test_a_token_file_with_a_trailing_line_ending_works(secured, tmp_path):
    token_file = tmp_path / "token"
    token_file.write_bytes((TOKEN + "\r\n").encode())
    result = run_script("--base-url", secured.url, "--user-id", "alice", "--token-file", token_file)
    assert result.code == 0, result.stderr


def test_a_token_file_dash_reads_stdin(secured):
    result = run_script("--base-url", secured.url, "--user-id", "alice", "--token-file", "-", input=TOKEN + "\r\n")
    assert result.code == 0, result.stderr


def test_token_and_token_file_together_are_a_usage_error(secured, tmp_path):
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN + "\n")
    result = run_script(
        "--base-url", secured.url, "--user-id", "alice", "--token", TOKEN, "--token-file", token_file, "--json"
    )
    assert_one_line(result, 2, "usage")


def test_a_base_url_with_credentials_is_a_usage_error_that_never_shows_the_password():
    result = run_script("--base-url", "http://user:hunter2pass@127.0.0.1:9", "--user-id", "alice", "--json")
    assert_one_line(result, 2, "usage")
    assert "hunter2pass" not in result.stdout and "hunter2pass" not in result.stderr, result.stderr


@pytest.mark.parametrize("url", ["http://[::1", "http://127.0.0.1:99999", "http://127.0.0.1:abc"])
def test_a_malformed_base_url_is_a_usage_error(url):
    result = run_script("--base-url", url, "--user-id", "alice", "--json")
    assert_one_line(result, 2, "usage")
    plain = run_script("--base-url", url, "--user-id", "alice")
    assert_one_line(plain, 2)


def test_a_span_too_long_for_a_date_is_a_usage_error():
    result = run_script("--base-url", "http://127.0.0.1:9", "--user-id", "alice", "--since", "3000000d", "--json")
    assert_one_line(result, 2, "usage")
    plain = run_script("--base-url", "http://127.0.0.1:9", "--user-id", "alice", "--since", "3000000d")
    assert_one_line(plain, 2)


def jwt_with_raw_exp(raw_exp, key=conftest.JWT_KEY):
    """An HS256 JWT for alice whose exp claim is the JSON text `raw_exp`, as is."""

    def b64(data):
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    header = b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    claims = json.dumps({"sub": "alice", "scopes": ["memories:read"], "iat": int(time.time()), "exp": "EXP"})
    payload = b64(claims.replace('"EXP"', raw_exp).encode())
    signature = hmac.new(key.encode(), f"{header}.{payload}".encode(), hashlib.sha256).digest()
    return f"{header}.{payload}.{b64(signature)}"


# On the session's JWT server (conftest.scoped), on SQLite alone: --whoami reads the token
# and the server's /info, never a memory.
@ON_SQLITE_ALONE
@pytest.mark.parametrize(
    "token",
    [
        lambda: conftest.mint("alice", extra_claims={"exp": 1_900_000_000_000}),
        lambda: jwt_with_raw_exp("1e400"),
    ],
    ids=["exp-in-milliseconds", "exp-1e400"],
)
def test_a_jwt_with_an_absurd_expiry_does_not_break_whoami(scoped, token):
    result = run_script("--base-url", scoped.url, "--whoami", "--json", "--token", token())
    assert result.code == 0, result.stderr
    assert "Traceback" not in result.stderr
    assert result.json()["token"]["expires_at"] is None, result.stdout


@pytest.fixture
def agentos_own(fresh_agentos):
    """An empty SQLite server of the test's own. Its tests run ON_SQLITE_ALONE: how the
    script reads its stdin or writes to a reader that went is the same whatever the database."""
    return fresh_agentos()


def run_bytes(*args, input):
    process = subprocess.run(
        [sys.executable, str(SCRIPT), *map(str, args)],
        env=CLEAN_ENV,
        input=input,
        capture_output=True,
        timeout=120,
        cwd=ROOT,
    )
    return Result(process.returncode, process.stdout.decode(errors="replace"), process.stderr.decode(errors="replace"))


@ON_SQLITE_ALONE
def test_an_import_from_stdin_with_a_byte_order_mark_is_accepted(agentos_own):
    line = json.dumps({"memory": "imported through a BOM", "user_id": "alice"}) + "\n"
    result = run_bytes("--base-url", agentos_own.url, "--import", "-", input=b"\xef\xbb\xbf" + line.encode())
    assert result.code == 0, result.stderr
    assert [m["memory"] for m in agentos_own.memories("alice")] == ["imported through a BOM"]


@ON_SQLITE_ALONE
def test_an_import_from_stdin_that_is_not_utf8_is_a_usage_error(agentos_own):
    line = b'{"memory": "caf\xe9 \xff", "user_id": "alice"}\n'
    result = run_bytes("--base-url", agentos_own.url, "--import", "-", "--json", input=line)
    assert_one_line(result, 2, "usage")
    assert agentos_own.memories("alice") == []


# --- a run ended early -------------------------------------------------------


@ON_SQLITE_ALONE
def test_an_export_to_a_reader_that_stops_after_one_line_exits_0(agentos_own):
    with agentos_own.http() as http:
        for n in range(300):
            http.post("/memories", json={"memory": f"fact {n} " + "x" * 500, "user_id": "alice"}).raise_for_status()
    process = subprocess.Popen(
        [sys.executable, str(SCRIPT), "--base-url", agentos_own.url, "--user-id", "alice", "--export", "-"],
        env=CLEAN_ENV,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=ROOT,
    )
    first = process.stdout.readline()
    process.stdout.close()
    stderr = process.stderr.read().decode()
    code = process.wait(timeout=60)
    assert json.loads(first)["user_id"] == "alice"
    assert code == 0, stderr
    assert "Traceback" not in stderr and "BrokenPipe" not in stderr, stderr


def test_sigterm_during_an_export_leaves_no_file(tmp_path):
    def slow(method, path):
        if method == "GET" and path.startswith("/memories?"):
            time.sleep(20)
        return agentos_listing(page_of([row("m1")]))(method, path)

    target = tmp_path / "out.jsonl"
    with FaultServer(slow) as server:
        process = start_script("--base-url", server.url, "--user-id", "alice", "--export", target)
        time.sleep(1)
        assert process.poll() is None, process.communicate()
        process.send_signal(signal.SIGTERM)
        stdout, stderr = process.communicate(timeout=30)
    assert process.returncode == 130, (process.returncode, stderr)
    assert "Traceback" not in stderr, stderr
    assert sorted(os.listdir(tmp_path)) == [], os.listdir(tmp_path)


@pytest.mark.parametrize("action", [["--dedupe", "--yes"], ["--delete-all", "--yes"], ["--all"], ["--export", "-"]])
def test_a_path_like_id_stored_on_a_real_agentos_sends_nothing_outside_the_memory_api(fresh_agentos, action):
    """The defect as found on agno 3.1.10: a memory whose id is a path (written through agno's
    database layer, which takes any id) made --dedupe send PATCH /sessions/<id>."""
    from agno.db.schemas import UserMemory

    server = fresh_agentos()
    escaping = "../sessions/s1?type=agent&x="
    server.database().upsert_memories(
        [UserMemory(memory="lives in Berlin", memory_id=memory_id, user_id="alice") for memory_id in (escaping, "m2")]
    )
    before = len(server.requests())
    result = run_script("--base-url", server.url, "--user-id", "alice", *action, "--json")
    assert_one_line(result, 3, "not_agentos")
    sent = [line.rsplit(" ", 1)[0] for line in server.requests()[before:]]  # "METHOD TARGET STATUS"
    assert outside_memory_api(sent) == [] and writes(sent) == [], sent
    assert {memory["memory_id"] for memory in server.memories("alice")} == {escaping, "m2"}
