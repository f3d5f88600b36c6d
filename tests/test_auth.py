"""Who may do what: every action refused without the right token, with nothing changed
and the token never printed; the static key (OS_SECURITY_KEY) and where the script
finds it; and JWT-secured servers, never acted on or reported for the wrong user
(isolation, scopes, rejected tokens, service accounts, --whoami).

Real servers verify real tokens: dev_server.py --jwt-key, with and without
--user-isolation, on SQLite and PostgreSQL; tokens are minted with agno's own
create_dev_token, service-account tokens through POST /service-accounts.
"""

import json
import sys
import time
import uuid

import jwt
import pytest

from conftest import (
    EVERY_ACTION,
    JWT_KEY,
    ON_SQLITE_ALONE,
    ROOT,
    TOKEN,
    NoInvocation,
    invocation,
    mint,
    run_script,
    start_server,
)

sys.path.insert(0, str(ROOT / "scripts"))
import manage_memories  # noqa: E402


# --------------------------------------------- every action without the right token


def prepare(action, server, tmp_path):
    """The command line of one action, on a memory of alice's; an action that acts on the
    journal finds an operation of this test's own there, made with the right token."""
    memory = server.seed("alice", "alice's secret", ["private"])
    call = invocation(action, tmp_path, memory["memory_id"])
    if call.reads_journal:
        journaled = ["--user-id", "alice", "--create", f"journaled {uuid.uuid4().hex}", "--token", TOKEN]
        created = run_script("--base-url", server.url, *journaled, env=call.env)
        assert created.code == 0, created.stderr
    return call


# Every action, its command line built from its row of ACTIONS (conftest.invocation).
# An offline action (--history) reads only this machine's journal and needs no token:
# without the right one it still answers (exit 0), sends the server nothing, and does
# not print the token it was given.
@pytest.mark.parametrize("token", [None, "wrong-token-Zq9"], ids=["no-token", "wrong-token"])
@pytest.mark.parametrize("action", EVERY_ACTION)
def test_without_the_right_token_every_action_is_exit_4_and_changes_nothing(secured, tmp_path, action, token):
    call = prepare(action, secured, tmp_path)
    before = secured.memories()
    sent = len(secured.requests())
    extra = ["--token", token] if token else []
    result = run_script("--base-url", secured.url, *call.args, *extra, env=call.env)
    if call.action.offline:
        assert result.code == 0, result.stderr
        assert secured.requests()[sent:] == []
    else:
        assert result.code == 4, result.stderr
        assert result.stderr.count("\n") == 1 and "401" in result.stderr
        assert "--undo" not in result.stderr, "nothing was done, yet the error offers to undo it"
    assert secured.memories() == before
    assert not (call.writes and call.writes.exists())
    if token:
        assert token not in result.stdout + result.stderr


@pytest.mark.parametrize("action", EVERY_ACTION)
def test_the_token_never_appears_in_output(secured, tmp_path, action):
    call = prepare(action, secured, tmp_path)
    for extra in (["--token", TOKEN], ["--token", TOKEN, "--json"]):
        result = run_script("--base-url", secured.url, *call.args, *extra, env=call.env)
        assert TOKEN not in result.stdout + result.stderr
        # 1: show/update/delete of an id deleted by the first round, or an undo of what it undid
        assert result.code in (0, 1), result.stderr


def test_every_action_has_an_invocation(tmp_path):
    """The tests of every action (these, and test_faults.py's) build each command line
    from its row of ACTIONS: a row they cannot build one for, or whose command line the
    script refuses as a usage error, fails here instead of going untested."""
    problems = []
    for name in manage_memories.ACTIONS:
        folder = tmp_path / name
        folder.mkdir()
        try:
            call = invocation(name, folder, "m1")
        except NoInvocation as missing:
            problems.append(f"no invocation for {missing}")
            continue
        result = run_script("--base-url", "http://127.0.0.1:9", "--timeout", "1", *call.args, "--json", env=call.env)
        if result.code == 2:
            problems.append(f"{name}: {' '.join(call.args)}: {result.error()['message']}")
    assert not problems


# ------------------------------------------------------------------- the static key


def test_without_token_is_exit_4_with_a_hint(secured, user):
    result = run_script("--base-url", secured.url, "--user-id", user)
    assert result.code == 4 and "OS_SECURITY_KEY" in result.stderr and "AGNO_ADMIN_TOKEN" in result.stderr


def test_wrong_token_is_exit_4(secured, user):
    result = run_script("--base-url", secured.url, "--user-id", user, "--create", "x", "--token", "wrong", "--json")
    assert result.code == 4 and result.error()["type"] == "auth"
    assert secured.memories(user) == []


def test_token_flag_works_and_is_never_printed(secured, user):
    result = run_script("--base-url", secured.url, "--user-id", user, "--create", "x", "--token", TOKEN)
    assert result.code == 0, result.stderr
    assert TOKEN not in result.stdout + result.stderr
    assert len(secured.memories(user)) == 1


@pytest.mark.parametrize("variable", ["AGNO_ADMIN_TOKEN", "OS_SECURITY_KEY"])
def test_token_comes_from_the_environment(secured, user, variable):
    result = run_script("--base-url", secured.url, "--user-id", user, "--json", env={variable: TOKEN})
    assert result.code == 0, result.stderr


def test_agno_admin_token_wins_over_os_security_key(secured, user):
    env = {"AGNO_ADMIN_TOKEN": TOKEN, "OS_SECURITY_KEY": "wrong"}
    assert run_script("--base-url", secured.url, "--user-id", user, env=env).code == 0


def test_the_token_is_not_in_help_even_when_set_in_the_environment():
    result = run_script("--help", env={"AGNO_ADMIN_TOKEN": TOKEN, "OS_SECURITY_KEY": TOKEN})
    assert result.code == 0 and TOKEN not in result.stdout + result.stderr


def test_a_token_over_plain_http_to_another_host_is_warned_about():
    result = run_script("--base-url", "http://192.0.2.1:7777", "--user-id", "alice", "--token", TOKEN, "--timeout", "1")
    assert result.stderr.startswith("warning: sending the token over plain http to 192.0.2.1")
    assert TOKEN not in result.stderr


@pytest.mark.parametrize("base_url", ["http://127.0.0.1:9", "http://localhost:9", "https://192.0.2.1:9"])
def test_no_warning_for_loopback_or_https(base_url):
    result = run_script("--base-url", base_url, "--user-id", "alice", "--token", TOKEN, "--timeout", "1")
    assert "warning" not in result.stderr


def test_no_warning_without_a_token():
    result = run_script("--base-url", "http://192.0.2.1:7777", "--user-id", "alice", "--timeout", "1")
    assert "warning" not in result.stderr


# ---------------------------------------------------------------------- JWT servers


# The servers, `isolated` (JWT with user isolation) and `scoped` (JWT with scopes but no
# isolation), are conftest.py's. A test marked ON_SQLITE_ALONE checks a refusal the script
# makes before it sends or reads a memory, or an answer of the server's auth (401, 403,
# /info), never of its database: what PostgreSQL would add is checked by the others.


@pytest.fixture
def users(isolated, user):
    """alice and bob, each with memories, on the isolated server."""
    alice, bob = f"{user}-alice", f"{user}-bob"
    isolated.seed(alice, "alice likes tea")
    isolated.seed(alice, "alice lives in Porto")
    isolated.seed(bob, "bob likes coffee")
    return alice, bob


def memory_requests(server):
    return [line for line in server.requests() if " /memor" in line]


def run_as(server, token, *args):
    return run_script("--base-url", server.url, "--token", token, *args)


# ----------------------------------------------------------- isolation on: refusals


@ON_SQLITE_ALONE
@pytest.mark.parametrize(
    "action",
    [
        [],
        ["--create", "written by alice's token"],
        ["--delete-all", "--yes"],
        ["--stats"],
        ["--topics-list"],
        ["--export", "-"],
    ],
    ids=["list", "create", "delete-all", "stats", "topics", "export"],
)
def test_another_users_id_is_refused_before_anything_is_sent(isolated, users, action):
    alice, bob = users
    before = isolated.memories()
    sent = len(memory_requests(isolated))
    result = run_as(isolated, mint(alice), "--user-id", bob, *action)
    assert result.code == 4, result.stderr
    assert f"limits this token to user {alice}" in result.stderr and f"user {bob}" in result.stderr
    assert result.stderr.count("\n") == 1 and result.stdout == ""
    assert len(memory_requests(isolated)) == sent  # only GET /info was asked
    assert isolated.memories() == before


@ON_SQLITE_ALONE
@pytest.mark.parametrize("action", [["--update", "changed"], ["--delete"], ["--topics", "x"]])
def test_another_users_memory_cannot_be_changed_by_id(isolated, users, action):
    alice, bob = users
    [bobs] = isolated.memories(bob)
    result = run_as(isolated, mint(alice), "--user-id", bob, "--memory-id", bobs["memory_id"], *action)
    assert result.code == 4 and f"limits this token to user {alice}" in result.stderr
    assert isolated.memories(bob) == [bobs]


@ON_SQLITE_ALONE
@pytest.mark.parametrize(
    "action",
    [
        ["--user-id", "{alice}", "--move-to", "{bob}", "--yes"],
        ["--delete-all", "--all-users", "--search", "likes", "--yes"],
        ["--add-topics", "x", "--all-users", "--yes"],
    ],
    ids=["move", "delete-all", "add-topics"],
)
def test_a_change_beyond_the_tokens_own_user_is_refused_under_isolation(isolated, users, action):
    alice, bob = users
    before, sent = isolated.memories(), len(memory_requests(isolated))
    result = run_as(isolated, mint(alice), *(part.format(alice=alice, bob=bob) for part in action))
    assert result.code == 4, result.stderr
    assert f"limits this token to user {alice}" in result.stderr and result.stderr.count("\n") == 1
    assert len(memory_requests(isolated)) == sent and isolated.memories() == before


def test_import_under_isolation_takes_only_the_token_users_lines(isolated, users, tmp_path):
    alice, bob = users
    backup = tmp_path / "all.jsonl"
    lines = [{"memory": "restored for alice", "user_id": alice}, {"memory": "restored for bob", "user_id": bob}]
    backup.write_text("".join(json.dumps(line) + "\n" for line in lines))
    result = run_as(isolated, mint(alice), "--import", backup, "--json")
    assert result.code == 0, result.stderr
    summary = result.json()
    assert summary["created"] == 1 and summary["skipped"] == 1
    assert "restored for alice" in {m["memory"] for m in isolated.memories(alice)}
    assert [m["memory"] for m in isolated.memories(bob)] == ["bob likes coffee"]
    again = run_as(isolated, mint(alice), "--import", backup, "--json")
    assert again.code == 0 and again.json()["created"] == 0 and again.json()["unchanged"] == 1


@ON_SQLITE_ALONE
def test_import_naming_another_user_is_refused(isolated, users, tmp_path):
    alice, bob = users
    backup = tmp_path / "bob.jsonl"
    backup.write_text(json.dumps({"memory": "restored for bob", "user_id": bob}) + "\n")
    result = run_as(isolated, mint(alice), "--import", backup, "--user-id", bob)
    assert result.code == 4 and f"limits this token to user {alice}" in result.stderr
    assert [m["memory"] for m in isolated.memories(bob)] == ["bob likes coffee"]


# --------------------------------------------------- isolation on: the token's user


def test_without_user_id_the_token_subject_is_used_and_said(isolated, users):
    alice, _ = users
    result = run_as(isolated, mint(alice))
    assert result.code == 0, result.stderr
    assert result.stdout.startswith(f"2 of 2 memories of user {alice}")
    assert f"note: acting as user {alice}, the subject of the token" in result.stderr


def test_create_without_user_id_writes_for_the_token_subject(isolated, users):
    alice, bob = users
    result = run_as(isolated, mint(alice), "--create", "alice prefers dark mode", "--json")
    assert result.code == 0 and result.json()["user_id"] == alice
    assert "alice prefers dark mode" in {m["memory"] for m in isolated.memories(alice)}
    assert [m["memory"] for m in isolated.memories(bob)] == ["bob likes coffee"]


def test_delete_all_without_user_id_deletes_only_the_token_users(isolated, users):
    alice, bob = users
    result = run_as(isolated, mint(alice), "--delete-all", "--yes", "--json")
    assert result.code == 0, result.stderr
    assert result.json()["count"] == 2
    assert isolated.memories(alice) == [] and len(isolated.memories(bob)) == 1


def test_stats_without_user_id_are_the_token_users_and_say_so(isolated, users):
    alice, _ = users
    result = run_as(isolated, mint(alice), "--stats", "--json")
    assert result.code == 0
    assert [(row["user_id"], row["total_memories"]) for row in result.json()["data"]] == [(alice, 2)]
    result = run_as(isolated, mint(alice), "--stats")
    assert "the server limits this token to its own user" in result.stderr


def test_an_admin_token_acts_on_any_user(isolated, users):
    _, bob = users
    admin = mint("ops", ["agent_os:admin"])
    result = run_as(isolated, admin, "--user-id", bob, "--json")
    assert result.code == 0 and [m["memory"] for m in result.json()["data"]] == ["bob likes coffee"]
    result = run_as(isolated, admin, "--user-id", bob, "--create", "added by ops", "--json")
    assert result.code == 0 and result.json()["user_id"] == bob


@ON_SQLITE_ALONE
def test_a_token_without_a_subject_is_refused_under_isolation(isolated, users):
    alice, _ = users
    claims = {"scopes": ["memories:read"], "exp": int(time.time()) + 600}
    result = run_as(isolated, jwt.encode(claims, JWT_KEY, algorithm="HS256"), "--user-id", alice)
    assert result.code == 4 and "no 'sub' claim" in result.stderr


@ON_SQLITE_ALONE
def test_a_disabled_user_is_told_so(isolated, user):
    with isolated.http() as http:
        http.post("/users", json={"id": user}).raise_for_status()
        http.patch(f"/users/{user}", json={"disabled": True}).raise_for_status()
    result = run_as(isolated, mint(user))
    assert result.code == 4 and f"user {user} is disabled on this AgentOS (403)" in result.stderr


# --------------------------------------------------------- isolation off: RBAC only


def test_without_isolation_a_token_acts_on_the_user_named(scoped, user):
    scoped.seed(user + "-bob", "bob likes coffee")
    result = run_as(scoped, mint(user + "-alice"), "--user-id", user + "-bob", "--json")
    assert result.code == 0 and [m["memory"] for m in result.json()["data"]] == ["bob likes coffee"]


def test_without_isolation_the_subject_is_still_the_default_user(scoped, user):
    scoped.seed(user, "mine")
    result = run_as(scoped, mint(user), "--json")
    assert result.code == 0 and [m["memory"] for m in result.json()["data"]] == ["mine"]


# --------------------------------------------------------------------------- scopes


@ON_SQLITE_ALONE
def test_a_write_the_scopes_cannot_cover_is_refused_before_sending(scoped, user):
    sent = len(memory_requests(scoped))
    result = run_as(scoped, mint(user, ["memories:read"]), "--create", "x")
    assert result.code == 4
    assert "this token lacks memories:write, which --create needs" in result.stderr
    assert "agent_os:admin" in result.stderr
    assert len(memory_requests(scoped)) == sent and scoped.memories(user) == []


@ON_SQLITE_ALONE
def test_delete_needs_the_delete_scope(scoped, user):
    memory = scoped.seed(user, "keep me")
    result = run_as(
        scoped, mint(user, ["memories:read", "memories:write"]), "--memory-id", memory["memory_id"], "--delete"
    )
    assert result.code == 4 and "lacks memories:delete" in result.stderr
    assert scoped.memories(user) == [memory]


@ON_SQLITE_ALONE
def test_a_scope_the_server_refuses_is_named(scoped, user):
    # A token whose scopes claim is empty says nothing locally, so the server decides.
    result = run_as(scoped, mint(user, []), "--user-id", user, "--json")
    assert result.code == 4
    error = result.error()
    assert error["status"] == 403 and error["message"] == "this token lacks memories:read (403)"
    assert error["hint"] == "ask for a token with memories:read or agent_os:admin"


# -------------------------------------------------------- tokens the server rejects


@ON_SQLITE_ALONE
@pytest.mark.parametrize(
    "token, expected",
    [
        (lambda: mint("alice", expires_in=-60), "the token expired at "),
        (lambda: mint("alice", key="another-signing-key-0123456789abcdefghij"), "signature"),
        (lambda: TOKEN, "this AgentOS expects a JWT (auth mode jwt), but the token is a static key"),
        (lambda: "agno_pat_notarealtoken000000000000", "service-account token is unknown, revoked or expired"),
    ],
    ids=["expired", "wrong-key", "static-key", "unknown-service-account"],
)
def test_a_rejected_token_says_why_in_one_line(scoped, token, expected):
    result = run_as(scoped, token(), "--user-id", "alice")
    assert result.code == 4 and expected in result.stderr and "(401)" in result.stderr
    assert result.stderr.count("\n") == 1


@ON_SQLITE_ALONE
def test_no_token_on_a_jwt_server_says_one_is_needed(scoped):
    result = run_script("--base-url", scoped.url, "--user-id", "alice")
    assert result.code == 4 and "this AgentOS requires a token (401)" in result.stderr


def test_a_jwt_sent_to_a_static_key_server_says_it_wants_the_key(secured):
    result = run_as(secured, mint("alice"), "--user-id", "alice")
    assert result.code == 4 and "expects its static key (OS_SECURITY_KEY), but the token is a JWT" in result.stderr


def test_a_token_for_another_audience_is_named(tmp_path):
    server = start_server(tmp_path, jwt_key=JWT_KEY, audience="memories-prod")
    try:
        result = run_as(server, mint("alice", audience="memories-staging"), "--user-id", "alice")
        assert result.code == 4 and "the token's audience 'memories-staging' is not this server's" in result.stderr
        assert run_as(server, mint("alice", audience="memories-prod"), "--user-id", "alice").code == 0
    finally:
        server.stop()


# ----------------------------------------------------------- service-account tokens


def service_account(server, name, scopes=("memories:read", "memories:write", "memories:delete")):
    with server.http() as http:
        response = http.post(
            "/service-accounts",
            json={
                "name": name,
                "scopes": [{"scope": scope, "effect": "allow"} for scope in scopes],
                "allow_privileged_scopes": True,
            },
        )
        response.raise_for_status()
        return response.json()["token"]


def test_a_service_account_create_for_another_user_leaves_nothing_behind(isolated, users):
    _, bob = users
    token = service_account(isolated, f"bot-{bob[-6:]}")
    before = isolated.memories()
    result = run_as(isolated, token, "--user-id", bob, "--create", "from the bot")
    assert result.code == 4, result.stderr
    assert "limited this token to user sa:bot-" in result.stderr and "removed again" in result.stderr
    assert isolated.memories() == before


def test_a_service_account_delete_all_for_another_user_deletes_nothing(isolated, users):
    alice, bob = users
    name = f"bot-{alice[-6:]}"
    token = service_account(isolated, name)
    run_as(isolated, token, "--user-id", f"sa:{name}", "--create", "the bot's own note")
    before = isolated.memories()
    result = run_as(isolated, token, "--user-id", bob, "--delete-all", "--yes")
    assert result.code == 4 and f"limited this token to user sa:{name}" in result.stderr
    assert isolated.memories() == before


def test_a_service_account_never_reads_an_empty_answer_as_no_memories(isolated, users):
    _, bob = users
    token = service_account(isolated, f"bot-{bob[-7:]}")
    result = run_as(isolated, token, "--user-id", bob)
    assert result.code == 0
    assert f"user {bob} may have memories this token cannot see" in result.stderr


def test_an_admin_service_account_lists_without_a_warning(isolated, users):
    _, bob = users
    token = service_account(isolated, f"ops-{bob[-7:]}", ["agent_os:admin"])
    result = run_as(isolated, token, "--user-id", bob, "--json")
    assert result.code == 0 and [m["memory"] for m in result.json()["data"]] == ["bob likes coffee"]
    assert result.stderr == ""


# ------------------------------------------------------------------------- --whoami


@ON_SQLITE_ALONE
def test_whoami_tells_mode_isolation_subject_scopes_and_expiry(isolated):
    token = mint("alice", ["memories:read"], expires_in=600)
    result = run_as(isolated, token, "--whoami", "--json")
    assert result.code == 0
    identity = result.json()
    assert identity["server"]["auth_mode"] == "jwt" and identity["server"]["user_isolation"] is True
    assert identity["server"]["agno_version"]
    assert identity["token"]["kind"] == "jwt" and identity["token"]["subject"] == "alice"
    assert identity["token"]["scopes"] == ["memories:read"] and identity["token"]["expired"] is False
    assert identity["limited_to_user"] == "alice"
    human = run_as(isolated, token, "--whoami")
    assert "user isolation on" in human.stdout and "alice" in human.stdout
    for output in (result.stdout + result.stderr, human.stdout + human.stderr):
        assert token not in output and token.split(".")[2] not in output


def test_whoami_on_a_static_key_server(secured):
    result = run_as(secured, TOKEN, "--whoami", "--json")
    assert result.code == 0 and TOKEN not in result.stdout
    assert result.json()["server"]["auth_mode"] == "security_key" and result.json()["token"]["kind"] == "key"


@ON_SQLITE_ALONE
def test_whoami_does_not_touch_the_memory_api(isolated):
    sent = len(memory_requests(isolated))
    assert run_as(isolated, mint("alice"), "--whoami").code == 0
    assert len(memory_requests(isolated)) == sent


@ON_SQLITE_ALONE
def test_a_static_key_or_no_token_never_asks_for_info(secured, agentos, user):
    def info_requests():  # the servers are shared: --topics-list and --sort created_at may ask
        return [line for line in secured.requests() + agentos.requests() if line.startswith("GET /info")]

    before = info_requests()
    run_as(secured, TOKEN, "--user-id", user)
    run_script("--base-url", agentos.url, "--user-id", user)
    assert info_requests() == before


@ON_SQLITE_ALONE
def test_an_expired_token_shows_as_expired_in_whoami(isolated):
    result = run_as(isolated, mint("alice", expires_in=-5), "--whoami", "--json")
    assert result.code == 0 and result.json()["token"]["expired"] is True
