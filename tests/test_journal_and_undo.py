"""Every change can be undone: the journal, --history and --undo (each kind of change,
conflicts, faults, erasure, user isolation).

Each test keeps its journal in a folder of its own ($AGENTOS_MEMORY_JOURNAL) and
checks what the server holds afterwards, straight from the API.
"""

import json
import os
import stat
import time

import pytest

from conftest import ON_SQLITE_ALONE, mint, run_script, start_script, wait_for_requests
from test_scale import fill


@pytest.fixture
def journal(tmp_path):
    return tmp_path / "journal"


@pytest.fixture
def memories_cli(agentos, journal):
    """The script against the shared server (SQLite and PostgreSQL), journaling in this test's folder."""

    def run(*args, env=None, **options):
        return run_script(
            "--base-url", agentos.url, *args, env={"AGENTOS_MEMORY_JOURNAL": str(journal), **(env or {})}, **options
        )

    return run


def held(server, user):
    """What the server holds for user: {memory_id: (memory, topics)}."""
    return {memory["memory_id"]: (memory["memory"], memory["topics"]) for memory in server.memories(user)}


def seed_several(server, user, count=3):
    return [server.seed(user, f"fact {n} of {user}", [f"topic-{n}", "shared"]) for n in range(count)]


# ------------------------------------------------------------------- undo restores


def test_undo_of_one_delete_restores_id_content_and_topics(agentos, memories_cli, user):
    memory = agentos.seed(user, "Prefers dark mode", ["ui", "preferences"])
    deleted = memories_cli("--user-id", user, "--memory-id", memory["memory_id"], "--delete", "--json")
    assert deleted.code == 0, deleted.stderr
    operation = deleted.json()["operation"]
    assert held(agentos, user) == {}

    undone = memories_cli("--undo", operation, "--json")
    assert undone.code == 0, undone.stderr
    assert undone.json()["recreated"] == 1 and undone.json()["undoes"] == operation
    assert held(agentos, user) == {memory["memory_id"]: ("Prefers dark mode", ["ui", "preferences"])}


def test_undo_of_a_delete_of_several_ids(agentos, memories_cli, user):
    memories = seed_several(agentos, user, 4)
    before = held(agentos, user)
    ids = [arg for memory in memories[:3] for arg in ("--memory-id", memory["memory_id"])]
    assert memories_cli("--user-id", user, *ids, "--delete").code == 0
    assert len(held(agentos, user)) == 1
    undone = memories_cli("--undo")
    assert undone.code == 0, undone.stderr
    assert "3 re-created" in undone.stdout
    assert held(agentos, user) == before


def test_undo_of_an_update_puts_content_and_topics_back(agentos, memories_cli, user):
    memory = agentos.seed(user, "Lives in Berlin", ["home"])
    assert memories_cli("--user-id", user, "--memory-id", memory["memory_id"], "--update", "Lives in Paris").code == 0
    undone = memories_cli("--undo", "--json")
    assert undone.code == 0 and undone.json()["reverted"] == 1, undone.stderr
    assert held(agentos, user) == {memory["memory_id"]: ("Lives in Berlin", ["home"])}


def test_undo_of_a_topics_change(agentos, memories_cli, user):
    memory = agentos.seed(user, "Drinks oat milk", ["food", "drinks"])
    assert memories_cli("--user-id", user, "--memory-id", memory["memory_id"], "--topics", "").code == 0
    assert held(agentos, user)[memory["memory_id"]] == ("Drinks oat milk", [])
    assert memories_cli("--undo").code == 0
    assert held(agentos, user) == {memory["memory_id"]: ("Drinks oat milk", ["food", "drinks"])}


def test_undo_of_a_create_removes_it(agentos, memories_cli, user):
    created = memories_cli("--user-id", user, "--create", "a mistake", "--json")
    assert created.code == 0 and held(agentos, user)
    undone = memories_cli("--undo", created.json()["operation"], "--json")
    assert undone.code == 0 and undone.json()["removed"] == 1
    assert held(agentos, user) == {}


def test_undo_of_an_import_that_updated_and_created(agentos, memories_cli, user, tmp_path):
    kept = agentos.seed(user, "Prefers tea", ["drinks"])
    backup = tmp_path / "old.jsonl"
    lines = [
        {"memory_id": kept["memory_id"], "user_id": user, "memory": "Prefers coffee", "topics": ["old"]},
        {"memory_id": f"{user}-new", "user_id": user, "memory": "A new line", "topics": []},
    ]
    backup.write_text("".join(json.dumps(line) + "\n" for line in lines))
    imported = memories_cli("--import", backup, "--json")
    assert imported.code == 0 and imported.json()["updated"] == 1 and imported.json()["created"] == 1
    undone = memories_cli("--undo", imported.json()["operation"], "--json")
    assert undone.code == 0, undone.stderr
    assert (undone.json()["reverted"], undone.json()["removed"]) == (1, 1)
    assert held(agentos, user) == {kept["memory_id"]: ("Prefers tea", ["drinks"])}


def test_undo_of_a_delete_all_over_several_pages_restores_every_memory_exactly(fresh_agentos, journal):
    """1,000 memories read through a proxy that caps pages at 200: the delete walks several
    pages, and the undo reads the server in pages too. The cap makes the pages: 2,000
    memories at 400 took as many (14), and only gave the undo twice as much to write."""
    from proxy import GatedProxy

    server = fresh_agentos()
    fill(server, [(f"li-{n:05d}", "li.wei", f"fact {n} about Li") for n in range(1000)])
    fill(server, [(f"other-{n}", "someone-else", f"other {n}") for n in range(20)])
    before = held(server, "li.wei")
    env = {"AGENTOS_MEMORY_JOURNAL": str(journal)}
    with GatedProxy(server.url, cap=200) as proxy:
        deleted = run_script("--base-url", proxy.url, "--user-id", "li.wei", "--delete-all", "--yes", "--json", env=env)
        assert deleted.code == 0 and deleted.json()["count"] == 1000, deleted.stderr
        assert held(server, "li.wei") == {}
        undone = run_script("--base-url", proxy.url, "--undo", "--json", env=env)
    assert proxy.pages >= 5, proxy.pages  # several pages for the delete and for the undo
    assert undone.code == 0 and undone.json()["recreated"] == 1000, undone.stderr
    assert held(server, "li.wei") == before
    assert len(held(server, "someone-else")) == 20


# ------------------------------------------------------------- conflicts and faults


def test_an_undo_leaves_a_memory_edited_since_alone_and_restores_the_rest(agentos, memories_cli, user):
    first, second = seed_several(agentos, user, 2)
    for memory in (first, second):
        assert memories_cli("--user-id", user, "--memory-id", memory["memory_id"], "--update", "wrong").code == 0
    operation = memories_cli("--history", "--json").json()["data"][0]["operation"]  # the second update
    agentos.put(second["memory_id"], user, "edited by someone since", ["later"])
    undone = memories_cli("--undo", operation, "--json")
    assert undone.code == 1 and undone.error()["type"] == "conflict"
    conflict = undone.json()["conflicts"]
    assert [entry["memory_id"] for entry in conflict] == [second["memory_id"]]
    assert held(agentos, user)[second["memory_id"]] == ("edited by someone since", ["later"])
    # the first update's undo is untouched by that conflict
    assert memories_cli("--undo").code == 0
    assert held(agentos, user)[first["memory_id"]] == (first["memory"], first["topics"])


def test_an_undo_of_a_delete_of_two_restores_one_and_reports_the_one_written_again(agentos, memories_cli, user):
    kept, rewritten = seed_several(agentos, user, 2)
    ids = ["--memory-id", kept["memory_id"], "--memory-id", rewritten["memory_id"]]
    assert memories_cli("--user-id", user, *ids, "--delete").code == 0
    agentos.put(rewritten["memory_id"], user, "written again since", [])
    undone = memories_cli("--undo", "--json")
    assert undone.code == 1 and undone.json()["recreated"] == 1
    assert [conflict["memory_id"] for conflict in undone.json()["conflicts"]] == [rewritten["memory_id"]]
    assert held(agentos, user) == {
        kept["memory_id"]: (kept["memory"], kept["topics"]),
        rewritten["memory_id"]: ("written again since", []),
    }


def test_an_id_that_holds_another_users_memory_now_is_a_conflict(agentos, memories_cli, user):
    memory = agentos.seed(user, "mine", [])
    assert memories_cli("--user-id", user, "--memory-id", memory["memory_id"], "--delete").code == 0
    agentos.put(memory["memory_id"], user + "-other", "someone else's now", [])
    undone = memories_cli("--undo", "--json")
    assert undone.code == 1 and "user " + user + "-other" in undone.json()["conflicts"][0]["reason"]
    assert agentos.memories(user + "-other")[0]["memory"] == "someone else's now"
    assert held(agentos, user) == {}


def test_undo_after_the_server_was_killed_mid_delete_all_restores_what_went(fresh_agentos, journal):
    server = fresh_agentos()
    fill(server, [(f"k-{n:05d}", "killed", f"fact {n}") for n in range(6000)])
    before = held(server, "killed")
    env = {"AGENTOS_MEMORY_JOURNAL": str(journal)}
    deleting = start_script(
        "--base-url", server.url, "--user-id", "killed", "--delete-all", "--yes", "--concurrency", "1", env=env
    )
    wait_for_requests(server, "DELETE /memories", 1)
    server.kill()
    _, stderr = deleting.communicate(timeout=60)
    assert deleting.returncode == 3, stderr
    assert "--undo" in stderr
    server.restart()
    went = len(before) - len(held(server, "killed"))
    assert went > 0
    undone = run_script("--base-url", server.url, "--undo", "--json", env=env)
    assert undone.code == 0, undone.stderr
    assert undone.json()["recreated"] == went
    assert held(server, "killed") == before


def test_two_operations_at_once_keep_two_whole_entries(agentos, journal, user):
    env = {"AGENTOS_MEMORY_JOURNAL": str(journal)}
    for name in ("a", "b"):
        fill(agentos, [(f"{user}-{name}-{n}", f"{user}-{name}", f"{name} {n}") for n in range(400)])
    running = [
        start_script("--base-url", agentos.url, "--user-id", f"{user}-{name}", "--delete-all", "--yes", env=env)
        for name in ("a", "b")
    ]
    for process in running:
        process.communicate(timeout=120)
        assert process.returncode == 0
    entries = run_script("--base-url", agentos.url, "--history", "--json", env=env).json()["data"]
    assert sorted(entry["user_id"] for entry in entries) == [f"{user}-a", f"{user}-b"]
    assert all(entry["counts"] == {"deleted": 400} and entry["status"] == "done" for entry in entries)
    for entry in entries:
        assert run_script("--base-url", agentos.url, "--undo", entry["operation"], env=env).code == 0
    assert len(held(agentos, f"{user}-a")) == len(held(agentos, f"{user}-b")) == 400


def test_an_undo_can_be_undone(agentos, memories_cli, user):
    memory = agentos.seed(user, "to and fro", ["x"])
    memories_cli("--user-id", user, "--memory-id", memory["memory_id"], "--delete")
    undo = memories_cli("--undo", "--json").json()["operation"]
    assert held(agentos, user)
    redo = memories_cli("--undo", undo, "--json")
    assert redo.code == 0 and redo.json()["removed"] == 1, redo.stderr
    assert held(agentos, user) == {}
    history = {entry["operation"]: entry for entry in memories_cli("--history", "--json").json()["data"]}
    assert history[undo]["undone_by"] == redo.json()["operation"]


def test_undo_dry_run_changes_nothing_and_says_what_it_would_do(agentos, memories_cli, user):
    memory = agentos.seed(user, "dry", [])
    memories_cli("--user-id", user, "--memory-id", memory["memory_id"], "--delete")
    dry = memories_cli("--undo", "--dry-run")
    assert dry.code == 0 and "would undo" in dry.stdout and "1 re-created" in dry.stdout
    assert held(agentos, user) == {}
    assert "undo with" not in dry.stdout


def test_an_operation_undone_already_is_refused(agentos, memories_cli, user):
    memory = agentos.seed(user, "once", [])
    operation = memories_cli("--user-id", user, "--memory-id", memory["memory_id"], "--delete", "--json").json()[
        "operation"
    ]
    assert memories_cli("--undo", operation).code == 0
    again = memories_cli("--undo", operation, "--json")
    assert again.code == 1 and "undone already" in again.error()["message"]


def test_every_change_says_how_to_undo_it(agentos, memories_cli, user):
    created = memories_cli("--user-id", user, "--create", "say it")
    assert created.code == 0
    assert created.stdout.splitlines()[-1].startswith("undo with: uv run scripts/manage_memories.py --base-url ")
    assert " --undo " in created.stdout.splitlines()[-1]


def test_a_change_that_changes_nothing_leaves_no_entry(agentos, memories_cli, user, journal):
    memory = agentos.seed(user, "same", ["a"])
    same = memories_cli("--user-id", user, "--memory-id", memory["memory_id"], "--update", "same")
    assert same.code == 0 and "undo with" not in same.stdout
    assert not list(journal.glob("*.jsonl"))


# ----------------------------------------------------------------- the journal itself


def test_the_journal_is_private_to_its_owner(agentos, memories_cli, user, journal):
    memory = agentos.seed(user, "private", [])
    memories_cli("--user-id", user, "--memory-id", memory["memory_id"], "--delete")
    assert stat.S_IMODE(journal.stat().st_mode) == 0o700
    entries = list(journal.glob("*.jsonl"))
    assert entries and all(stat.S_IMODE(entry.stat().st_mode) == 0o600 for entry in entries)


def test_the_journal_defaults_to_xdg_state_home(agentos, user, tmp_path):
    memory = agentos.seed(user, "where", [])
    result = run_script(
        "--base-url", agentos.url, "--user-id", user, "--memory-id", memory["memory_id"], "--delete",
        env={"XDG_STATE_HOME": str(tmp_path / "state")},
    )  # fmt: skip
    assert result.code == 0
    assert list((tmp_path / "state" / "agentos-api-memory" / "journal").glob("*.jsonl"))


def test_entries_older_than_the_days_kept_are_pruned(agentos, memories_cli, user, journal):
    memory = agentos.seed(user, "old", [])
    memories_cli("--user-id", user, "--memory-id", memory["memory_id"], "--delete")
    (entry,) = journal.glob("*.jsonl")
    month_ago = time.time() - 31 * 86400
    os.utime(entry, (month_ago, month_ago))
    assert memories_cli("--history", "--json").json()["data"] == []
    assert not entry.exists()


def test_a_journal_that_cannot_be_written_stops_the_change_before_it_is_sent(agentos, user, tmp_path):
    memory = agentos.seed(user, "safe", [])
    blocked = tmp_path / "not-a-folder"
    blocked.write_text("a file where the journal's folder should be")
    args = ["--base-url", agentos.url, "--user-id", user, "--memory-id", memory["memory_id"], "--delete", "--json"]
    before = len(agentos.requests())
    refused = run_script(*args, env={"AGENTOS_MEMORY_JOURNAL": str(blocked / "journal")})
    assert refused.code == 1 and refused.error()["type"] == "journal"
    assert "--no-journal" in refused.error()["hint"] and refused.stderr.count("\n") == 1
    assert not any(line.startswith("DELETE") for line in agentos.requests()[before:])
    assert held(agentos, user)
    without = run_script(*args, "--no-journal", env={"AGENTOS_MEMORY_JOURNAL": str(blocked / "journal")})
    assert without.code == 0 and "operation" not in without.json()
    assert held(agentos, user) == {}


def test_history_json_shape(agentos, memories_cli, user):
    memory = agentos.seed(user, "shape", [])
    memories_cli("--user-id", user, "--memory-id", memory["memory_id"], "--delete")
    memories_cli("--user-id", user + "-2", "--create", "another")
    history = memories_cli("--history", "--json").json()
    assert set(history) == {"data", "meta"}
    assert set(history["meta"]) == {"total_count", "journal", "keep_days"}
    assert history["meta"]["total_count"] == 2 and history["meta"]["keep_days"] == 30
    newest, oldest = history["data"]
    assert set(newest) == {
        "operation", "time", "action", "user_id", "users", "subject", "base_url", "undoes", "status", "counts",
        "undone_by",
    }  # fmt: skip
    assert (newest["action"], newest["counts"]) == ("--create", {"created": 1})
    assert (oldest["action"], oldest["user_id"], oldest["counts"]) == ("--delete", user, {"deleted": 1})
    narrowed = memories_cli("--history", "--user-id", user, "--json").json()
    assert [entry["operation"] for entry in narrowed["data"]] == [oldest["operation"]]


# ------------------------------------------------------------------------- erasure


def test_an_erasure_leaves_no_file_that_holds_the_memory(agentos, memories_cli, user, journal):
    memory = agentos.seed(user, "my secret diagnosis", ["health"])
    memories_cli("--user-id", user, "--memory-id", memory["memory_id"], "--update", "my secret diagnosis, updated")
    keep = agentos.seed(user + "-keep", "unrelated", [])
    memories_cli("--user-id", user + "-keep", "--memory-id", keep["memory_id"], "--delete")
    assert any("my secret diagnosis" in entry.read_text() for entry in journal.glob("*.jsonl"))

    erased = memories_cli("--user-id", user, "--delete-all", "--yes", "--erase", "--json")
    assert erased.code == 0 and erased.json()["erased_copies"] >= 1, erased.stderr
    assert "operation" not in erased.json()
    assert held(agentos, user) == {}
    for entry in journal.rglob("*"):
        assert "diagnosis" not in entry.read_text() and user + '"' not in entry.read_text()
    assert any("unrelated" in entry.read_text() for entry in journal.glob("*.jsonl"))  # others' copies stay


def test_an_erasure_of_one_memory_says_so_and_keeps_no_copy(agentos, memories_cli, user, journal):
    memory = agentos.seed(user, "forget this one", [])
    result = memories_cli("--user-id", user, "--memory-id", memory["memory_id"], "--delete", "--erase")
    assert result.code == 0 and "erased: no copy kept" in result.stdout and "undo with" not in result.stdout
    assert not any("forget this one" in entry.read_text() for entry in journal.glob("*.jsonl"))


def test_an_erasure_of_a_memory_this_script_created_keeps_no_copy_of_it(memories_cli, user, journal):
    # A create's record holds no id (the server gives it): its result line names the id.
    created = memories_cli("--user-id", user, "--create", "takes insulin twice a day", "--json")
    assert created.code == 0, created.stderr
    result = memories_cli("--user-id", user, "--memory-id", created.json()["memory_id"], "--delete", "--erase")
    assert result.code == 0, result.stderr
    assert not any("insulin" in entry.read_text() for entry in journal.rglob("*") if entry.is_file())


# ------------------------------------------------------------ JWT with user isolation


# On the session's JWT server with user isolation (conftest.isolated), on SQLite alone: what
# these add to the undos above, which run on both databases, is the server's auth.
@ON_SQLITE_ALONE
def test_under_user_isolation_a_user_undoes_their_own_delete(isolated, journal):
    env = {"AGENTOS_MEMORY_JOURNAL": str(journal), "AGNO_ADMIN_TOKEN": mint("ann")}
    created = run_script("--base-url", isolated.url, "--create", "ann's fact", "--topics", "a", "--json", env=env)
    memory_id = created.json()["memory_id"]
    deleted = run_script("--base-url", isolated.url, "--memory-id", memory_id, "--delete", env=env)
    assert deleted.code == 0, deleted.stderr
    undone = run_script("--base-url", isolated.url, "--undo", "--json", env=env)
    assert undone.code == 0, undone.stderr
    # The server lets a user's token create only through POST: a new id, said so.
    (renamed,) = undone.json()["new_ids"]
    assert renamed["memory_id"] == memory_id
    restored = [m for m in isolated.memories("ann") if m["memory_id"] == renamed["new_memory_id"]]
    assert [(m["memory"], m["topics"]) for m in restored] == [("ann's fact", ["a"])]


@ON_SQLITE_ALONE
def test_under_user_isolation_another_users_operation_cannot_be_undone(isolated, journal):
    admin = {"AGENTOS_MEMORY_JOURNAL": str(journal), "AGNO_ADMIN_TOKEN": isolated.token}
    memory = isolated.seed("bea", "bea's fact")
    deleted = run_script(
        "--base-url", isolated.url, "--user-id", "bea", "--memory-id", memory["memory_id"], "--delete",
        env=admin,
    )  # fmt: skip
    assert deleted.code == 0, deleted.stderr
    other = dict(admin, AGNO_ADMIN_TOKEN=mint("cal"))
    refused = run_script("--base-url", isolated.url, "--undo", "--json", env=other)
    assert refused.code == 4 and refused.error()["type"] == "wrong_user"
    assert "--undo" not in refused.error()["hint"]  # a refused undo leaves no entry to take back
    assert len(run_script("--base-url", isolated.url, "--history", "--json", env=other).json()["data"]) == 1
    assert isolated.memories("bea") == []
    assert run_script("--base-url", isolated.url, "--undo", env=admin).code == 0
    assert [m["memory_id"] for m in isolated.memories("bea")] == [memory["memory_id"]]
