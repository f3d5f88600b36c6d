"""Work on many memories at once: --delete-all, --export and --import (backups,
restores, conflicts, what each line changes, progress), and --duplicates and --dedupe.
On a real AgentOS, both backends.
"""

import datetime
import json
import sys
import time

import pytest

from conftest import ROOT, run_script
from duplicate_set import DIFFERENT_FACTS, SAME_FACT, SAME_FACT_MISSED

sys.path.insert(0, str(ROOT / "scripts"))
import manage_memories  # noqa: E402


# --------------------------------------------------------------------- --delete-all


def test_delete_all_without_yes_deletes_nothing(agentos, cli, user):
    for number in range(3):
        agentos.seed(user, f"fact {number}")
    result = cli("--user-id", user, "--delete-all")
    assert result.code == 2 and "would delete 3 memories" in result.stderr and "--yes" in result.stderr
    assert len(agentos.memories(user)) == 3


def test_delete_all_dry_run_lists_what_would_go(agentos, cli, user):
    agentos.seed(user, "scratch note", ["scratch"])
    agentos.seed(user, "keeper", ["keep"])
    result = cli("--user-id", user, "--delete-all", "--topics", "scratch", "--dry-run", "--json")
    assert result.code == 0 and result.json()["count"] == 1
    assert [m["memory"] for m in result.json()["deleted"]] == ["scratch note"] and result.json()["dry_run"]
    assert len(agentos.memories(user)) == 2


def test_delete_all_with_yes_deletes_only_matching_memories_of_that_user(agentos, cli, user):
    for number in range(30):
        agentos.seed(user, f"scratch {number}", ["scratch"])
    agentos.seed(user, "keeper", ["keep"])
    other = agentos.seed(user + "-other", "scratch of someone else", ["scratch"])
    result = cli("--user-id", user, "--delete-all", "--topics", "scratch", "--yes", "--json")
    assert result.code == 0, result.stderr
    assert result.json()["count"] == 30
    assert [m["memory"] for m in agentos.memories(user)] == ["keeper"]
    assert agentos.memories(user + "-other") == [other]


def test_delete_all_with_nothing_matching_says_nothing_was_deleted(cli, user):
    result = cli("--user-id", user, "--delete-all", "--yes")
    assert result.code == 0 and result.stdout.splitlines()[0] == f"deleted 0 memories of user {user}"
    body = cli("--user-id", user, "--delete-all", "--json").json()
    assert {key: body[key] for key in ("deleted", "count", "not_found", "dry_run")} == {
        "deleted": [],
        "count": 0,
        "not_found": [],
        "dry_run": False,
    }


def test_delete_all_honours_search(agentos, cli, user):
    agentos.seed(user, "temporary thing")
    agentos.seed(user, "permanent thing")
    assert cli("--user-id", user, "--delete-all", "--search", "temporary", "--yes").code == 0
    assert [m["memory"] for m in agentos.memories(user)] == ["permanent thing"]


def test_delete_all_of_one_user_leaves_other_users_alone(agentos, cli, user):
    other = agentos.seed(user + "-other", "theirs")
    agentos.seed(user, "mine")
    assert cli("--user-id", user, "--delete-all", "--yes").code == 0
    assert agentos.memories(user) == [] and agentos.memories(user + "-other") == [other]


# ------------------------------------------------------------------------- --export


def test_export_writes_every_field_of_every_memory(agentos, cli, user, tmp_path):
    seeded = [agentos.seed(user, f"fact {number}", ["t"]) for number in range(3)]
    target = tmp_path / "out.jsonl"
    result = cli("--user-id", user, "--export", target)
    assert result.code == 0 and "exported 3 memories" in result.stdout
    lines = [json.loads(line) for line in target.read_text().splitlines()]
    assert sorted(lines, key=lambda m: m["memory_id"]) == sorted(seeded, key=lambda m: m["memory_id"])
    assert [path.name for path in tmp_path.iterdir()] == ["out.jsonl"]  # no temporary left behind


def test_export_to_stdout(agentos, cli, user):
    agentos.seed(user, "to stdout")
    result = cli("--user-id", user, "--export", "-")
    assert result.code == 0
    assert [json.loads(line)["memory"] for line in result.stdout.splitlines()] == ["to stdout"]


def test_export_json_summary(agentos, cli, user, tmp_path):
    agentos.seed(user, "x")
    result = cli("--user-id", user, "--export", tmp_path / "x.jsonl", "--json")
    assert result.json() == {
        "exported": 1,
        "users": 1,
        "per_user": {user: 1},
        "file": str(tmp_path / "x.jsonl"),
        "changed_underneath": 0,
    }


def test_export_honours_filters(agentos, cli, user):
    agentos.seed(user, "tea", ["drinks"])
    agentos.seed(user, "coffee", ["drinks"])
    agentos.seed(user, "cats", ["pets"])
    result = cli("--user-id", user, "--export", "-", "--topics", "drinks", "--search", "tea")
    assert [json.loads(line)["memory"] for line in result.stdout.splitlines()] == ["tea"]


def test_export_of_one_user_holds_only_that_users_memories(agentos, cli, user):
    agentos.seed(user, "mine")
    agentos.seed(user + "-other", "theirs")
    lines = cli("--user-id", user, "--export", "-").stdout.splitlines()
    assert [json.loads(line)["memory"] for line in lines] == ["mine"]


def test_export_to_a_missing_folder_is_exit_2(cli, user, tmp_path):
    result = cli("--user-id", user, "--export", tmp_path / "missing" / "x.jsonl")
    assert result.code == 2 and "folder" in result.stderr


# ------------------------------------------------------------------------- --import


def test_export_then_import_into_an_empty_server_reproduces_every_memory(fresh_agentos, tmp_path):
    source, target = fresh_agentos(), fresh_agentos()
    for number in range(120):
        source.seed(f"user-{number % 4}", f"fact {number}", [f"topic-{number % 3}", "shared"])
    backup = tmp_path / "backup.jsonl"
    exported = run_script("--base-url", source.url, "--export", backup)
    assert exported.code == 0 and "exported 120 memories" in exported.stdout

    imported = run_script("--base-url", target.url, "--import", backup, "--json")
    assert imported.code == 0, imported.stderr
    assert imported.json()["created"] == 120

    def essence(server):
        return sorted((m["memory_id"], m["user_id"], m["memory"], tuple(m["topics"])) for m in server.memories())

    assert essence(target) == essence(source)

    again = run_script("--base-url", target.url, "--import", backup, "--json")
    assert again.code == 0
    assert again.json() | {"unchanged": 120} == again.json() and again.json()["created"] == 0
    assert essence(target) == essence(source)


def test_export_and_import_count_users_and_memories_per_user(fresh_agentos, user, tmp_path):
    server = fresh_agentos()
    for name, count in (("ann", 2), ("bo", 3)):
        for number in range(count):
            server.seed(f"{user}-{name}", f"fact {number}")
    out = tmp_path / "all.jsonl"
    exported = run_script("--base-url", server.url, "--export", out, "--json").json()
    assert exported["users"] == 2 and exported["per_user"] == {f"{user}-ann": 2, f"{user}-bo": 3}
    human = run_script("--base-url", server.url, "--export", out)
    assert human.stdout.startswith("exported 5 memories of 2 users to ")
    imported = run_script("--base-url", server.url, "--import", out, "--json").json()
    assert imported["users"] == 2 and imported["per_user"] == {f"{user}-ann": 2, f"{user}-bo": 3}
    assert "(5 memories of 2 users)" in run_script("--base-url", server.url, "--import", out).stdout


def test_import_updates_changed_memories(agentos, user, tmp_path):
    memory = agentos.seed(user, "old text", ["t"])
    backup = tmp_path / "in.jsonl"
    backup.write_text(json.dumps({**memory, "memory": "new text"}) + "\n")
    result = run_script("--base-url", agentos.url, "--import", backup, "--json")
    assert result.code == 0 and result.json()["updated"] == 1
    assert agentos.memories(user)[0]["memory"] == "new text"


def test_a_bad_line_aborts_the_import_before_any_write(agentos, user, tmp_path):
    backup = tmp_path / "in.jsonl"
    backup.write_text(
        json.dumps({"memory": "good", "user_id": user})
        + "\n"
        + "{not json\n"
        + json.dumps({"memory": "", "user_id": user})
        + "\n"
        + json.dumps({"memory": "no user"})
        + "\n"
    )
    result = run_script("--base-url", agentos.url, "--import", backup)
    assert result.code == 2
    for line in ("line 2", "line 3", "line 4"):
        assert line in result.stderr
    assert agentos.memories(user) == []


def test_import_leaves_another_users_memory_alone_and_reports_the_conflict(agentos, user, tmp_path):
    owned = agentos.seed(user + "-alice", "alice's")
    backup = tmp_path / "in.jsonl"
    backup.write_text(
        json.dumps({"memory_id": owned["memory_id"], "memory": "hijack", "user_id": user})
        + "\n"
        + json.dumps({"memory": "fine", "user_id": user})
        + "\n"
    )
    result = run_script("--base-url", agentos.url, "--import", backup, "--json")
    assert result.code == 1
    summary = result.json()
    assert summary["created"] == 1 and [c["memory_id"] for c in summary["conflicts"]] == [owned["memory_id"]]
    assert agentos.memories(user + "-alice") == [owned]
    assert result.error()["type"] == "conflict"


def test_import_with_a_user_cannot_write_lines_of_another_user(agentos, user, tmp_path):
    backup = tmp_path / "in.jsonl"
    lines = [{"memory": "x", "user_id": user + "-other"}, {"memory": "mine", "user_id": user}]
    backup.write_text("".join(json.dumps(line) + "\n" for line in lines))
    result = run_script("--base-url", agentos.url, "--import", backup, "--user-id", user, "--json")
    assert result.code == 0 and result.json()["skipped"] == 1 and result.json()["created"] == 1
    assert agentos.memories(user + "-other") == []
    assert [m["memory"] for m in agentos.memories(user)] == ["mine"]


def test_restore_one_user_from_a_backup_of_everyone(agentos, user, tmp_path):
    tom, other = f"{user}-tom", f"{user}-other"
    lost = agentos.seed(tom, "Likes jazz")
    agentos.seed(other, "someone else's")
    backup = tmp_path / "all.jsonl"
    backup.write_text("".join(json.dumps(line) + "\n" for line in agentos.memories(tom) + agentos.memories(other)))
    assert run_script("--base-url", agentos.url, "--user-id", tom, "--delete-all", "--yes").code == 0
    result = run_script("--base-url", agentos.url, "--import", backup, "--user-id", tom, "--json")
    assert result.code == 0, result.stderr
    summary = result.json()
    assert summary["created"] == 1 and summary["skipped"] == 1
    assert [change["memory_id"] for change in summary["lines"]] == [lost["memory_id"]]
    assert agentos.memories(tom) == [dict(lost, updated_at=agentos.memories(tom)[0]["updated_at"])]
    human = run_script("--base-url", agentos.url, "--import", backup, "--user-id", tom)
    assert "skipped 1 line of users other than" in human.stdout


def test_import_sets_apart_each_line_that_differs_from_the_server_in_one_field(agentos, user, tmp_path):
    """Lines the server holds exactly are counted without being read again; each line
    that differs in one field (text, topics order, owner) or is missing is decided on
    its own line number, between unchanged ones."""
    same, text, order, owner = (agentos.seed(user, f"fact {n}", topics=["a", "b"]) for n in range(4))
    other = agentos.seed(user + "-other", "someone else's")
    lines = [
        dict(same),
        dict(text, memory="fact 1, edited"),
        dict(order, topics=["b", "a"]),
        dict(other, user_id=user),
        dict(same, memory_id="new-" + same["memory_id"], memory="a new fact"),
        dict(owner),
    ]
    backup = tmp_path / "mixed.jsonl"
    backup.write_text("".join(json.dumps(line) + "\n" for line in lines))
    result = run_script("--base-url", agentos.url, "--import", backup, "--dry-run", "--json")
    summary = result.json()
    assert (summary["created"], summary["updated"], summary["unchanged"]) == (1, 2, 2)
    assert [(c["line"], c["memory_id"]) for c in summary["conflicts"]] == [(4, other["memory_id"])]
    assert [(c["line"], c["action"], c["fields"]) for c in summary["lines"]] == [
        (2, "update", ["memory"]),
        (3, "update", ["topics"]),
        (5, "create", ["memory", "topics"]),
    ]


def test_hand_written_lines_take_the_user_from_the_flag_and_import_once(agentos, user, tmp_path):
    backup = tmp_path / "notes.jsonl"
    backup.write_text('{"memory": "Prefers tea", "topics": ["drinks"]}\n{"memory": "Has a dog"}\n')
    first = run_script("--base-url", agentos.url, "--import", backup, "--user-id", user, "--json")
    second = run_script("--base-url", agentos.url, "--import", backup, "--user-id", user, "--json")
    assert first.json()["created"] == 2 and second.json()["unchanged"] == 2 and second.json()["created"] == 0
    assert sorted(m["memory"] for m in agentos.memories(user)) == ["Has a dog", "Prefers tea"]


def test_import_dry_run_writes_nothing(agentos, user, tmp_path):
    backup = tmp_path / "in.jsonl"
    backup.write_text(json.dumps({"memory": "x", "user_id": user}) + "\n")
    result = run_script("--base-url", agentos.url, "--import", backup, "--dry-run")
    assert result.code == 0 and "would import" in result.stdout and "1 created" in result.stdout
    assert agentos.memories(user) == []


def test_import_dry_run_lists_each_change_and_flags_a_newer_server_copy(agentos, user, tmp_path):
    memory = agentos.seed(user, "Prefers tea", ["drinks"])
    backup = tmp_path / "backup.jsonl"
    backup.write_text(json.dumps(memory) + "\n" + json.dumps({"memory": "Plays chess", "user_id": user}) + "\n")
    time.sleep(1.1)  # the server stores seconds
    agentos.put(memory["memory_id"], user, "Prefers coffee", ["drinks"])  # edited after the backup
    result = run_script("--base-url", agentos.url, "--import", backup, "--user-id", user, "--dry-run", "--json")
    assert result.code == 0, result.stderr
    update, create = result.json()["lines"]
    assert update["action"] == "update" and update["memory_id"] == memory["memory_id"]
    assert update["fields"] == ["memory"] and update["server_newer"] is True
    assert update["before"]["memory"] == "Prefers coffee" and update["after"]["memory"] == "Prefers tea"
    assert create["action"] == "create" and create["after"]["memory"] == "Plays chess"
    human = run_script("--base-url", agentos.url, "--import", backup, "--user-id", user, "--dry-run")
    assert f"update {memory['memory_id']} (line 1): memory 'Prefers coffee' -> 'Prefers tea'" in human.stdout
    assert "this would undo a later edit" in human.stdout
    assert [m["memory"] for m in agentos.memories(user)] == ["Prefers coffee"]


def test_import_from_stdin_with_concurrency(agentos, user):
    lines = "".join(json.dumps({"memory": f"fact {n}", "user_id": user}) + "\n" for n in range(40))
    result = run_script("--base-url", agentos.url, "--import", "-", "--concurrency", "3", input=lines)
    assert result.code == 0 and "40 created" in result.stdout
    assert len(agentos.memories(user)) == 40


def test_import_of_a_missing_file_is_exit_2(agentos):
    result = run_script("--base-url", agentos.url, "--import", "/nonexistent/file.jsonl")
    assert result.code == 2 and "not found" in result.stderr


def test_import_accepts_a_file_saved_with_a_byte_order_mark(agentos, user, tmp_path):
    backup = tmp_path / "notes.jsonl"
    backup.write_bytes(b"\xef\xbb\xbf" + json.dumps({"memory": "from an editor", "user_id": user}).encode() + b"\n")
    result = run_script("--base-url", agentos.url, "--import", backup)
    assert result.code == 0, result.stderr
    assert [m["memory"] for m in agentos.memories(user)] == ["from an editor"]


def test_import_of_a_file_that_is_not_utf8_is_exit_2(agentos, tmp_path):
    backup = tmp_path / "latin1.jsonl"
    backup.write_bytes(b'{"memory": "caf\xe9", "user_id": "alice"}\n')
    result = run_script("--base-url", agentos.url, "--import", backup)
    assert result.code == 2 and "not UTF-8" in result.stderr and result.stderr.count("\n") == 1


# --------------------------------------------------------- concurrency and progress


@pytest.mark.parametrize("value", ["0", "65"])
def test_concurrency_out_of_range_is_refused(agentos, value, tmp_path):
    result = run_script("--base-url", agentos.url, "--export", tmp_path / "x", "--concurrency", value)
    assert result.code == 2 and "--concurrency" in result.stderr


def test_a_progress_bar_shows_on_a_terminal_and_nowhere_else(agentos, user, tmp_path):
    import os
    import pty
    import subprocess
    import sys

    from conftest import CLEAN_ENV, SCRIPT

    backup = tmp_path / "in.jsonl"
    backup.write_text("".join(json.dumps({"memory": f"fact {n}", "user_id": user}) + "\n" for n in range(200)))
    command = [sys.executable, str(SCRIPT), "--base-url", agentos.url, "--import", str(backup)]
    controller, terminal = pty.openpty()
    process = subprocess.Popen(
        command, env=dict(CLEAN_ENV, TERM="xterm", COLUMNS="100"), stdout=subprocess.PIPE, stderr=terminal, text=True
    )
    os.close(terminal)
    seen = b""
    while True:
        try:
            chunk = os.read(controller, 4096)
        except OSError:  # the terminal closed with the process
            break
        if not chunk:
            break
        seen += chunk
    stdout = process.communicate(timeout=60)[0]
    os.close(controller)
    assert process.returncode == 0 and "200 created" in stdout
    assert b"importing" in seen
    assert "importing" not in run_script("--base-url", agentos.url, "--import", backup).stderr


# ---------------------------------------------------------- what counts as one fact


def test_the_duplicate_set_finds_every_same_fact_pair_and_merges_no_different_facts():
    found = [pair for pair in SAME_FACT if manage_memories.fact_key(pair[0]) == manage_memories.fact_key(pair[1])]
    merged = [
        pair for pair in DIFFERENT_FACTS if manage_memories.fact_key(pair[0]) == manage_memories.fact_key(pair[1])
    ]
    missed = [
        pair for pair in SAME_FACT_MISSED if manage_memories.fact_key(pair[0]) == manage_memories.fact_key(pair[1])
    ]
    print(f"\nsame fact: {len(found)} of {len(SAME_FACT)} found; different facts merged: {len(merged)}")
    assert found == SAME_FACT and merged == [] and missed == []


# ----------------------------------------------------------- --duplicates, --dedupe


def seed_with_duplicates(server, user):
    """Three facts stated twice or three times, with ids that fall far apart in memory_id
    order (so a walk in small pages meets a group's members on different pages), among
    fillers; updated_at set, so the rule's choice is known."""
    from agno.db.schemas import UserMemory

    base = int(datetime.datetime(2026, 11, 1, tzinfo=datetime.timezone.utc).timestamp())
    rows = [
        ("a-01", "Tom prefers dark mode", ["ui"], 1),
        ("z-01", "tom prefers dark mode too", ["ui", "preferences"], 2),  # most topics: kept
        ("m-01", "Lives in Berlin", [], 3),
        ("y-01", "Lives in Berlin.", [], 5),  # newest of equal topics: kept
        ("b-01", "lives in berlin", ["home"], 4),  # ...unless one has more topics: this one
        ("c-01", "Tom prefers light mode", [], 6),  # a different fact
    ] + [(f"f-{number:03d}", f"Filler fact number {number}", [], 0) for number in range(60)]
    server.database().upsert_memories(
        [
            UserMemory(
                memory=text, memory_id=f"{user}-{key}", user_id=user, topics=topics, updated_at=base + hours * 3600
            )
            for key, text, topics, hours in rows
        ],
        preserve_updated_at=True,
    )


def test_duplicates_lists_groups_across_pages_with_the_memory_kept_by_the_rule(fresh_agentos, user):
    from proxy import GatedProxy

    server = fresh_agentos()
    seed_with_duplicates(server, user)
    with GatedProxy(server.url, cap=10) as proxy:
        body = run_script("--base-url", proxy.url, "--user-id", user, "--duplicates", "--json").json()
        assert proxy.pages >= 5
    groups = {group["keep"]["memory_id"]: group for group in body["data"]}
    assert set(groups) == {f"{user}-z-01", f"{user}-b-01"}
    dark, berlin = groups[f"{user}-z-01"], groups[f"{user}-b-01"]
    assert [memory["memory_id"] for memory in dark["remove"]] == [f"{user}-a-01"]
    assert dark["topics"] == ["ui", "preferences"]
    assert [memory["memory_id"] for memory in berlin["remove"]] == [f"{user}-y-01", f"{user}-m-01"]
    assert [memory["exact"] for memory in berlin["remove"]] == [False, True]
    assert body["meta"] | {"rule": None} == {
        "user_id": user,
        "searched": 66,
        "groups": 2,
        "duplicates": 3,
        "by": "words",  # the judgement that ran: the same words, unless --by meaning
        "rule": None,
    }


def test_dedupe_dry_run_changes_nothing_and_yes_does_exactly_what_was_listed(fresh_agentos, user):
    server = fresh_agentos()
    seed_with_duplicates(server, user)
    before = {memory["memory_id"]: memory for memory in server.memories(user)}
    dry = run_script("--base-url", server.url, "--user-id", user, "--dedupe", "--dry-run", "--json").json()
    assert {memory["memory_id"]: memory for memory in server.memories(user)} == before
    refused = run_script("--base-url", server.url, "--user-id", user, "--dedupe")
    assert refused.code == 2 and "would delete 3 duplicates in 2 groups" in refused.stderr
    done = run_script("--base-url", server.url, "--user-id", user, "--dedupe", "--yes", "--json").json()
    assert done["data"] == dry["data"] and done["dry_run"] is False
    listed = {memory["memory_id"] for group in dry["data"] for memory in group["remove"]}
    after = {memory["memory_id"]: memory for memory in server.memories(user)}
    assert set(after) == set(before) - listed
    assert after[f"{user}-b-01"]["topics"] == ["home"]  # nothing to merge: the others had none
    assert after[f"{user}-z-01"]["topics"] == ["ui", "preferences"]
    undone = run_script("--base-url", server.url, "--undo", "--json")
    assert undone.code == 0 and set(memory["memory_id"] for memory in server.memories(user)) == set(before)


def test_dedupe_merges_the_others_topics_onto_the_memory_kept(fresh_agentos, user):
    server = fresh_agentos()
    server.put(f"{user}-1", user, "Likes green tea", ["drinks"])
    server.put(f"{user}-2", user, "likes green tea", ["food", "drinks"])
    done = run_script("--base-url", server.url, "--user-id", user, "--dedupe", "--yes", "--json")
    assert done.code == 0, done.stderr
    (kept,) = server.memories(user)
    assert kept["memory_id"] == f"{user}-2" and kept["topics"] == ["food", "drinks"]


def test_duplicates_of_every_user_are_grouped_per_user(fresh_agentos, user):
    server = fresh_agentos()
    for name in ("ann", "bo"):
        server.seed(f"{user}-{name}", "Prefers tea")
    server.seed(f"{user}-bo", "prefers tea")
    body = run_script("--base-url", server.url, "--duplicates", "--json").json()
    assert [group["user_id"] for group in body["data"]] == [f"{user}-bo"] and body["meta"]["user_id"] is None
