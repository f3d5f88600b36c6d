"""Servers that misbehave: ones that hang, answer HTML or unrelated JSON (checked for
every action), fail with a 500 or a dump, redirect, drop pages or die mid-export or
mid-import; and Ctrl-C and --wait while they do."""

import io
import json
import subprocess
import sys
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import EVERY_ACTION, ROOT, invocation, run_script, start_script, wait_for_requests
from faults import CREATED, AgentOSThenFault, FaultServer, SilentServer, html, json_answer, memory_page

sys.path.insert(0, str(ROOT / "scripts"))
import manage_memories  # noqa: E402


def assert_one_line(result, code, text):
    assert result.code == code, result.stderr
    assert result.stderr.count("\n") == 1, result.stderr
    assert text in result.stderr
    assert "Traceback" not in result.stderr and "validation error" not in result.stderr


def test_a_server_that_never_answers_times_out_with_exit_3():
    with SilentServer() as server:
        started = time.monotonic()
        result = run_script("--base-url", server.url, "--user-id", "alice", "--timeout", "1")
        elapsed = time.monotonic() - started
    assert_one_line(result, 3, "did not answer within 1 seconds")
    assert elapsed < 15, "the 1-second --timeout was not used (the default is 30 s)"


def run_against(fault, action, tmp_path, *flags):
    """(invocation, result, requests sent) of one action against a server answering
    `fault`. An action that acts on the journal finds an operation on that server there,
    made while the server still played an AgentOS."""
    call = invocation(action, tmp_path, "m1")
    answer = AgentOSThenFault(fault)
    with FaultServer(answer) as server:
        if call.reads_journal:
            created = run_script(
                "--base-url", server.url, "--user-id", "alice", "--create", CREATED["memory"], env=call.env
            )
            assert created.code == 0, created.stderr
        answer.fail()
        sent = len(server.requests)
        result = run_script("--base-url", server.url, *call.args, *flags, env=call.env)
    return call, result, server.requests[sent:]


# Every action, its command line built from its row of ACTIONS (conftest.invocation).
# An offline action (--history) reads only this machine's journal: whatever the server,
# it answers (exit 0) and sends it nothing.
@pytest.mark.parametrize("action", EVERY_ACTION)
def test_an_html_web_server_is_not_an_agentos(action, tmp_path):
    call, result, requests = run_against(html(), action, tmp_path, "--json")
    if call.action.offline:
        assert result.code == 0 and requests == [], result.stderr
        return
    assert result.code == 3, result.stderr
    assert result.error()["type"] == "not_agentos" and "is not an AgentOS memory API" in result.error()["message"]
    assert "--undo" not in (result.error()["hint"] or ""), "nothing was done, yet the error offers to undo it"
    assert not any(line.startswith(("POST", "PATCH", "DELETE")) for line in requests)
    assert not (call.writes and call.writes.exists())


@pytest.mark.parametrize("action", EVERY_ACTION)
def test_a_server_answering_unrelated_json_is_not_an_agentos(action, tmp_path):
    call, result, requests = run_against(json_answer({"status": "ok", "version": "1.2.3"}), action, tmp_path)
    if call.action.offline:
        assert result.code == 0 and requests == [], result.stderr
        return
    assert_one_line(result, 3, "is not an AgentOS memory API")
    assert "--undo" not in result.stderr, "nothing was done, yet the error offers to undo it"
    assert not any(line.startswith(("POST", "PATCH", "DELETE")) for line in requests)


def test_a_404_html_page_is_not_an_agentos():
    with FaultServer(html(404)) as server:
        result = run_script("--base-url", server.url, "--user-id", "alice", "--memory-id", "m1")
    assert_one_line(result, 3, "is not an AgentOS memory API")


def test_server_error_is_exit_1_with_the_servers_detail():
    with FaultServer(json_answer({"detail": "database is on fire"}, status=500)) as server:
        result = run_script("--base-url", server.url, "--user-id", "alice")
    assert_one_line(result, 1, "server error 500: database is on fire")


def test_server_error_as_json_error_object():
    with FaultServer(json_answer({"detail": "database is on fire"}, status=500)) as server:
        result = run_script("--base-url", server.url, "--user-id", "alice", "--json")
    assert result.code == 1 and result.error() == {
        "type": "server_error",
        "message": "server error 500: database is on fire",
        "status": 500,
        "hint": None,
    }


# Error details as agno 2.2 answers them (measured): SQLAlchemy's error with the
# statement and parameters, and pydantic's listing of an invalid field.
SQL_ERROR = (
    '(sqlite3.OperationalError) unrecognized token: ":"\n[SQL: SELECT count(*) AS count_1 \nFROM (SELECT '
    "agno_memories.memory_id AS memory_id \nFROM agno_memories \nWHERE agno_memories.user_id = ? AND topics::text "
    "LIKE '%\"drinks\"%') AS anon_1]\n[parameters: ('alice',)]\n(Background on this error at: "
    "https://sqlalche.me/e/20/e3q8)"
)
VALIDATION_ERROR = (
    "1 validation error for PaginationInfo\nlimit\n  Input should be less than or equal to 100 "
    "[type=less_than_equal, input_value=120, input_type=int]\n    For further information visit "
    "https://errors.pydantic.dev/2.14/v/less_than_equal"
)


@pytest.mark.parametrize(
    "detail, summary",
    [
        (SQL_ERROR, 'server error 500: (sqlite3.OperationalError) unrecognized token: ":"'),
        (
            VALIDATION_ERROR,
            "server error 500: invalid limit in PaginationInfo: Input should be less than or equal to 100",
        ),
    ],
    ids=["sql", "validation"],
)
def test_a_server_error_dump_is_one_line_and_the_whole_text_on_request(detail, summary):
    with FaultServer(json_answer({"detail": detail}, status=500)) as server:
        plain = run_script("--base-url", server.url, "--user-id", "alice")
        as_json = run_script("--base-url", server.url, "--user-id", "alice", "--json")
        verbose = run_script("--base-url", server.url, "--user-id", "alice", "--verbose")
    assert_one_line(plain, 1, summary)
    assert plain.stderr == f"error: {summary}\n"
    assert as_json.code == 1 and as_json.error()["message"] == summary and as_json.error()["detail"] == detail
    assert verbose.code == 1
    first, *rest = verbose.stderr.splitlines()
    assert first == f"error: {summary}" and rest == [f"  {line}" for line in detail.splitlines()]


@pytest.mark.parametrize(
    "base_url",
    ["http://127.0.0.1:9", "http://no-such-host.invalid:7777", "http://192.0.2.1:7777"],
    ids=["refused", "bad-dns", "unroutable"],
)
def test_unreachable_servers_are_exit_3_one_line(base_url):
    result = run_script("--base-url", base_url, "--user-id", "alice", "--timeout", "2")
    assert result.code == 3, result.stderr
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr


def test_a_server_dying_mid_export_leaves_no_file_that_looks_complete(tmp_path):
    def answer(method, path):
        if "page=1&" in path or path.endswith("page=1"):
            return 200, "application/json", memory_page(500, 1500)
        return None  # the connection drops, as when the server dies

    target = tmp_path / "backup.jsonl"
    with FaultServer(answer) as server:
        result = run_script("--base-url", server.url, "--export", target)
    assert result.code == 3, result.stderr
    assert list(tmp_path.iterdir()) == []


def test_a_failed_export_keeps_the_previous_file(tmp_path):
    target = tmp_path / "backup.jsonl"
    target.write_text("previous backup\n")
    with FaultServer(json_answer({"detail": "boom"}, status=500)) as server:
        assert run_script("--base-url", server.url, "--export", target).code == 1
    assert target.read_text() == "previous backup\n" and list(tmp_path.iterdir()) == [target]


def test_a_server_killed_mid_import_then_restarted_finishes_with_no_duplicates(fresh_agentos, tmp_path):
    server = fresh_agentos()
    # Ten times the writes seen before the kill: the import is far from done when it lands
    # (wait_for_requests looks every 10 ms). More lines only lengthen the second run.
    lines = 500
    backup = tmp_path / "in.jsonl"
    backup.write_text("".join(json.dumps({"memory": f"fact {n}", "user_id": "alice"}) + "\n" for n in range(lines)))
    importing = start_script("--base-url", server.url, "--import", backup, "--concurrency", "2", "--json")
    wait_for_requests(server, "PATCH", 50)
    server.kill()
    stdout, stderr = importing.communicate(timeout=120)

    assert importing.returncode == 3, stderr
    summary = json.loads(stdout)
    written = summary["created"]
    assert 0 < written < lines and summary["created"] + len(summary["failed"]) == lines
    assert "run the same import again" in stderr and stderr.count("\n") == 1

    server.restart()
    again = run_script("--base-url", server.url, "--import", backup, "--json")
    assert again.code == 0, again.stderr
    # What the killed run wrote is unchanged; the rest is created now (a write in flight
    # at the kill may have landed without being counted, so allow for those).
    assert again.json()["created"] + again.json()["unchanged"] == lines
    assert again.json()["unchanged"] >= written
    stored = server.memories("alice")
    assert len(stored) == lines and len({m["memory_id"] for m in stored}) == lines
    assert sorted(m["memory"] for m in stored) == sorted(f"fact {n}" for n in range(lines))


def test_a_redirect_is_not_followed_and_says_where_it_points():
    # Following it would send the token wherever the server points.
    redirect = lambda method, path: (307, "text/html", "")  # noqa: E731
    with FaultServer(redirect) as server:
        result = run_script("--base-url", server.url, "--user-id", "alice", "--token", "t0ken-value")
    assert_one_line(result, 3, "redirects to")
    assert len(server.requests) == 1 and "t0ken-value" not in result.stderr


@pytest.mark.parametrize("flag, path", [("--topics-list", "/memory_topics"), ("--stats", "/user_memory_stats")])
def test_an_agentos_without_the_topics_or_stats_endpoint_says_so(flag, path):
    route_missing = lambda method, target: (404, "application/json", json.dumps({"detail": "Not Found"}))  # noqa: E731
    with FaultServer(route_missing) as server:
        result = run_script("--base-url", server.url, flag)
    assert_one_line(result, 1, f"this AgentOS has no {path} endpoint (404)")


def test_a_server_killed_mid_export_leaves_no_file_that_looks_complete(fresh_agentos, tmp_path):
    from agno.db.schemas import UserMemory

    server = fresh_agentos()
    database = server.database()
    for start in range(0, 20_000, 2_000):
        batch = range(start, start + 2_000)
        database.upsert_memories(
            [UserMemory(memory=f"fact {n}", memory_id=f"m-{n:05d}", user_id="alice") for n in batch]
        )
    target = tmp_path / "backup.jsonl"
    exporting = start_script("--base-url", server.url, "--export", target, "--concurrency", "1")
    wait_for_requests(server, "GET /memories?", 3)
    server.kill()
    stdout, stderr = exporting.communicate(timeout=120)
    assert exporting.returncode == 3, stderr
    assert stderr.count("\n") == 1 and "Traceback" not in stderr
    assert list(tmp_path.iterdir()) == []


def test_ctrl_c_mid_export_is_exit_130_and_leaves_no_file(tmp_path):
    import signal

    target = tmp_path / "backup.jsonl"
    with SilentServer() as server:
        exporting = start_script("--base-url", server.url, "--export", target)
        deadline = time.monotonic() + 30
        while not server.accepted and time.monotonic() < deadline:  # the request is out: stop it there
            time.sleep(0.01)
        exporting.send_signal(signal.SIGINT)
        _, stderr = exporting.communicate(timeout=30)
    assert exporting.returncode == 130 and stderr == "error: interrupted\n"
    assert list(tmp_path.iterdir()) == []


SPELLED_META = '"}],"meta":{"page":1,"limit":30,"total_pages":3334,"total_count":100000}}'


def page_layout(layout):
    """30 memories in one page, laid out as another server might: the walk reads the
    page's meta from its tail, so nothing in a row may pass for it."""
    page = json.loads(memory_page(30, 30, page_limit=5000))
    impostor = {"page": 1, "limit": 30, "total_pages": 3334, "total_count": 100_000}
    if layout == "a row with a meta key":
        page["data"][-1]["meta"] = impostor
    if layout == "a memory that spells a meta":
        page["data"][-1]["memory"] = SPELLED_META
    if layout == "indented":
        return json.dumps(page, indent=2) + "\n"
    if layout == "meta last":
        return json.dumps(page, separators=(",", ":"))
    return json.dumps({"meta": page["meta"], "data": page["data"]})  # meta first


@pytest.mark.parametrize(
    "layout", ["meta last", "meta first", "indented", "a row with a meta key", "a memory that spells a meta"]
)
def test_a_page_in_any_key_order_or_layout_is_read_with_its_own_count(layout, tmp_path):
    """A total of 100,000 read from a row would make the walk think the server caps its
    pages at 30 and ask for more of them."""

    def answer(method, path):
        if method == "GET" and path.startswith("/memories?"):
            return 200, "application/json", page_layout(layout)
        return 404, "application/json", json.dumps({"detail": "Not Found"})

    target = tmp_path / "backup.jsonl"
    with FaultServer(answer) as server:
        result = run_script("--base-url", server.url, "--export", target)
    assert result.code == 0, result.stderr
    exported = [json.loads(line)["memory_id"] for line in target.read_text().splitlines()]
    assert sorted(exported) == sorted(f"m-{n}" for n in range(30))
    pages = [line for line in server.requests if line.startswith("GET /memories?")]
    assert len(pages) == 1, pages


@settings(max_examples=300, deadline=None)
@given(
    texts=st.lists(st.one_of(st.text(max_size=40), st.just(SPELLED_META)), min_size=1, max_size=6),
    keys=st.lists(st.one_of(st.text(max_size=8), st.just("meta")), max_size=3),
    meta_first=st.booleans(),
    indent=st.sampled_from([None, 0, 2]),
)
def test_a_pages_meta_is_read_from_its_tail_or_not_at_all(texts, keys, meta_first, indent):
    """Whatever the memories say and whatever keys their rows carry, the meta read from
    the end of a page is the page's own, or None (and the walk parses the whole page)."""
    meta = {"page": 1, "limit": 50, "total_pages": 1, "total_count": len(texts)}
    rows = [
        {"memory_id": f"m-{n}", "memory": text, **{key: {"total_count": -1} for key in keys}}
        for n, text in enumerate(texts)
    ]
    page = {"meta": meta, "data": rows} if meta_first else {"data": rows, "meta": meta}
    found = manage_memories.read_meta(io.BytesIO(json.dumps(page, indent=indent).encode()))
    assert found in (None, meta)
    if not meta_first:
        assert found == meta


STUBBORN = """
import asyncio, os, signal, sys
sys.path.insert(0, sys.argv[1])
import manage_memories

async def operation(swallow):
    asyncio.get_running_loop().call_later(0.2, os.kill, os.getpid(), signal.SIGINT)
    while True:
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            if not swallow:
                raise  # a well-behaved operation stops

try:
    asyncio.run(manage_memories.interruptible(operation(swallow=sys.argv[2] == "swallow")))
except KeyboardInterrupt:
    sys.exit(7)  # main() turns this into exit 130
"""


@pytest.mark.parametrize("behaviour, code", [("stops", 7), ("swallow", 130)])
def test_ctrl_c_ends_an_operation_even_one_that_swallows_the_cancellation(behaviour, code):
    """Under load a cancellation was once swallowed below the script, and a Ctrl-C then
    waited out the 30 s request timeout; now it is sent again until the operation stops,
    and past a second the process ends anyway, with the same line and exit code."""
    run = subprocess.run(
        [sys.executable, "-c", STUBBORN, str(ROOT / "scripts"), behaviour], capture_output=True, text=True, timeout=20
    )
    assert run.returncode == code, run.stderr
    if code == 130:
        assert run.stderr == "error: interrupted\n"


def test_ctrl_c_while_a_request_hangs_does_not_wait_for_the_timeout(tmp_path):
    import signal

    with SilentServer() as server:
        listing = start_script("--base-url", server.url, "--user-id", "a", "--timeout", "120")
        deadline = time.monotonic() + 30
        while not server.accepted and time.monotonic() < deadline:
            time.sleep(0.01)
        listing.send_signal(signal.SIGINT)
        _, stderr = listing.communicate(timeout=30)  # far less than the 120 s the request would wait
    assert listing.returncode == 130 and stderr == "error: interrupted\n"


def test_wait_lets_a_command_reach_a_server_that_starts_after_it(tmp_path):
    from conftest import free_port, start_server

    port = free_port()
    listing = start_script("--base-url", f"http://127.0.0.1:{port}", "--user-id", "late", "--wait", "60")
    time.sleep(2)  # the command is waiting: nothing listens yet
    assert listing.poll() is None
    server = start_server(tmp_path, port=port)
    try:
        stdout, stderr = listing.communicate(timeout=60)
    finally:
        server.stop()
    assert listing.returncode == 0, stderr
    assert "no memories of user late" in stdout


def test_wait_gives_up_in_one_line_after_the_time_given():
    from conftest import free_port

    result = run_script("--base-url", f"http://127.0.0.1:{free_port()}", "--user-id", "a", "--wait", "1", "--json")
    assert result.code == 3 and result.error()["type"] == "unreachable"
    assert "did not answer within --wait 1 seconds" in result.error()["message"]
    assert result.stderr.count("\n") == 1
