"""Changing one memory: --create (and the check that keeps one fact from being stored
twice), --update, --topics, --delete of one id or several, and writes racing each
other. On a real AgentOS, both backends.
"""

import re

import pytest

from conftest import start_script


# ------------------------------------------------------------------------- --create


def test_create_stores_content_and_cleaned_topics(agentos, cli, user):
    result = cli("--user-id", user, "--create", "Prefers dark mode", "--topics", " ui, ,preferences,ui ", "--json")
    assert result.code == 0, result.stderr
    created = result.json()
    assert re.fullmatch("[0-9a-f]{8}", created.pop("operation"))  # the journal's id, for --undo
    assert created.pop("created") is True  # not a duplicate of a memory stored already
    assert created["memory"] == "Prefers dark mode" and created["topics"] == ["ui", "preferences"]
    assert agentos.memories(user) == [created]


def test_create_human_output_shows_the_id(agentos, cli, user):
    result = cli("--user-id", user, "--create", "Has a cat")
    stored = agentos.memories(user)[0]
    assert result.code == 0 and stored["memory_id"] in result.stdout and "Has a cat" in result.stdout


# ------------------------------------------------------ --create without duplicates


def create(cli, user, content, *flags):
    result = cli("--user-id", user, "--create", content, "--json", *flags)
    assert result.code == 0, result.stderr
    return result.json()


def test_an_exact_duplicate_is_not_stored_and_the_answer_names_the_memory(cli, agentos, user):
    first = create(cli, user, "Tom prefers dark mode", "--topics", "ui")
    again = create(cli, user, "Tom prefers dark mode")
    assert again["created"] is False and again["memory_id"] == first["memory_id"] and "operation" not in again
    assert len(agentos.memories(user)) == 1
    human = cli("--user-id", user, "--create", "Tom prefers dark mode")
    assert human.stdout.startswith(f"already stored as {first['memory_id']}: nothing created")


def test_a_near_duplicate_is_not_stored(cli, agentos, user):
    first = create(cli, user, "Tom prefers dark mode")
    again = create(cli, user, "tom prefers dark mode too.")
    assert again["created"] is False and again["memory_id"] == first["memory_id"]
    assert [memory["memory"] for memory in agentos.memories(user)] == ["Tom prefers dark mode"]


def test_a_contradiction_is_stored_and_the_old_memory_named_as_one_it_may_replace(cli, agentos, user):
    dark = create(cli, user, "Tom prefers dark mode")
    light = create(cli, user, "Tom prefers light mode")
    assert light["created"] is True and [memory["memory_id"] for memory in light["similar"]] == [dark["memory_id"]]
    assert [(older["memory_id"], older["why"]) for older in light["may_replace"]] == [(dark["memory_id"], "value")]
    assert f"may replace {dark['memory_id']}" in light["hint"] and len(agentos.memories(user)) == 2


def test_allow_duplicate_stores_it_anyway(cli, agentos, user):
    create(cli, user, "Tom prefers dark mode")
    again = create(cli, user, "Tom prefers dark mode", "--allow-duplicate")
    assert again["created"] is True and len(agentos.memories(user)) == 2


def test_another_users_memory_is_no_duplicate(cli, agentos, user):
    create(cli, f"{user}-other", "Prefers dark mode")
    assert create(cli, user, "Prefers dark mode")["created"] is True


# ------------------------------------------------------------------------- --update


def test_update_without_topics_keeps_topics(agentos, cli, user):
    memory = agentos.seed(user, "Prefers dark mode", ["preferences", "ui"])
    result = cli("--user-id", user, "--memory-id", memory["memory_id"], "--update", "Prefers light mode", "--json")
    assert result.code == 0, result.stderr
    assert agentos.memories(user)[0]["topics"] == ["preferences", "ui"]
    assert agentos.memories(user)[0]["memory"] == "Prefers light mode"


def test_update_with_topics_replaces_them(agentos, cli, user):
    memory = agentos.seed(user, "Prefers dark mode", ["preferences"])
    cli("--user-id", user, "--memory-id", memory["memory_id"], "--update", "Prefers light mode", "--topics", "ui")
    assert agentos.memories(user)[0]["topics"] == ["ui"]


def test_update_shows_what_the_memory_held_before(cli, agentos, user):
    memory = agentos.seed(user, "Lives in Lisbon", ["home"])
    result = cli("--user-id", user, "--memory-id", memory["memory_id"], "--update", "Lives in Porto", "--json")
    assert result.json()["before"] == {"memory": "Lives in Lisbon", "topics": ["home"]}
    assert result.json()["memory"] == "Lives in Porto"
    human = cli("--user-id", user, "--memory-id", memory["memory_id"], "--topics", "home,city")
    assert "before:\n  Lives in Porto\n  topics: home" in human.stdout and "topics: home, city" in human.stdout


def test_update_unknown_id_creates_nothing(agentos, cli, user):
    # The server's PATCH would create this memory; the script must refuse.
    result = cli("--user-id", user, "--memory-id", "no-such-memory", "--update", "Injected", "--json")
    assert result.code == 1 and result.error()["type"] == "not_found"
    assert agentos.memories(user) == []


def test_update_another_users_memory_leaves_it_alone(agentos, cli, user):
    owner = user + "-alice"
    memory = agentos.seed(owner, "Alice's fact", ["private"])
    result = cli("--user-id", user, "--memory-id", memory["memory_id"], "--update", "Overwritten")
    assert result.code == 1 and "not found" in result.stderr
    assert agentos.memories(owner) == [memory]


def test_update_with_same_content_writes_nothing(agentos, cli, user):
    memory = agentos.seed(user, "Same", ["a"])
    result = cli("--user-id", user, "--memory-id", memory["memory_id"], "--update", "Same")
    assert result.code == 0 and "unchanged" in result.stdout
    assert agentos.memories(user) == [memory]


def test_update_warns_before_the_server_clears_the_agent(agentos, cli, user):
    memory_id = agentos.seed_from_agent(user, "from the agent", agent_id="support-agent")
    result = cli("--user-id", user, "--memory-id", memory_id, "--update", "edited by hand")
    assert result.code == 0
    assert "will clear agent_id 'support-agent' on 1 memory" in result.stderr


# ------------------------------------------------------------------------- --topics


def test_topics_alone_changes_only_the_topics(agentos, cli, user):
    memory = agentos.seed(user, "Prefers dark mode", ["preferences"])
    result = cli("--user-id", user, "--memory-id", memory["memory_id"], "--topics", "ui,theme")
    assert result.code == 0, result.stderr
    stored = agentos.memories(user)[0]
    assert stored["memory"] == "Prefers dark mode" and stored["topics"] == ["ui", "theme"]


def test_empty_topics_on_a_memory_clear_them(agentos, cli, user):
    memory = agentos.seed(user, "Tagged", ["a", "b"])
    result = cli("--user-id", user, "--memory-id", memory["memory_id"], "--topics", "")
    assert result.code == 0, result.stderr
    assert agentos.memories(user)[0]["topics"] == [] and agentos.memories(user)[0]["memory"] == "Tagged"


def test_topics_alone_cannot_change_another_users_memory(agentos, cli, user):
    owned = agentos.seed(user + "-alice", "alice's", ["private"])
    result = cli("--user-id", user, "--memory-id", owned["memory_id"], "--topics", "public")
    assert result.code == 1 and agentos.memories(user + "-alice") == [owned]


# ------------------------------------------------------------------------- --delete


def test_delete_removes_the_memory_and_prints_it(agentos, cli, user):
    memory = agentos.seed(user, "Old address")
    result = cli("--user-id", user, "--memory-id", memory["memory_id"], "--delete", "--json")
    assert result.code == 0, result.stderr
    deleted = result.json()
    assert re.fullmatch("[0-9a-f]{8}", deleted.pop("operation"))
    assert deleted == {"deleted": [memory], "count": 1, "not_found": [], "dry_run": False}
    assert agentos.memories(user) == []


def test_delete_human_output_names_what_went(agentos, cli, user):
    memory = agentos.seed(user, "Old address")
    result = cli("--user-id", user, "--memory-id", memory["memory_id"], "--delete")
    assert result.code == 0 and "deleted 1 memory" in result.stdout and "Old address" in result.stdout


def test_delete_unknown_id_is_not_found(cli, user):
    # The server answers 204 here; the script must not claim success.
    result = cli("--user-id", user, "--memory-id", "no-such-memory", "--delete")
    assert result.code == 1 and "not found" in result.stderr


def test_delete_another_users_memory_is_not_found_and_kept(agentos, cli, user):
    owner = user + "-alice"
    memory = agentos.seed(owner, "Alice's fact")
    result = cli("--user-id", user, "--memory-id", memory["memory_id"], "--delete")
    assert result.code == 1 and "not found" in result.stderr
    assert agentos.memories(owner) == [memory]


def test_delete_several_ids_reports_deleted_and_not_found(agentos, cli, user):
    keep = agentos.seed(user, "keep")
    first = agentos.seed(user, "first")
    second = agentos.seed(user, "second")
    someone_elses = agentos.seed(user + "-other", "not yours")
    result = cli(
        "--user-id",
        user,
        "--delete",
        "--json",
        "--memory-id",
        first["memory_id"],
        "--memory-id",
        second["memory_id"],
        "--memory-id",
        someone_elses["memory_id"],
        "--memory-id",
        "no-such-id",
    )
    assert result.code == 1
    body = result.json()
    assert sorted(m["memory"] for m in body["deleted"]) == ["first", "second"]
    assert sorted(body["not_found"]) == sorted([someone_elses["memory_id"], "no-such-id"])
    assert agentos.memories(user) == [keep]
    assert agentos.memories(user + "-other") == [someone_elses]


def test_delete_dry_run_deletes_nothing(agentos, cli, user):
    memory = agentos.seed(user, "stays")
    result = cli("--user-id", user, "--memory-id", memory["memory_id"], "--delete", "--dry-run", "--json")
    assert result.code == 0
    change = {"memory_id": memory["memory_id"], "user_id": user, "before": memory, "after": None}
    assert result.json() == {
        "deleted": [memory], "count": 1, "not_found": [], "dry_run": True, "changes": [change], "cleared": [],
    }  # fmt: skip
    assert agentos.memories(user) == [memory]


@pytest.mark.parametrize("memory_id", ["../health", "..", "a/b", "x?user_id=bob", "x#y", "%2e%2e", " space", ""])
def test_memory_ids_that_could_leave_the_memory_path_are_refused(agentos, cli, user, memory_id):
    result = cli("--user-id", user, "--memory-id", memory_id, "--delete", "--json")
    assert result.code == 2 and result.error()["type"] == "usage"
    assert result.stdout == ""


# ------------------------------------------------------------------- writes at once


def test_sixteen_processes_creating_at_once_make_sixteen_memories(agentos, user):
    creating = [start_script("--base-url", agentos.url, "--user-id", user, "--create", f"fact {n}") for n in range(16)]
    outcomes = [(process.wait(timeout=300), process.stderr.read()) for process in creating]
    assert [code for code, _ in outcomes] == [0] * 16, outcomes
    assert sorted(m["memory"] for m in agentos.memories(user)) == sorted(f"fact {n}" for n in range(16))


@pytest.mark.parametrize("round_number", range(3))
def test_an_update_racing_a_delete_never_reports_what_did_not_happen(agentos, user, round_number):
    memory = agentos.seed(user, "original")
    target = ["--base-url", agentos.url, "--user-id", user, "--memory-id", memory["memory_id"]]
    update = start_script(*target, "--update", "edited")
    delete = start_script(*target, "--delete")
    updated, deleted = update.wait(timeout=120) == 0, delete.wait(timeout=120) == 0
    assert {update.returncode, delete.returncode} <= {0, 1}
    stored = agentos.memories(user)
    if deleted and not updated:
        assert stored == []  # the delete won: the update saw no memory and said so
    if updated and not deleted:
        assert [m["memory"] for m in stored] == ["edited"]  # the delete saw it come back and said so
    if updated and deleted:
        assert stored == [] or [m["memory"] for m in stored] == ["edited"]
    assert updated or deleted, "one of them must have happened"
