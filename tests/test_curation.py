"""Curating sets of memories in one call: reading every user's at once, changing every
user's by a filter (--all-users), moving a user's memories to another (--move-to),
users by the age of their last update, and an export that counts what it wrote.

Each change is one operation of the write path: previewed by --dry-run, journaled, and
taken back whole by one --undo. The script runs as a user runs it, against real
AgentOS servers; tests that look at every user start a server of their own.
"""

import datetime
import json
import sys

import pytest

from conftest import ROOT, run_script

sys.path.insert(0, str(ROOT / "scripts"))


@pytest.fixture
def journal(tmp_path):
    return {"AGENTOS_MEMORY_JOURNAL": str(tmp_path / "journal")}


def run(server, *args, env=None):
    return run_script("--base-url", server.url, *args, env=env)


def held(server, user_id=None):
    """{memory_id: (user_id, memory, topics)} of what the server holds."""
    return {m["memory_id"]: (m["user_id"], m["memory"], m["topics"]) for m in server.memories(user_id)}


def sent_writes(server, since):
    return [line for line in server.requests()[since:] if line.startswith(("POST", "PATCH", "DELETE"))]


# ------------------------------------------------------------- every user's, read


def test_a_listing_without_user_id_lists_every_users_memories_and_counts_the_users(fresh_agentos):
    server = fresh_agentos()
    for user_id, memory in (("ken", "Lives in Lyon"), ("ken", "Drinks coffee black"), ("nadia", "Is vegan")):
        server.seed(user_id, memory)
    server.seed("anon-7f3a", "Prefers dark mode")

    answer = run(server, "--json")
    assert answer.code == 0, answer.stderr
    assert answer.json()["meta"]["total_count"] == 4 and answer.json()["meta"]["users"] == 3
    assert {memory["user_id"] for memory in answer.json()["data"]} == {"ken", "nadia", "anon-7f3a"}

    text = run(server, "--limit", "2")
    assert text.code == 0 and text.stdout.startswith("2 of 4 memories of 3 users"), text.stdout
    assert text.stdout.count("  user ") == 2  # each memory says whose it is


def test_a_filtered_listing_without_user_id_counts_the_users_it_found(fresh_agentos):
    server = fresh_agentos()
    server.seed("ken", "Lives in Lyon", topics=["home"])
    server.seed("nadia", "Lives in Nairobi", topics=["home"])
    server.seed("nadia", "Is vegan", topics=["food"])
    answer = run(server, "--topics", "home", "--json")
    assert answer.code == 0, answer.stderr
    assert answer.json()["meta"] == answer.json()["meta"] | {"total_count": 2, "users": 2}


def test_an_export_to_stdout_says_on_stderr_how_many_it_wrote(fresh_agentos):
    server = fresh_agentos()
    server.seed("ken", "Lives in Lyon")
    server.seed("nadia", "Is vegan")
    server.seed("nadia", "Avoids caffeine after noon")

    text = run(server, "--export", "-")
    assert text.code == 0 and len(text.stdout.splitlines()) == 3
    assert text.stderr == "exported 3 memories of 2 users\n"

    machine = run(server, "--export", "-", "--user-id", "nadia", "--json")
    assert machine.code == 0 and len(machine.stdout.splitlines()) == 2
    assert json.loads(machine.stderr) == {"exported": 2, "users": 1, "changed_underneath": 0}


def test_stats_until_lists_the_users_not_updated_since(fresh_agentos):
    from agno.db.schemas import UserMemory

    server = fresh_agentos()
    now = datetime.datetime.now(datetime.timezone.utc)
    ages = {"dormant": 400, "recent": 2, "mixed": 500}
    rows = [
        UserMemory(
            memory=f"{user_id} fact",
            memory_id=f"{user_id}-1",
            user_id=user_id,
            updated_at=int((now - datetime.timedelta(days=days)).timestamp()),
        )
        for user_id, days in ages.items()
    ]
    server.database().upsert_memories(rows, preserve_updated_at=True)
    server.seed("mixed", "a fact of today: mixed was updated lately")

    stale = run(server, "--stats", "--until", "365d", "--json")
    assert stale.code == 0, stale.stderr
    assert [row["user_id"] for row in stale.json()["data"]] == ["dormant"]
    assert "updated_before" in stale.json()["meta"]

    lately = run(server, "--stats", "--since", "7d", "--sort", "count", "--json")
    assert [row["user_id"] for row in lately.json()["data"]] == ["mixed", "recent"]

    text = run(server, "--stats", "--until", "365d")
    assert text.code == 0 and "1 of 1 user with memories, last updated before" in text.stdout, text.stdout


# ---------------------------------------------------------- every user's, changed


def test_delete_all_for_every_user_by_agent_deletes_that_agents_memories_alone(fresh_agentos, journal):
    server = fresh_agentos()
    bot = [
        server.seed_from_agent("ken", "Onboarded on Monday", agent_id="onboarding-bot"),
        server.seed_from_agent("nadia", "Onboarded on Friday", agent_id="onboarding-bot"),
    ]
    other = server.seed_from_agent("nadia", "Asked about refunds", agent_id="support-bot")
    server.seed("ken", "Lives in Lyon")
    before = held(server)

    refused = run(server, "--delete-all", "--all-users", "--agent-id", "onboarding-bot", env=journal)
    assert refused.code == 2 and "2 memories of every user" in refused.stderr and held(server) == before

    deleted = run(server, "--delete-all", "--all-users", "--agent-id", "onboarding-bot", "--yes", "--json", env=journal)
    assert deleted.code == 0, deleted.stderr
    assert sorted(memory["memory_id"] for memory in deleted.json()["deleted"]) == sorted(bot)
    assert held(server) == {key: value for key, value in before.items() if key not in bot}
    assert other in held(server)

    undone = run(server, "--undo", "--json", env=journal)
    assert undone.code == 0, undone.stderr
    assert held(server) == before  # ids, users, texts and topics (agent_id: the API cannot set it)


def test_delete_all_for_every_user_without_a_filter_is_refused_before_anything_is_sent(fresh_agentos, journal):
    server = fresh_agentos()
    server.seed("ken", "Lives in Lyon")
    asked = len(server.requests())
    result = run(server, "--delete-all", "--all-users", "--yes", env=journal)
    assert result.code == 2 and "needs a filter" in result.stderr and result.stderr.count("\n") == 1
    assert len(server.requests()) == asked and len(held(server)) == 1


@pytest.mark.parametrize(
    "action",
    [["--delete-all", "--topics", "x"], ["--add-topics", "x"], ["--dedupe"]],
    ids=["delete-all", "add", "dedupe"],
)
def test_a_change_names_its_user_or_says_all_users(agentos, user, action):
    both = run(agentos, "--user-id", user, "--all-users", *action, "--yes")
    assert both.code == 2 and "--all-users and --user-id" in both.stderr
    neither = run(agentos, *action, "--yes")
    assert neither.code == 2 and "--user-id is required" in neither.stderr and "--all-users" in neither.stderr


def test_add_topics_for_every_user_by_filter_is_one_operation_with_one_undo(fresh_agentos, journal):
    server = fresh_agentos()
    ken = server.seed("ken", "Loves spicy Sichuan food", topics=["food"])
    nadia = server.seed("nadia", "Has a peanut allergy", topics=["health", "food"])
    untouched = server.seed("nadia", "Lives in Nairobi", topics=["home"])
    before = held(server)

    tagged = run(server, "--add-topics", "diet", "--all-users", "--topics", "food", "--yes", "--json", env=journal)
    assert tagged.code == 0, tagged.stderr
    assert tagged.json()["changed"] == 2
    assert held(server)[ken["memory_id"]][2] == ["food", "diet"]
    assert held(server)[nadia["memory_id"]][2] == ["health", "food", "diet"]
    assert held(server)[untouched["memory_id"]] == before[untouched["memory_id"]]

    history = run(server, "--history", "--json", env=journal).json()["data"]
    assert len(history) == 1 and sorted(history[0]["users"]) == ["ken", "nadia"]
    assert run(server, "--undo", env=journal).code == 0
    assert held(server) == before


# ------------------------------------------------------------------------- moving


def test_a_move_copies_what_the_target_lacks_and_empties_the_source(agentos, user, journal):
    anon, kenji = f"{user}-anon", f"{user}-kenji"
    dark = agentos.seed(anon, "Prefers dark mode", topics=["ui"])
    agentos.seed(anon, "Drinks his coffee black", topics=["food", "morning"])
    agentos.seed(anon, "Plays chess on Sundays")
    kept = agentos.seed(kenji, "prefers dark mode.", topics=["preferences"])

    moved = run(agentos, "--user-id", anon, "--move-to", kenji, "--yes", "--json", env=journal)
    assert moved.code == 0, moved.stderr
    answer = moved.json()
    assert answer["moved"] == 2 and answer["already_held"] == [dark["memory_id"]]
    assert held(agentos, anon) == {}
    target = sorted((memory, topics) for _, memory, topics in held(agentos, kenji).values())
    assert target == [
        ("Drinks his coffee black", ["food", "morning"]),
        ("Plays chess on Sundays", []),
        ("prefers dark mode.", ["preferences"]),
    ]
    assert held(agentos, kenji)[kept["memory_id"]] == (kenji, "prefers dark mode.", ["preferences"])


def test_a_move_does_not_copy_a_fact_the_target_holds_in_other_words(agentos, user, journal):
    anon, kenji = f"{user}-anon", f"{user}-kenji"
    coffee = agentos.seed(anon, "Drinks his coffee black", topics=["food"])
    agentos.seed(anon, "Plays chess on Sundays")
    black = agentos.seed(kenji, "Takes his coffee without milk or sugar")
    before = held(agentos, anon), held(agentos, kenji)

    moved = run(agentos, "--user-id", anon, "--move-to", kenji, "--yes", "--json", env=journal)
    assert moved.code == 0, moved.stderr
    answer = moved.json()
    assert (answer["moved"], answer["already_held"], answer["by"]) == (1, [coffee["memory_id"]], "meaning")
    assert answer["held_as"] == {coffee["memory_id"]: black["memory_id"]}
    assert held(agentos, anon) == {}
    assert sorted(memory for _, memory, _ in held(agentos, kenji).values()) == [
        "Plays chess on Sundays",
        "Takes his coffee without milk or sugar",
    ]
    assert run(agentos, "--undo", env=journal).code == 0
    assert (held(agentos, anon), held(agentos, kenji)) == before


def test_a_move_by_words_or_without_the_model_copies_a_fact_held_in_other_words(agentos, user, journal, tmp_path):
    anon, kenji = f"{user}-anon", f"{user}-kenji"
    agentos.seed(anon, "Drinks his coffee black")
    agentos.seed(kenji, "Takes his coffee without milk or sugar")
    preview = run(agentos, "--user-id", anon, "--move-to", kenji, "--by", "words", "--dry-run", "--json", env=journal)
    assert preview.code == 0, preview.stderr
    assert (preview.json()["moved"], preview.json()["by"]) == (1, "words")

    no_model = journal | {"AGENTOS_MEMORY_MODEL": str(tmp_path / "no-model")}
    moved = run(agentos, "--user-id", anon, "--move-to", kenji, "--json", env=no_model)
    assert moved.code == 0, moved.stderr
    assert (moved.json()["moved"], moved.json()["by"]) == (1, "words")
    assert "judged the same fact by words only: the model cannot be loaded" in moved.stderr
    assert moved.stderr.count("\n") == 1
    assert len(held(agentos, kenji)) == 2


def test_a_move_past_the_limit_judges_by_words_unless_meaning_is_asked_for(
    agentos, user, journal, tmp_path, monkeypatch, capsys
):
    # MEANING_LIMIT is 10,000 memories not embedded yet, as --find's; the same edge, on two.
    import manage_memories

    anon, kenji = f"{user}-anon", f"{user}-kenji"
    agentos.seed(anon, "Drinks his coffee black")
    agentos.seed(kenji, "Takes his coffee without milk or sugar")
    monkeypatch.setattr(manage_memories, "MEANING_LIMIT", 1)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setenv("AGENTOS_MEMORY_JOURNAL", journal["AGENTOS_MEMORY_JOURNAL"])
    move = ["--base-url", agentos.url, "--user-id", anon, "--move-to", kenji, "--dry-run", "--json"]

    assert manage_memories.main(move) == 0
    said = capsys.readouterr()
    assert (json.loads(said.out)["moved"], json.loads(said.out)["by"]) == (1, "words")
    assert "2 memories to compare" in said.err and "--by meaning" in said.err
    assert manage_memories.main([*move, "--by", "meaning"]) == 0
    assert (json.loads(capsys.readouterr().out)["moved"]) == 0


def test_held_as_names_the_memory_that_now_holds_the_fact(agentos, user, journal):
    anon, kenji = f"{user}-anon", f"{user}-kenji"
    agentos.seed(anon, "Prefers dark mode")
    agentos.seed(anon, "prefers dark mode.")  # the same words: the target gets one copy
    agentos.seed(kenji, "Plays chess on Sundays")
    moved = run(agentos, "--user-id", anon, "--move-to", kenji, "--yes", "--json", env=journal)
    assert moved.code == 0, moved.stderr
    (copy,) = moved.json()["created"]
    assert list(moved.json()["held_as"].values()) == [copy["memory_id"]]  # not the original it was copied from
    assert copy["memory_id"] in held(agentos, kenji)


def test_a_move_by_meaning_past_the_memories_held_at_once_is_refused_and_unasked_judges_by_words(
    agentos, user, journal, monkeypatch, capsys
):
    import manage_memories

    anon, kenji = f"{user}-anon", f"{user}-kenji"
    agentos.seed(anon, "Drinks his coffee black")
    for fact in ("Takes his coffee without milk or sugar", "Lives in Lyon", "Plays the cello", "Owns a cat"):
        agentos.seed(kenji, fact)
    monkeypatch.setattr(manage_memories, "MEANING_USER_MAX", 3)  # 100,000; the same edge on four
    monkeypatch.setenv("AGENTOS_MEMORY_JOURNAL", journal["AGENTOS_MEMORY_JOURNAL"])
    move = ["--base-url", agentos.url, "--user-id", anon, "--move-to", kenji, "--dry-run", "--json"]

    assert manage_memories.main([*move, "--by", "meaning"]) == 1
    said = capsys.readouterr()
    assert json.loads(said.err)["error"]["type"] == "too_large" and said.out == ""
    assert manage_memories.main(move) == 0
    said = capsys.readouterr()
    assert json.loads(said.out)["by"] == "words" and "too many to compare" in said.err


def test_a_move_sends_its_bulk_deletes_each_a_number_of_ids_of_its_own_unlike_another_runs(
    agentos, user, journal, monkeypatch, capsys
):
    """As --delete-all's (test_scale): PostgreSQL comes to plan a repeated statement once for
    any ids, so no number repeats within a run, and the numbers are drawn at random, so
    that two runs differ. DELETE_BATCH_SIZE is 5,000; the same edge on 120 memories a
    move with a cap of 30 (full batches of 15 to 30: two runs alike by chance, 1 in 500,000)."""
    import manage_memories
    from proxy import GatedProxy
    from test_scale import fill

    monkeypatch.setattr(manage_memories, "DELETE_BATCH_SIZE", 30)
    monkeypatch.setenv("AGENTOS_MEMORY_JOURNAL", journal["AGENTOS_MEMORY_JOURNAL"])
    runs = []
    for run_number in range(2):
        anon = f"{user}-anon-{run_number}"
        fill(agentos, [(f"{anon}-{n:03d}", anon, f"fact {n} of {anon}") for n in range(120)])
        with GatedProxy(agentos.url) as proxy:
            move = ["--base-url", proxy.url, "--user-id", anon, "--move-to", f"{user}-kenji", "--yes", "--json"]
            assert manage_memories.main(move) == 0, capsys.readouterr().err
        sizes = [len(body["memory_ids"]) for body in proxy.deletes]
        full = sizes[:-1]  # the last takes what is left
        assert len(set(full)) == len(full) and max(full) <= 30 and sum(sizes) == 120, sizes
        assert held(agentos, anon) == {}
        runs.append(full)
    assert runs[0] != runs[1]


def test_undo_of_a_move_restores_both_users_ids_included(agentos, user, journal):
    anon, kenji = f"{user}-anon", f"{user}-kenji"
    agentos.seed(anon, "Prefers dark mode", topics=["ui"])
    agentos.seed(anon, "Plays chess on Sundays")
    agentos.seed(kenji, "prefers dark mode.")
    before = held(agentos, anon), held(agentos, kenji)

    assert run(agentos, "--user-id", anon, "--move-to", kenji, "--yes", env=journal).code == 0
    undone = run(agentos, "--undo", "--json", env=journal)
    assert undone.code == 0, undone.stderr
    assert (held(agentos, anon), held(agentos, kenji)) == before


def test_undo_of_a_move_says_which_copies_a_server_kept_after_answering_their_delete(agentos, user, journal):
    from hooks_proxy import WriteHookProxy

    anon, kenji = f"{user}-anon", f"{user}-kenji"
    for n in range(6):
        agentos.seed(anon, f"Fact {n} of the anonymous user")
    before = held(agentos, anon)
    pretending = []  # while it holds True, a DELETE is answered 204 and not sent on, as a server that keeps them

    def pretend(method, path, number):
        return (204, b"") if method == "DELETE" and pretending else None

    # The journal is kept per server address: every command goes through the one proxy.
    with WriteHookProxy(agentos.url, pretend) as proxy:
        assert (
            run_script("--base-url", proxy.url, "--user-id", anon, "--move-to", kenji, "--yes", env=journal).code == 0
        )
        moved = len(proxy.writes)
        pretending.append(True)
        kept = run_script("--base-url", proxy.url, "--undo", "--json", env=journal)
        deletes = [write for write in proxy.writes[moved:] if write.startswith("DELETE")]
        assert len(deletes) == 6, deletes  # each copy read right before its DELETE, as every undo write is
        assert kept.code == 1 and kept.error()["type"] == "incomplete", kept.stderr
        assert len(kept.json()["failed"]) == 6 and kept.json()["removed"] == 0
        assert "still holds it" in kept.json()["failed"][0]["error"]

        pretending.clear()
        again = run_script("--base-url", proxy.url, "--undo", "--json", env=journal)  # a re-run finishes it
    assert again.code == 0 and again.json()["removed"] == 6, again.stdout + again.stderr
    assert held(agentos, anon) == before and held(agentos, kenji) == {}


def two_originals_to_move(agentos, user):
    """(source, target): two memories of a new source user, for a move to undo. Their ids
    sort before every copy's, so the undo's first write is an original's PATCH."""
    anon, kenji = f"{user}-anon", f"{user}-kenji"
    agentos.put(f"0-{user}-a", anon, "Plays chess on Sundays")
    agentos.put(f"0-{user}-b", anon, "Drinks his coffee black")
    return anon, kenji


def test_an_undo_leaves_alone_a_copy_edited_while_it_ran_in_an_earlier_chunk(
    agentos, user, journal, monkeypatch, capsys
):
    """The undo writes chunk by chunk; a copy someone edits while an earlier chunk is
    written is a conflict, never deleted (a look taken once per chunk would miss it)."""
    import time

    import manage_memories
    from hooks_proxy import WriteHookProxy

    anon, kenji = two_originals_to_move(agentos, user)
    edited, undoing = [], []

    def edit_once(method, path, number):
        if undoing and method == "PATCH" and not edited:
            copy = max(held(agentos, kenji))  # the copy whose id sorts last: a later chunk
            agentos.put(copy, kenji, "Plays chess on Saturdays now", ["edited"])
            edited.append(copy)
            time.sleep(1.2)  # the undo's own PATCH lands in a later second
        return None

    with WriteHookProxy(agentos.url, edit_once) as proxy:
        move = ("--base-url", proxy.url, "--user-id", anon, "--move-to", kenji, "--yes", "--by", "words")
        assert run_script(*move, env=journal).code == 0
        undoing.append(True)
        monkeypatch.setattr(manage_memories, "UNDO_CHUNK", 1)
        monkeypatch.setenv("AGENTOS_MEMORY_JOURNAL", journal["AGENTOS_MEMORY_JOURNAL"])
        code = manage_memories.main(["--base-url", proxy.url, "--undo", "--json"])
    answer = json.loads(capsys.readouterr().out)
    assert edited and held(agentos, kenji)[edited[0]][1] == "Plays chess on Saturdays now"
    assert code == 1 and [conflict["memory_id"] for conflict in answer["conflicts"]] == edited


def test_an_undo_neither_counts_nor_journals_a_copy_someone_deleted_while_it_ran(agentos, user, journal):
    from hooks_proxy import WriteHookProxy

    anon, kenji = two_originals_to_move(agentos, user)
    gone, undoing = [], []

    def delete_once(method, path, number):
        if undoing and method == "PATCH" and not gone:
            copy = max(held(agentos, kenji))
            with agentos.http() as http:
                http.delete(f"/memories/{copy}", params={"user_id": kenji}).raise_for_status()
            gone.append(copy)
        return None

    with WriteHookProxy(agentos.url, delete_once) as proxy:
        move = ("--base-url", proxy.url, "--user-id", anon, "--move-to", kenji, "--yes", "--by", "words")
        assert run_script(*move, env=journal).code == 0
        undoing.append(True)
        undone = run_script("--base-url", proxy.url, "--undo", "--json", env=journal)
        assert undone.code == 0 and undone.json()["removed"] == 1, undone.stdout + undone.stderr
        # Undoing the undo brings back the originals' move, never the copy the other party deleted.
        again = run_script("--base-url", proxy.url, "--undo", undone.json()["operation"], "--json", env=journal)
        assert again.code in (0, 1), again.stderr
    assert gone[0] not in held(agentos, kenji)


def test_a_move_of_several_without_yes_or_with_dry_run_changes_nothing(agentos, user, journal):
    anon, kenji = f"{user}-anon", f"{user}-kenji"
    first = agentos.seed(anon, "Prefers dark mode")
    agentos.seed(anon, "Plays chess on Sundays")
    before, asked = held(agentos, anon), len(agentos.requests())

    refused = run(agentos, "--user-id", anon, "--move-to", kenji, env=journal)
    assert refused.code == 2 and "would move up to 2 memories" in refused.stderr

    preview = run(agentos, "--user-id", anon, "--move-to", kenji, "--dry-run", "--json", env=journal)
    assert preview.code == 0, preview.stderr
    changes = preview.json()["changes"]
    assert sorted((change["before"] is None, change["after"] is None) for change in changes) == [
        (False, True),
        (False, True),
        (True, False),
        (True, False),
    ]
    assert {change["after"]["user_id"] for change in changes if change["after"]} == {kenji}
    assert sent_writes(agentos, asked) == [] and held(agentos, anon) == before

    one = run(agentos, "--user-id", anon, "--memory-id", first["memory_id"], "--move-to", kenji, env=journal)
    assert one.code == 0, one.stderr  # one memory named by id needs no --yes
    assert [memory for _, memory, _ in held(agentos, kenji).values()] == ["Prefers dark mode"]


def test_a_move_to_the_same_user_is_a_usage_error(agentos, user):
    agentos.seed(user, "Prefers dark mode")
    result = run(agentos, "--user-id", user, "--move-to", user, "--yes")
    assert result.code == 2 and "belong to already" in result.stderr


# -------------------------------------------------------------- several users at once


def test_a_repeated_user_id_reads_those_users_alone(fresh_agentos):
    server = fresh_agentos()
    server.seed("ken", "Lives in Lyon")
    server.seed("nadia", "Is vegan")
    server.seed("nadia", "Is vegan.")
    server.seed("omar", "Lives in Cairo")
    both = ("--user-id", "ken", "--user-id", "nadia")

    listing = run(server, *both, "--json")
    assert listing.code == 0, listing.stderr
    assert sorted(m["user_id"] for m in listing.json()["data"]) == ["ken", "nadia", "nadia"]
    assert listing.json()["meta"] | {"total_count": 3, "users": 2} == listing.json()["meta"]

    exported = run(server, *both, "--export", "-")
    assert exported.code == 0 and exported.stderr == "exported 3 memories of 2 users\n"

    found = run(server, *both, "--find", "where does he live", "--json")
    assert found.code == 0 and found.json()["meta"]["searched"] == 3  # ken's and nadia's, not omar's
    assert {m["user_id"] for m in found.json()["data"]} <= {"ken", "nadia"}

    duplicates = run(server, *both, "--duplicates", "--json")
    assert duplicates.code == 0 and [group["user_id"] for group in duplicates.json()["data"]] == ["nadia"]


def test_a_repeated_user_id_is_refused_by_a_change(agentos, user):
    result = run(agentos, "--user-id", user, "--user-id", user + "-2", "--create", "x")
    assert result.code == 2 and "take several --user-id" in result.stderr
