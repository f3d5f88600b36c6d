"""The journal's rules: which folder it may use and what it may touch there, how it names
a server, and what its entries and hints say.

The journal is a folder on this machine: which database the server keeps its memories
in changes none of this, so these tests run against one SQLite server of their own.
Each test names a journal folder of its own ($AGENTOS_MEMORY_JOURNAL).
"""

import json
import os
import shlex
import stat
import time
from urllib.parse import urlsplit

import pytest

from conftest import run_script, start_server
from hooks_proxy import WriteHookProxy

FORTY_DAYS_AGO = time.time() - 40 * 86400  # older than the 30 days kept


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    server = start_server(tmp_path_factory.mktemp("journal-rules"))
    yield server
    server.stop()


@pytest.fixture
def port(server):
    return urlsplit(server.url).port


@pytest.fixture
def journal(tmp_path):
    return tmp_path / "journal"


def in_journal(folder, *args):
    return run_script(*args, env={"AGENTOS_MEMORY_JOURNAL": str(folder)})


def create(folder, base_url, user, *flags, content="Prefers aisle seats", text=False):
    """--create of a memory for user, journaled in folder (--json unless text)."""
    output = [] if text else ["--json"]
    return in_journal(folder, "--base-url", base_url, *flags, "--user-id", user, "--create", content, *output)


def error_of(result):
    """The JSON error on stderr (warnings may come before it, one JSON line each)."""
    return json.loads(result.stderr.strip().splitlines()[-1])["error"]


def folder_state(folder):
    """Everything a refusal must leave as it was: each file's bytes and mtime, the folder's mode and owner."""
    files = {path.name: (path.read_bytes(), path.stat().st_mtime) for path in folder.iterdir()}
    status = folder.lstat()
    return files, stat.S_IMODE(status.st_mode), status.st_uid


def is_journal_entry(path):
    """A *.jsonl whose first line is the header the script writes."""
    if path.suffix != ".jsonl":
        return False
    try:
        header = json.loads(path.read_text().splitlines()[0])
    except (ValueError, IndexError, UnicodeDecodeError):
        return False
    return isinstance(header, dict) and header.get("journal") == 1 and "operation" in header


def operations(server, folder, *args, base_url=None):
    history = in_journal(folder, "--base-url", base_url or server.url, "--history", "--all", "--json", *args)
    assert history.code == 0, history.stderr
    return [entry["operation"] for entry in history.json()["data"]]


# ------------------------------------------------------------------ which folder it takes


def refused_command(command, user):
    """One command that only reads the journal, and one that would write it."""
    return {"history": ["--history"], "create": ["--user-id", user, "--create", "Prefers aisle seats"]}[command]


@pytest.fixture
def users_own_folder(tmp_path):
    """A folder of the user's, not the script's: an old export and some notes, mode 0755."""
    folder = tmp_path / "mine"
    folder.mkdir()
    folder.chmod(0o755)
    export = folder / "export.jsonl"
    export.write_text(json.dumps({"memory_id": "m-1", "memory": "an exported memory", "user_id": "me"}) + "\n")
    os.utime(export, (FORTY_DAYS_AGO, FORTY_DAYS_AGO))
    (folder / "notes.txt").write_text("notes of my own\n")
    return folder


@pytest.mark.parametrize("command", ["history", "create"])
def test_a_folder_holding_other_files_is_refused_and_left_as_it_was(server, users_own_folder, user, command):
    args = refused_command(command, user)
    before = folder_state(users_own_folder)
    result = in_journal(users_own_folder, "--base-url", server.url, *args, "--json")
    assert result.code == 1, result.stderr
    assert error_of(result)["type"] == "journal" and result.stderr.count("\n") == 1, result.stderr
    assert folder_state(users_own_folder) == before
    assert server.memories(user) == []


@pytest.mark.skipif(os.geteuid() != 0, reason="only root can give a folder to another user")
@pytest.mark.parametrize("command", ["history", "create"])
def test_a_folder_owned_by_another_user_is_refused(server, journal, user, command):
    journal.mkdir(mode=0o700)
    os.chown(journal, 4321, 4321)
    args = refused_command(command, user)
    before = folder_state(journal)
    result = in_journal(journal, "--base-url", server.url, *args, "--json")
    assert result.code == 1, result.stderr
    assert error_of(result)["type"] == "journal" and result.stderr.count("\n") == 1, result.stderr
    assert folder_state(journal) == before
    assert server.memories(user) == []


def test_an_empty_folder_is_taken_and_made_private(server, journal, user):
    journal.mkdir()
    journal.chmod(0o755)
    created = create(journal, server.url, user)
    assert created.code == 0, created.stderr
    assert operations(server, journal) == [created.json()["operation"]]
    assert stat.S_IMODE(journal.stat().st_mode) == 0o700


def test_a_folder_of_journal_entries_alone_is_taken(server, journal, user):
    """As an earlier version left it: its entries, and no mark of the folder."""
    first = create(journal, server.url, user)
    assert first.code == 0, first.stderr
    for path in journal.iterdir():
        if not is_journal_entry(path):
            path.unlink()
    second = create(journal, server.url, user, content="Owns a kayak")
    assert second.code == 0, second.stderr
    assert operations(server, journal) == [second.json()["operation"], first.json()["operation"]]


def test_pruning_keeps_a_users_own_file_in_the_journal_folder(server, journal, user):
    assert create(journal, server.url, user).code == 0
    mine = journal / "mine.jsonl"
    mine.write_text(json.dumps({"memory_id": "m-1", "memory": "an exported memory", "user_id": "me"}) + "\n")
    os.utime(mine, (FORTY_DAYS_AGO, FORTY_DAYS_AGO))
    assert in_journal(journal, "--base-url", server.url, "--history").code == 0
    assert create(journal, server.url, user, content="Owns a kayak").code == 0
    assert mine.exists(), "pruning deleted a file the script did not write"


def test_pruning_removes_an_entry_older_than_the_days_kept(server, journal, user):
    created = create(journal, server.url, user)
    assert created.code == 0, created.stderr
    (entry,) = [path for path in journal.iterdir() if is_journal_entry(path)]
    os.utime(entry, (FORTY_DAYS_AGO, FORTY_DAYS_AGO))
    assert create(journal, server.url, user, content="Owns a kayak").code == 0
    assert created.json()["operation"] not in operations(server, journal)
    assert not entry.exists()


def test_find_with_a_cache_folder_holding_other_files_embeds_without_it_and_leaves_it_alone(server, user, tmp_path):
    for memory in ("Drinks green tea every morning", "Lives in Porto", "Plays chess on Sundays"):
        server.seed(user, memory)
    cache = tmp_path / "cache"
    cache.mkdir()
    cache.chmod(0o755)
    (cache / "photos.db").write_bytes(b"not the script's")
    (cache / "notes.txt").write_text("notes of my own\n")
    before = folder_state(cache)
    result = run_script(
        "--base-url", server.url, "--user-id", user, "--find", "what does she drink?", "--json",
        env={"AGENTOS_MEMORY_CACHE": str(cache)},
    )  # fmt: skip
    assert result.code == 0, result.stderr
    # The cache costs time, not meaning: every memory is embedded again, and it says so once.
    assert result.json()["meta"]["ranked_by"] == "words+meaning" and result.json()["meta"]["embedded"] == 3
    assert len(result.stderr.splitlines()) == 1 and "embeds every memory again" in result.stderr, result.stderr
    assert folder_state(cache) == before


# ------------------------------------------------------------------ how it names a server


@pytest.mark.parametrize(
    "written_as, read_as",
    [("http://127.0.0.1:{port}/", "HTTP://127.0.0.1:{port}"), ("http://localhost:{port}", "http://LocalHost:{port}/")],
)
def test_history_finds_an_entry_under_another_spelling_of_the_same_url(
    server, journal, user, port, written_as, read_as
):
    created = create(journal, written_as.format(port=port), user)
    assert created.code == 0, created.stderr
    assert operations(server, journal, base_url=read_as.format(port=port)) == [created.json()["operation"]]


def test_localhost_and_127_0_0_1_are_two_servers_to_the_journal(server, journal, user, port):
    created = create(journal, f"http://localhost:{port}", user)
    assert created.code == 0, created.stderr
    assert operations(server, journal, base_url=f"http://127.0.0.1:{port}") == []


def test_a_default_port_names_the_same_server_as_none(server, journal, user):
    try:
        proxy = WriteHookProxy(server.url, port=80)
    except OSError as error:
        pytest.skip(f"port 80 cannot be listened on here: {error}")
    with proxy:
        created = create(journal, "http://127.0.0.1:80", user)
    assert created.code == 0, created.stderr
    assert operations(server, journal, base_url="http://127.0.0.1") == [created.json()["operation"]]


def test_an_erasure_finds_the_copies_kept_under_every_spelling_of_the_url(server, journal, user, port):
    secret = f"a secret diagnosis {user}"
    created = create(journal, f"http://localhost:{port}", user, content=secret)
    assert created.code == 0, created.stderr
    updated = in_journal(
        journal, "--base-url", f"http://127.0.0.1:{port}/", "--user-id", user,
        "--memory-id", created.json()["memory_id"], "--update", f"{secret}, confirmed",
    )  # fmt: skip
    assert updated.code == 0, updated.stderr
    erased = in_journal(
        journal, "--base-url", f"http://127.0.0.1:{port}", "--user-id", user, "--delete-all", "--yes", "--erase"
    )
    assert erased.code == 0, erased.stderr
    assert server.memories(user) == []
    holding = [path.name for path in journal.rglob("*") if path.is_file() and secret.encode() in path.read_bytes()]
    assert holding == []


# ---------------------------------------------------------------------- what it says


def undo_hint(result):
    (line,) = [line for line in result.stdout.splitlines() if line.startswith("undo with: ")]
    return line.removeprefix("undo with: ")


def test_the_undo_hint_names_the_database(server, journal, user):
    created = create(journal, server.url, user, "--db-id", "dev", text=True)
    assert created.code == 0, created.stderr
    assert "--db-id dev" in undo_hint(created)


def test_the_undo_hint_names_the_table(server, journal, user):
    created = create(journal, server.url, user, "--db-id", "dev", "--table", "agno_memories", text=True)
    assert created.code == 0, created.stderr
    assert "--table agno_memories" in undo_hint(created)


def test_the_printed_undo_command_takes_the_change_back(server, journal, user):
    created = create(journal, server.url, user, "--db-id", "dev", text=True)
    assert created.code == 0 and server.memories(user), created.stderr
    command = shlex.split(undo_hint(created))
    assert command[:3] == ["uv", "run", "scripts/manage_memories.py"]
    undone = in_journal(journal, *command[3:])
    assert undone.code == 0, undone.stderr
    assert server.memories(user) == []


@pytest.fixture
def import_of_two_users(server, journal, user, tmp_path):
    """An import that created memories of two users: (its operation, the users)."""
    nadia, omar = f"{user}-nadia", f"{user}-omar"
    lines = [
        {"memory_id": f"{user}-n1", "user_id": nadia, "memory": "Nadia keeps bees", "topics": []},
        {"memory_id": f"{user}-n2", "user_id": nadia, "memory": "Nadia speaks Arabic", "topics": []},
        {"memory_id": f"{user}-o1", "user_id": omar, "memory": "Omar cycles to work", "topics": []},
    ]
    backup = tmp_path / "two-users.jsonl"
    backup.write_text("".join(json.dumps(line) + "\n" for line in lines))
    imported = in_journal(journal, "--base-url", server.url, "--import", backup, "--json")
    assert imported.code == 0 and imported.json()["created"] == 3, imported.stderr
    return imported.json()["operation"], (nadia, omar)


def test_history_of_a_user_lists_an_import_that_touched_several_users(server, journal, import_of_two_users):
    operation, (nadia, _) = import_of_two_users
    assert operations(server, journal, "--user-id", nadia) == [operation]


def test_history_names_every_user_an_operation_touched(server, journal, import_of_two_users):
    operation, users = import_of_two_users
    history = in_journal(journal, "--base-url", server.url, "--history", "--json")
    (entry,) = history.json()["data"]
    assert entry["operation"] == operation and entry["users"] == sorted(users)
