"""An undo never takes back more than it may: not a write made while it ran, not a memory
that came back already, not another user's memory.

Each test journals in a folder of its own and checks what the server holds afterwards,
straight from the API. Where the script must talk through a proxy, every command of
the test does, so that all of them name the same server (the journal is keyed by URL).
"""

import json

import pytest

from conftest import mint, run_script
from hooks_proxy import WriteHookProxy, server_failure


@pytest.fixture
def journal(tmp_path):
    return tmp_path / "journal"


# `isolated` is conftest.py's: the session's JWT server with user isolation, on each backend.


def held(server, user):
    """What the server holds for user: {memory_id: (memory, topics)}."""
    return {memory["memory_id"]: (memory["memory"], memory["topics"]) for memory in server.memories(user)}


def import_line(memory_id, user_id, memory, topics=()):
    return {"memory_id": memory_id, "user_id": user_id, "memory": memory, "topics": list(topics)}


def write_lines(path, lines):
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    return path


def error_of(result):
    """The JSON error on stderr (warnings may come before it, one JSON line each)."""
    return json.loads(result.stderr.strip().splitlines()[-1])["error"]


def sent_writes(server, since):
    return [line for line in server.requests()[since:] if line.startswith(("POST", "PATCH", "DELETE"))]


# ----------------------------------------------------------------- an undo racing a write


def test_an_undo_leaves_alone_what_an_import_wrote_while_it_ran(agentos, journal, user, tmp_path):
    """The undo checks each memory as it writes it: 19 of the 20 were changed again by the
    second import after the undo began, and must keep that change."""
    ids = [agentos.seed(user, f"original fact {n}", ["facts"])["memory_id"] for n in range(20)]
    first = write_lines(
        tmp_path / "first.jsonl", [import_line(id_, user, f"first import {n}", ["facts"]) for n, id_ in enumerate(ids)]
    )
    second = write_lines(
        tmp_path / "second.jsonl",
        [import_line(id_, user, f"second import {n}", ["facts"]) for n, id_ in enumerate(ids)],
    )
    env = {"AGENTOS_MEMORY_JOURNAL": str(journal)}
    racing = []

    def import_again_first(method, path, number):
        if not racing:  # the undo's first write waits until the second import is done
            second_env = {"AGENTOS_MEMORY_JOURNAL": str(tmp_path / "second-journal")}
            racing.append(run_script("--base-url", agentos.url, "--import", second, "--json", env=second_env))

    with WriteHookProxy(agentos.url) as proxy:
        imported = run_script("--base-url", proxy.url, "--import", first, "--json", env=env)
        assert imported.code == 0 and imported.json()["updated"] == 20, imported.stderr
        proxy.on_write = import_again_first
        undone = run_script(
            "--base-url", proxy.url, "--undo", imported.json()["operation"], "--concurrency", "1", "--json", env=env
        )
    assert racing and racing[0].code == 0 and racing[0].json()["updated"] == 20, racing and racing[0].stderr
    assert undone.code == 1, undone.stdout + undone.stderr
    kept = {memory_id for memory_id, (memory, _) in held(agentos, user).items() if memory.startswith("second import")}
    assert len(kept) >= 19, "the undo overwrote what the second import wrote while it ran"
    conflicts = undone.json()["conflicts"]
    assert {conflict["memory_id"] for conflict in conflicts} == kept
    assert all({"memory_id", "user_id", "reason"} <= set(conflict) for conflict in conflicts)
    assert {conflict["user_id"] for conflict in conflicts} == {user}


# ------------------------------------------------------------------ under user isolation


def test_an_undo_run_again_after_a_failure_under_isolation_recreates_nothing_twice(isolated, journal, user):
    alice = f"{user}-alice"
    facts = [("alice likes tea", ["drinks"]), ("alice lives in Porto", ["home"]), ("alice runs on Sundays", [])]
    ids = [isolated.seed(alice, memory, topics)["memory_id"] for memory, topics in facts]
    env = {"AGENTOS_MEMORY_JOURNAL": str(journal)}
    token = mint(alice)
    failed = []

    def fail_one_post(method, path, number):
        if method == "POST" and not failed:
            failed.append(path)
            return server_failure()
        return None

    with WriteHookProxy(isolated.url) as proxy:
        by_id = [arg for memory_id in ids for arg in ("--memory-id", memory_id)]
        deleted = run_script("--base-url", proxy.url, "--token", token, *by_id, "--delete", env=env)
        assert deleted.code == 0 and held(isolated, alice) == {}, deleted.stderr
        proxy.on_write = fail_one_post
        first = run_script("--base-url", proxy.url, "--token", token, "--undo", "--json", env=env)
        assert first.code == 1 and error_of(first)["type"] == "incomplete", first.stderr
        assert failed, "the undo sent no POST to fail"
        proxy.on_write = None
        again = run_script("--base-url", proxy.url, "--token", token, "--undo", "--json", env=env)
    assert again.code == 0, again.stderr
    assert sorted(held(isolated, alice).values()) == sorted(facts)


def test_a_users_token_cannot_undo_an_import_that_changed_another_users_memories(isolated, journal, user, tmp_path):
    alice, bob = f"{user}-alice", f"{user}-bob"
    alices = isolated.seed(alice, "alice likes tea", ["drinks"])
    bobs = isolated.seed(bob, "bob likes coffee", ["drinks"])
    backup = write_lines(
        tmp_path / "both.jsonl",
        [
            import_line(alices["memory_id"], alice, "alice likes green tea", ["drinks"]),
            import_line(bobs["memory_id"], bob, "bob likes black coffee", ["drinks"]),
            import_line(f"{user}-new-a", alice, "alice reads novels"),
            import_line(f"{user}-new-b", bob, "bob sings in a choir"),
        ],
    )
    env = {"AGENTOS_MEMORY_JOURNAL": str(journal)}
    imported = run_script("--base-url", isolated.url, "--token", isolated.token, "--import", backup, "--json", env=env)
    assert imported.code == 0 and (imported.json()["updated"], imported.json()["created"]) == (2, 2), imported.stderr
    before = {alice: held(isolated, alice), bob: held(isolated, bob)}
    since = len(isolated.requests())

    refused = run_script(
        "--base-url", isolated.url, "--token", mint(alice), "--undo", imported.json()["operation"], "--json", env=env
    )
    assert refused.code == 4, refused.stderr
    assert error_of(refused)["type"] == "wrong_user"
    assert sent_writes(isolated, since) == []
    assert {alice: held(isolated, alice), bob: held(isolated, bob)} == before
