"""Filters, stats, bulk delete, export and import (issue: beyond the seed)."""

import json

import pytest

from conftest import run_script


def memories_of(result):
    return sorted(memory["memory"] for memory in result.json()["data"])


# ------------------------------------------------------------------- list filters


def test_topics_filter_means_all_of_them(agentos, cli, user):
    # Sent as a list, the server would read only 'a' and return 'only a' too.
    agentos.seed(user, "only a", ["a"])
    agentos.seed(user, "a and b", ["a", "b"])
    agentos.seed(user, "only b", ["b"])
    assert memories_of(cli("--user-id", user, "--topics", "a,b", "--json")) == ["a and b"]
    assert memories_of(cli("--user-id", user, "--topics", "b", "--json")) == ["a and b", "only b"]


def test_agent_and_team_filters(agentos, cli, user):
    agentos.seed_from_agent(user, "from the agent", agent_id="support-agent")
    agentos.seed_from_agent(user, "from the team", team_id="care-team")
    agentos.seed(user, "by hand")
    assert memories_of(cli("--user-id", user, "--agent-id", "support-agent", "--json")) == ["from the agent"]
    assert memories_of(cli("--user-id", user, "--team-id", "care-team", "--json")) == ["from the team"]
    assert "agent support-agent" in cli("--user-id", user, "--agent-id", "support-agent").stdout


def test_sort_and_order(agentos, cli, user):
    import time

    agentos.seed(user, "first")
    time.sleep(1.1)  # the server stores seconds
    second = agentos.seed(user, "second")
    time.sleep(1.1)
    agentos.put(second["memory_id"], user, "second, edited")  # newest update, older creation
    by_update = [m["memory"] for m in cli("--user-id", user, "--json").json()["data"]]
    by_creation = [
        m["memory"] for m in cli("--user-id", user, "--sort", "created_at", "--order", "asc", "--json").json()["data"]
    ]
    assert by_update == ["second, edited", "first"]
    assert by_creation == ["first", "second, edited"]


def test_unknown_sort_field_is_refused(cli, user):
    result = cli("--user-id", user, "--sort", "memory")
    assert result.code == 2 and "invalid choice" in result.stderr


def test_update_warns_when_the_server_clears_the_agent(agentos, cli, user):
    memory_id = agentos.seed_from_agent(user, "from the agent", agent_id="support-agent")
    result = cli("--user-id", user, "--memory-id", memory_id, "--update", "edited by hand")
    assert result.code == 0
    assert "cleared agent_id" in result.stderr


def test_db_id_and_table_pass_through(agentos, cli, user):
    agentos.seed(user, "in the dev db")
    result = cli("--user-id", user, "--db-id", "dev", "--table", "agno_memories", "--json")
    assert result.code == 0 and memories_of(result) == ["in the dev db"]


def test_unknown_db_id_is_a_clear_error(cli, user):
    result = cli("--user-id", user, "--db-id", "no-such-db")
    assert result.code == 1 and "no-such-db" in result.stderr and result.stderr.count("\n") == 1


# -------------------------------------------------------------------------- stats


def test_stats_for_all_users_and_one(fresh_agentos):
    server = fresh_agentos()
    for number in range(3):
        server.seed("alice", f"a{number}")
    server.seed("bob", "b")
    everyone = run_script("--base-url", server.url, "--stats", "--json")
    assert everyone.code == 0
    counts = {row["user_id"]: row["total_memories"] for row in everyone.json()["data"]}
    assert counts == {"alice": 3, "bob": 1} and everyone.json()["meta"]["total_count"] == 2
    bob = run_script("--base-url", server.url, "--stats", "--user-id", "bob")
    assert "bob" in bob.stdout and "alice" not in bob.stdout
    paged = run_script("--base-url", server.url, "--stats", "--limit", "1")
    assert paged.stdout.startswith("1 of 2 users") and "--page 2" in paged.stdout
    assert len(run_script("--base-url", server.url, "--stats", "--all", "--json").json()["data"]) == 2


# -------------------------------------------------------------------- bulk delete


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
    assert result.json() == {"deleted": [memory], "count": 1, "not_found": [], "dry_run": True}
    assert agentos.memories(user) == [memory]


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


# ------------------------------------------------------------------------- export


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


def test_export_to_a_missing_folder_is_exit_2(cli, user, tmp_path):
    result = cli("--user-id", user, "--export", tmp_path / "missing" / "x.jsonl")
    assert result.code == 2 and "folder" in result.stderr


# ------------------------------------------------------------------------- import


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
    assert [(c["line"], c["action"], c["fields"]) for c in summary["changes"]] == [
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


def test_import_from_stdin_with_concurrency(agentos, user):
    lines = "".join(json.dumps({"memory": f"fact {n}", "user_id": user}) + "\n" for n in range(40))
    result = run_script("--base-url", agentos.url, "--import", "-", "--concurrency", "3", input=lines)
    assert result.code == 0 and "40 created" in result.stdout
    assert len(agentos.memories(user)) == 40


def test_import_of_a_missing_file_is_exit_2(agentos):
    result = run_script("--base-url", agentos.url, "--import", "/nonexistent/file.jsonl")
    assert result.code == 2 and "not found" in result.stderr


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
