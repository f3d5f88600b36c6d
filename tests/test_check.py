"""--check: one call that says whether the memory API works for this token, step by step."""

import json

import pytest

from conftest import ON_SQLITE_ALONE, TOKEN, free_port, mint, run_script
from faults import FaultServer, html


def stats(server):
    with server.http() as http:
        return http.get("/user_memory_stats", params={"limit": 1000}).json()["data"]


def test_check_passes_and_leaves_the_server_as_it_found_it(fresh_agentos):
    server = fresh_agentos()
    server.seed("alice", "Prefers dark mode", ["ui"])
    before, stats_before = server.memories(), stats(server)
    result = run_script("--base-url", server.url, "--check", "--json")
    assert result.code == 0, result.stderr
    check = result.json()
    assert check["ok"] and check["skipped"] == []
    assert [step["step"] for step in check["steps"]] == [
        "reachable", "an AgentOS memory API", "list memories", "create", "read it back", "find it", "update it",
        "list it", "delete it", "gone",
    ]  # fmt: skip
    assert all(step["ok"] and step["ms"] >= 0 for step in check["steps"])
    assert server.memories() == before and stats(server) == stats_before
    assert any(line.startswith("POST /memories") for line in server.requests())


def test_check_human_output_is_a_checklist(agentos):
    result = run_script("--base-url", agentos.url, "--check")
    assert result.code == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith(f"check of {agentos.url} (agno ")
    assert sum(line.startswith("  ok    ") for line in lines) == 10 and lines[-1] == "all 10 steps passed"


def test_check_dry_run_only_reads(agentos):
    before = len(agentos.requests())
    result = run_script("--base-url", agentos.url, "--check", "--dry-run", "--json")
    assert result.code == 0 and result.json()["skipped"][0]["why"] == "--dry-run"
    assert all(line.startswith("GET ") for line in agentos.requests()[before:])


def test_check_of_a_closed_port_is_exit_3():
    result = run_script("--base-url", f"http://127.0.0.1:{free_port()}", "--check", "--json")
    assert result.code == 3 and result.error()["type"] == "unreachable"
    assert result.json()["steps"][0] == {**result.json()["steps"][0], "step": "reachable", "ok": False}


def test_check_of_a_server_that_is_not_an_agentos_is_exit_3():
    with FaultServer(html()) as server:
        result = run_script("--base-url", server.url, "--check")
    assert result.code == 3 and "is not an AgentOS memory API" in result.stderr
    assert "FAIL  an AgentOS memory API" in result.stdout


@pytest.mark.parametrize("token", [None, "wrong-key"], ids=["no key", "wrong key"])
def test_check_without_the_right_key_is_exit_4(secured, token):
    extra = ["--token", token] if token else []
    result = run_script("--base-url", secured.url, "--check", *extra)
    assert result.code == 4 and result.stderr.count("\n") == 1, result.stderr
    assert "FAIL  list memories" in result.stdout


def test_check_with_the_key_passes(secured):
    result = run_script("--base-url", secured.url, "--check", "--token", TOKEN)
    assert result.code == 0, result.stderr


# On the session's JWT server with user isolation (conftest.isolated), on SQLite alone:
# which steps a token may take is the server's auth's answer, not its database's.
@ON_SQLITE_ALONE
def test_a_read_only_token_gets_a_read_only_check_that_says_why(isolated):
    reader = mint("reader", scopes=("memories:read",))
    result = run_script("--base-url", isolated.url, "--check", "--json", env={"AGNO_ADMIN_TOKEN": reader})
    assert result.code == 0, result.stderr
    (skipped,) = result.json()["skipped"]
    assert "memories:write" in skipped["why"]
    assert [step["step"] for step in result.json()["steps"]][-1] == "list memories"


@ON_SQLITE_ALONE
def test_on_a_jwt_server_the_probe_is_the_tokens_user(isolated):
    result = run_script("--base-url", isolated.url, "--check", "--json", env={"AGNO_ADMIN_TOKEN": mint("pat")})
    assert result.code == 0, result.stderr
    assert isolated.memories("pat") == []


def test_a_server_that_loses_the_memory_fails_at_read_back_and_the_probe_is_removed():
    """It accepts the create, then answers 404 for it: the API misbehaves (exit 1), and
    the check still sends the DELETE that takes its probe away."""
    created = {
        "memory_id": "probe-1",
        "memory": "agentos-api-memory check probe: prefers green tea",
        "topics": ["check"],
        "agent_id": None,
        "team_id": None,
        "user_id": "probe-user",
        "updated_at": "2026-12-02T00:00:00Z",
    }

    def answer(method, path):
        if path.startswith("/info"):
            return 200, "application/json", json.dumps({"auth_mode": "none", "agno_version": "3.1.10"})
        if path.startswith("/health"):
            return 200, "application/json", json.dumps({"status": "ok"})
        if method == "GET" and path.startswith(("/memories?", "/user_memory_stats?")):
            page = {"data": [], "meta": {"page": 1, "limit": 1, "total_pages": 0, "total_count": 0}}
            return 200, "application/json", json.dumps(page)
        if method == "POST":
            return 200, "application/json", json.dumps(created)
        if method == "DELETE":
            return 204, "application/json", ""
        return 404, "application/json", json.dumps({"detail": "Memory not found"})

    with FaultServer(answer) as server:
        result = run_script("--base-url", server.url, "--check", "--user-id", "probe-user", "--json")
    assert result.code == 1, result.stderr
    steps = result.json()["steps"]
    assert (steps[-1]["step"], steps[-1]["ok"]) == ("read it back", False)
    assert any(line.startswith("DELETE /memories/probe-1") for line in server.requests)
