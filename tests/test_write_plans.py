"""Every write is a plan of changes: previewed by --dry-run, journaled before it is sent,
said before the server loses anything, and reported in one line when it cannot go on.

The script runs as a user runs it, against real AgentOS servers; each test journals in a
folder of its own. A full disk is a file-size limit (RLIMIT_FSIZE): root writes through
permissions, not through that, and CPython ignores the SIGXFSZ it brings, so a write past
the limit fails with EFBIG as on a full disk.
"""

import dataclasses
import json
import re
import resource
import subprocess
import sys

import pytest

from conftest import CLEAN_ENV, ROOT, SCRIPT, Result, run_script, start_script, start_server
from hooks_proxy import WriteHookProxy

sys.path.insert(0, str(ROOT / "scripts"))
import manage_memories  # noqa: E402


@pytest.fixture
def journal(tmp_path):
    return tmp_path / "journal"


def held(server, user):
    """What the server holds for user: {memory_id: (memory, topics)}."""
    return {memory["memory_id"]: (memory["memory"], memory["topics"]) for memory in server.memories(user)}


def sent_writes(server, since):
    return [line for line in server.requests()[since:] if line.startswith(("POST", "PATCH", "DELETE"))]


def error_of(result):
    """The JSON error on stderr (warnings may come before it, one JSON line each)."""
    return json.loads(result.stderr.strip().splitlines()[-1])["error"]


def numbers_in(text):
    return {int(number.replace(",", "")) for number in re.findall(r"\d[\d,]*", text)}


def seed_many(server, user, count):
    """count memories of user, stored through agno's database layer: thousands in a second."""
    from agno.db.schemas import UserMemory

    rows = [
        UserMemory(memory=f"bulk fact {n:05d} of {user}", memory_id=f"{user}-{n:05d}", user_id=user, topics=["bulk"])
        for n in range(count)
    ]
    database = server.database()
    for start in range(0, count, 2000):
        database.upsert_memories(rows[start : start + 2000])


def run_with_file_limit(limit, *args, env):
    """The script with its files limited to `limit` bytes each: a disk that is full."""

    def limit_files():
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    process = subprocess.run(
        [sys.executable, str(SCRIPT), *map(str, args)],
        check=False,
        env={**CLEAN_ENV, **env},
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
        preexec_fn=limit_files,
    )
    return Result(process.returncode, process.stdout, process.stderr)


# ------------------------------------------------------------ the journal before the send


def folder_with_no_room_for_a_file(tmp_path):
    """A folder path as long as a folder's may be (PATH_MAX - 2): it can be made, but no
    file can be created in it (ENAMETOOLONG), whoever runs the script."""
    room = 4096 - 2 - len(str(tmp_path))
    parts = ["j" * 250] * (room // 251) + ["k" * (room % 251 - 1)]
    return tmp_path.joinpath(*parts)


@pytest.fixture(params=["full-disk", "no-room-for-a-file"])
def unwritable_journal(request, tmp_path):
    """Runs the script with a journal it cannot write: on a full disk, or in a folder
    where no file can be created."""
    if request.param == "full-disk":
        env = {"AGENTOS_MEMORY_JOURNAL": str(tmp_path / "journal")}
        return lambda *args: run_with_file_limit(0, *args, env=env)
    env = {"AGENTOS_MEMORY_JOURNAL": str(folder_with_no_room_for_a_file(tmp_path))}
    return lambda *args: run_script(*args, env=env)


def test_a_create_whose_journal_cannot_be_written_creates_nothing(agentos, unwritable_journal, user):
    since = len(agentos.requests())
    result = unwritable_journal(
        "--base-url", agentos.url, "--user-id", user, "--create", "Prefers aisle seats", "--allow-duplicate", "--json"
    )
    assert held(agentos, user) == {}, "the memory was created though its journal entry could not be written"
    assert sent_writes(agentos, since) == []
    assert result.code == 1, result.stderr
    assert error_of(result)["type"] == "journal"
    assert "operation" not in result.stdout


def test_a_create_refused_by_its_journal_names_no_undo(agentos, unwritable_journal, user):
    result = unwritable_journal(
        "--base-url", agentos.url, "--user-id", user, "--create", "Prefers aisle seats", "--allow-duplicate"
    )
    assert result.code == 1, result.stderr
    assert "undo with" not in result.stdout and "--undo" not in result.stdout + result.stderr, result.stderr
    assert result.stderr.count("\n") == 1, result.stderr


# ----------------------------------------------------- a disk that fills during a delete-all

FULL_DISK_MEMORIES = 3000
# Re-creating memories goes one request each (36 s for 3,000 here): the undo is shown on fewer.
UNDONE_MEMORIES = 200


def delete_all_until_the_disk_fills(proxy, user, journal, *flags):
    """--delete-all --yes of user's memories through proxy, which, when the first DELETE
    arrives, limits the script's files to the size its journal has then: the disk fills
    with the first batch on its way."""
    started = []

    def fill_the_disk(method, path, number):
        if method == "DELETE" and len(started) == 1:
            size = max(entry.stat().st_size for entry in journal.rglob("*") if entry.is_file())
            resource.prlimit(started[0].pid, resource.RLIMIT_FSIZE, (size, size))
            started.append("full")

    proxy.on_write = fill_the_disk
    env = {"AGENTOS_MEMORY_JOURNAL": str(journal)}
    process = start_script(
        "--base-url", proxy.url, "--user-id", user, "--delete-all", "--yes", "--concurrency", "1", *flags, env=env
    )
    started.append(process)
    stdout, stderr = process.communicate(timeout=120)
    proxy.on_write = None
    assert started[-1] == "full", f"no DELETE was sent: {stderr}"
    return Result(process.returncode, stdout, stderr)


@pytest.fixture
def full_disk(agentos, journal, user):
    """Runs a delete-all of a user's `count` memories that a full disk stops; every
    command of the test goes through the same proxy, so names the same server."""
    with WriteHookProxy(agentos.url) as proxy:

        def run(*flags, count=FULL_DISK_MEMORIES):
            seed_many(agentos, user, count)
            return delete_all_until_the_disk_fills(proxy, user, journal, *flags), proxy.url

        yield run


def test_a_full_disk_during_delete_all_is_one_journal_error_line(full_disk):
    result, _ = full_disk("--json")
    assert result.code == 1, result.stderr
    assert result.stderr.count("\n") == 1, result.stderr
    assert "Traceback" not in result.stderr and "Exception in callback" not in result.stderr
    assert error_of(result)["type"] == "journal"


def test_a_full_disk_during_delete_all_says_how_many_memories_went(full_disk, agentos, user):
    result, _ = full_disk()
    lost = FULL_DISK_MEMORIES - len(agentos.memories(user))
    assert lost > 0, "the disk was meant to fill after the first batch was deleted"
    assert result.code == 1, result.stderr
    message = result.stderr.strip().splitlines()[-1]
    assert lost in numbers_in(message), f"the server lost {lost} memories, the message says: {message}"
    assert "nothing was changed" not in message


def test_what_a_delete_all_stopped_by_a_full_disk_deleted_comes_back_with_undo(full_disk, agentos, journal, user):
    result, url = full_disk(count=UNDONE_MEMORIES)
    assert result.code == 1 and len(agentos.memories(user)) < UNDONE_MEMORIES, result.stderr
    undone = run_script("--base-url", url, "--undo", "--json", env={"AGENTOS_MEMORY_JOURNAL": str(journal)})
    assert undone.code == 0, undone.stderr
    assert sorted(held(agentos, user)) == [f"{user}-{n:05d}" for n in range(UNDONE_MEMORIES)]


# ------------------------------------------------------------------ --dry-run on every write
# Each case seeds what its write needs and returns (the flags of the dry run, the memory
# ids it must list as changes; None stands for a memory about to be created).


def create_case(server, user, tmp_path, env):
    return ["--user-id", user, "--create", "Prefers window seats", "--topics", "travel"], {None}


def update_case(server, user, tmp_path, env):
    memory = server.seed(user, "Lives in Berlin", ["home"])
    return ["--user-id", user, "--memory-id", memory["memory_id"], "--update", "Lives in Paris"], {memory["memory_id"]}


def topics_case(server, user, tmp_path, env):
    memory = server.seed(user, "Drinks oat milk", ["food"])
    return ["--user-id", user, "--memory-id", memory["memory_id"], "--topics", "drinks"], {memory["memory_id"]}


def delete_case(server, user, tmp_path, env):
    memory = server.seed(user, "Owns a bicycle", [])
    return ["--user-id", user, "--memory-id", memory["memory_id"], "--delete"], {memory["memory_id"]}


def delete_all_case(server, user, tmp_path, env):
    ids = {server.seed(user, f"fact {n}", ["scratch"])["memory_id"] for n in range(3)}
    return ["--user-id", user, "--delete-all"], ids


def import_case(server, user, tmp_path, env):
    memory = server.seed(user, "Prefers tea", ["drinks"])
    lines = [
        {"memory_id": memory["memory_id"], "user_id": user, "memory": "Prefers coffee", "topics": ["drinks"]},
        {"memory_id": f"{user}-new", "user_id": user, "memory": "Plays chess", "topics": []},
    ]
    backup = tmp_path / "backup.jsonl"
    backup.write_text("".join(json.dumps(line) + "\n" for line in lines))
    return ["--import", backup], {memory["memory_id"], f"{user}-new"}


def dedupe_case(server, user, tmp_path, env):
    kept = server.seed(user, "Likes green tea", ["drinks", "food"])
    copy = server.seed(user, "likes green tea.", ["morning"])
    # the one with more topics stays and takes the other's: an update and a delete
    return ["--user-id", user, "--dedupe"], {kept["memory_id"], copy["memory_id"]}


def undo_case(server, user, tmp_path, env):
    ids = [server.seed(user, f"kept fact {n}", [])["memory_id"] for n in range(2)]
    by_id = [arg for memory_id in ids for arg in ("--memory-id", memory_id)]
    deleted = run_script("--base-url", server.url, "--user-id", user, *by_id, "--delete", "--json", env=env)
    assert deleted.code == 0, deleted.stderr
    return ["--undo", deleted.json()["operation"]], set(ids)


def move_case(server, user, tmp_path, env):
    memory = server.seed(user, "Prefers window seats", ["travel"])  # the text that names a copy to be created
    server.seed(f"{user}-target", "Likes tea", [])
    # a copy for the target (a memory about to be created) and the original's delete
    return ["--user-id", user, "--move-to", f"{user}-target"], {None, memory["memory_id"]}


def add_topics_case(server, user, tmp_path, env):
    memory = server.seed(user, "Eats no meat", ["food"])
    return ["--user-id", user, "--memory-id", memory["memory_id"], "--add-topics", "diet"], {memory["memory_id"]}


def remove_topics_case(server, user, tmp_path, env):
    ids = {server.seed(user, f"food fact {n}", ["food", "diet"])["memory_id"] for n in range(2)}
    return ["--user-id", user, "--topics", "food", "--remove-topics", "diet"], ids


DRY_RUN_CASES = {
    "create": create_case,
    "update": update_case,
    "topics": topics_case,
    "delete": delete_case,
    "delete_all": delete_all_case,
    "import_file": import_case,
    "dedupe": dedupe_case,
    "undo": undo_case,
    "add_topics": add_topics_case,
    "remove_topics": remove_topics_case,
    "move": move_case,
}
CHANGE_KEYS = {"memory_id", "user_id", "before", "after"}
SERVER_MEMORY_KEYS = {"memory_id", "memory", "topics", "user_id", "agent_id", "team_id", "updated_at"}


def writes():
    """The rows of ACTIONS that change memories: those whose token needs more than reading."""
    return {
        name: action
        for name, action in manage_memories.ACTIONS.items()
        if {"memories:write", "memories:delete"} & set(action.scopes or ())
    }


def test_every_write_has_a_dry_run_case():
    assert set(writes()) <= set(DRY_RUN_CASES), f"add a dry-run case for {sorted(set(writes()) - set(DRY_RUN_CASES))}"


def test_every_write_takes_dry_run():
    assert [action.flag for action in writes().values() if "--dry-run" not in action.options] == []


@pytest.fixture(scope="module")
def previews(tmp_path_factory):
    """The dry runs' server. A dry run only reads, through the same API whatever the
    server's database, so these run on SQLite alone."""
    server = start_server(tmp_path_factory.mktemp("previews"))
    yield server
    server.stop()


@pytest.fixture
def dry_run(previews, journal, user, tmp_path):
    """Seeds a case, then runs its dry run (--json unless text=True)."""
    env = {"AGENTOS_MEMORY_JOURNAL": str(journal)}

    def run(case, text=False):
        flags, ids = DRY_RUN_CASES[case](previews, user, tmp_path, env)
        output = [] if text else ["--json"]
        return run_script("--base-url", previews.url, *flags, "--dry-run", *output, env=env), ids

    return run


@pytest.mark.parametrize("case", DRY_RUN_CASES)
def test_a_dry_run_answers_with_each_change_it_would_make(dry_run, user, case):
    result, ids = dry_run(case)
    assert result.code == 0, result.stderr
    answer = result.json()
    assert answer["dry_run"] is True
    changes = answer["changes"]
    assert all(set(change) == CHANGE_KEYS for change in changes), changes
    assert {change["memory_id"] for change in changes} == ids
    # every change is the user's, but a move's copies, which are its target's
    assert {change["user_id"] for change in changes} == ({user, f"{user}-target"} if case == "move" else {user})


@pytest.mark.parametrize("case", DRY_RUN_CASES)
def test_a_dry_run_leaves_the_server_and_the_journal_as_they_were(previews, journal, user, tmp_path, case):
    env = {"AGENTOS_MEMORY_JOURNAL": str(journal)}
    flags, _ = DRY_RUN_CASES[case](previews, user, tmp_path, env)
    history = run_script("--base-url", previews.url, "--history", "--all", "--json", env=env).json()["data"]
    before, since = held(previews, user), len(previews.requests())
    result = run_script("--base-url", previews.url, *flags, "--dry-run", "--json", env=env)
    assert result.code == 0, result.stderr
    assert sent_writes(previews, since) == []
    assert held(previews, user) == before
    assert run_script("--base-url", previews.url, "--history", "--all", "--json", env=env).json()["data"] == history


def test_a_dry_run_of_a_create_shows_the_memory_it_would_send(dry_run, user):
    result, _ = dry_run("create")
    assert result.code == 0, result.stderr
    assert result.json()["changes"] == [
        {
            "memory_id": None,
            "user_id": user,
            "before": None,
            "after": {"memory": "Prefers window seats", "topics": ["travel"], "user_id": user},
        }
    ]


@pytest.mark.parametrize(
    "case, before, after",
    [
        ("update", ("Lives in Berlin", ["home"]), ("Lives in Paris", ["home"])),
        ("topics", ("Drinks oat milk", ["food"]), ("Drinks oat milk", ["drinks"])),
    ],
)
def test_a_dry_run_of_an_update_shows_the_server_copy_and_what_would_replace_it(dry_run, user, case, before, after):
    result, (memory_id,) = dry_run(case)
    assert result.code == 0, result.stderr
    (change,) = result.json()["changes"]
    assert set(change["before"]) == SERVER_MEMORY_KEYS
    assert (change["before"]["memory_id"], change["before"]["user_id"]) == (memory_id, user)
    assert (change["before"]["memory"], change["before"]["topics"]) == before
    assert change["after"] == {"memory": after[0], "topics": after[1], "user_id": user}


@pytest.mark.parametrize("case", ["delete", "delete_all"])
def test_a_dry_run_of_a_delete_shows_what_would_go_and_nothing_after(dry_run, previews, user, case):
    result, ids = dry_run(case)
    assert result.code == 0, result.stderr
    changes = result.json()["changes"]
    assert all(change["after"] is None for change in changes)
    server_copies = held(previews, user)
    assert {change["memory_id"]: change["before"]["memory"] for change in changes} == {
        memory_id: server_copies[memory_id][0] for memory_id in ids
    }


@pytest.mark.parametrize("case", DRY_RUN_CASES)
def test_a_dry_run_in_text_prints_a_line_per_change_and_says_nothing_was_changed(dry_run, case):
    result, ids = dry_run(case, text=True)
    assert result.code == 0, result.stderr
    lines = result.stdout.splitlines()
    for memory_id in ids:
        named = "Prefers window seats" if memory_id is None else memory_id
        assert any(named in line and "->" in line for line in lines), f"no 'before -> after' line for {named}"
    assert re.search(r"nothing (was |has been )?changed", result.stdout, re.IGNORECASE), result.stdout


# ------------------------------------------------------------ what an update makes the server lose


@pytest.fixture
def agents_memory(agentos, user):
    """A memory an agent stored: agno's API clears agent_id on every PATCH."""
    return agentos.seed_from_agent(user, "Avoids gluten", agent_id="assistant", topics=["food"])


def test_a_dry_run_lists_the_agent_id_a_topics_change_would_clear(agentos, journal, user, agents_memory):
    result = run_script(
        "--base-url", agentos.url, "--user-id", user, "--memory-id", agents_memory, "--topics", "diet",
        "--dry-run", "--json", env={"AGENTOS_MEMORY_JOURNAL": str(journal)},
    )  # fmt: skip
    assert result.code == 0, result.stderr
    assert result.json()["cleared"] == [{"memory_id": agents_memory, "agent_id": "assistant", "team_id": None}]


def test_a_dry_run_says_in_text_which_agent_id_would_be_cleared(agentos, journal, user, agents_memory):
    result = run_script(
        "--base-url", agentos.url, "--user-id", user, "--memory-id", agents_memory, "--topics", "diet", "--dry-run",
        env={"AGENTOS_MEMORY_JOURNAL": str(journal)},
    )  # fmt: skip
    assert result.code == 0, result.stderr
    assert "will clear agent_id 'assistant' on 1 memory" in result.stdout + result.stderr


def test_an_update_that_clears_an_agent_id_warns_on_stderr(agentos, journal, user, agents_memory):
    result = run_script(
        "--base-url", agentos.url, "--user-id", user, "--memory-id", agents_memory, "--topics", "diet",
        env={"AGENTOS_MEMORY_JOURNAL": str(journal)},
    )  # fmt: skip
    assert result.code == 0, result.stderr
    assert "will clear agent_id 'assistant' on 1 memory" in result.stderr


def test_an_updates_json_lists_the_agent_id_it_cleared(agentos, journal, user, agents_memory):
    result = run_script(
        "--base-url", agentos.url, "--user-id", user, "--memory-id", agents_memory, "--topics", "diet", "--json",
        env={"AGENTOS_MEMORY_JOURNAL": str(journal)},
    )  # fmt: skip
    assert result.code == 0, result.stderr
    assert result.json()["cleared"] == [{"memory_id": agents_memory, "agent_id": "assistant", "team_id": None}]


# ------------------------------------------------------------------ a fault in the script


@pytest.fixture
def broken_history(monkeypatch, tmp_path):
    """--history with an operation that fails as a bug would."""

    async def divide_by_zero(server, request):
        return 1 / 0

    monkeypatch.setenv("AGENTOS_MEMORY_JOURNAL", str(tmp_path / "journal"))
    broken = dataclasses.replace(manage_memories.ACTIONS["history"], operation=divide_by_zero)
    monkeypatch.setitem(manage_memories.ACTIONS, "history", broken)


def test_an_unexpected_error_is_one_line(broken_history, capsys):
    assert manage_memories.main(["--history"]) == 1
    stderr = capsys.readouterr().err
    assert stderr.count("\n") == 1 and "Traceback" not in stderr, stderr


def test_an_unexpected_error_has_the_type_internal(broken_history, capsys):
    assert manage_memories.main(["--history", "--json"]) == 1
    assert json.loads(capsys.readouterr().err)["error"]["type"] == "internal"


def test_traceback_prints_the_stack_of_an_unexpected_error(broken_history, capsys):
    assert manage_memories.main(["--history", "--traceback"]) == 1
    stderr = capsys.readouterr().err
    assert "Traceback (most recent call last)" in stderr
    assert "divide_by_zero" in stderr and "ZeroDivisionError" in stderr
