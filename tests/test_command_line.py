"""The script's flags, output and exit codes, against a real AgentOS (issue: the CLI)."""

import re
import shutil
import subprocess
import sys
import time

import pytest

from conftest import ROOT, SCRIPT, TOKEN, run_script


# ---------------------------------------------------------------- listing and search


def test_list_shows_newest_first_with_ids_and_topics(agentos, cli, user):
    old = agentos.seed(user, "Lives in Lisbon", ["location"])
    time.sleep(1.1)  # the server stores seconds
    new = agentos.seed(user, "Prefers dark mode", ["preferences", "ui"])
    result = cli("--user-id", user)
    assert result.code == 0, result.stderr
    assert result.stdout.index(new["memory_id"]) < result.stdout.index(old["memory_id"])
    assert "Prefers dark mode" in result.stdout and "topics: preferences, ui" in result.stdout
    assert result.stdout.startswith(f"2 of 2 memories of user {user}")


def test_list_json_has_data_and_meta(agentos, cli, user):
    agentos.seed(user, "Likes tea")
    result = cli("--user-id", user, "--json")
    assert result.code == 0
    body = result.json()
    assert [memory["memory"] for memory in body["data"]] == ["Likes tea"]
    assert body["meta"] == {"page": 1, "limit": 20, "total_pages": 1, "total_count": 1}
    assert result.stderr == ""


def test_list_only_shows_that_users_memories(agentos, cli, user):
    agentos.seed(user, "Mine")
    agentos.seed(user + "-other", "Not mine")
    assert [m["memory"] for m in cli("--user-id", user, "--json").json()["data"]] == ["Mine"]


def test_search_is_case_insensitive_substring(agentos, cli, user):
    agentos.seed(user, "Prefers DARK mode")
    agentos.seed(user, "Likes coffee")
    body = cli("--user-id", user, "--search", "dark", "--json").json()
    assert [m["memory"] for m in body["data"]] == ["Prefers DARK mode"]


def test_list_says_how_many_of_the_total_and_how_to_see_more(agentos, cli, user):
    for number in range(7):
        agentos.seed(user, f"fact {number}")
    result = cli("--user-id", user, "--limit", "3")
    assert result.code == 0
    assert result.stdout.startswith(f"3 of 7 memories of user {user}")
    assert "--page 2" in result.stdout and "--all" in result.stdout


def test_page_shows_the_next_memories(agentos, cli, user):
    for number in range(5):
        agentos.seed(user, f"fact {number}")
    first = cli("--user-id", user, "--limit", "2", "--json").json()
    second = cli("--user-id", user, "--limit", "2", "--page", "2", "--json").json()
    assert second["meta"]["page"] == 2
    assert not {m["memory_id"] for m in first["data"]} & {m["memory_id"] for m in second["data"]}


def test_page_past_the_end_reports_the_real_total(agentos, cli, user):
    for number in range(3):
        agentos.seed(user, f"fact {number}")
    result = cli("--user-id", user, "--limit", "2", "--page", "5")
    assert result.code == 0
    assert "page 5 is past the end" in result.stdout and "3 memories" in result.stdout
    body = cli("--user-id", user, "--limit", "2", "--page", "5", "--json").json()
    assert body["data"] == [] and body["meta"]["total_count"] == 3 and body["meta"]["total_pages"] == 2


def test_all_fetches_every_page(agentos, cli, user):
    created = {agentos.seed(user, f"fact {number}")["memory_id"] for number in range(25)}
    body = cli("--user-id", user, "--all", "--json").json()
    assert {m["memory_id"] for m in body["data"]} == created
    assert body["meta"]["total_count"] == 25
    assert cli("--user-id", user, "--all").stdout.startswith(f"25 of 25 memories of user {user}")


def test_empty_list_says_so(cli, user):
    result = cli("--user-id", user)
    assert result.code == 0 and result.stdout.splitlines()[0] == f"no memories of user {user}"
    assert result.stdout.splitlines()[1].startswith(f"hint: user {user} has no memories")


# ------------------------------------------------------------------- create and get


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


def test_show_one_memory(agentos, cli, user):
    memory = agentos.seed(user, "Speaks Portuguese", ["language"])
    result = cli("--user-id", user, "--memory-id", memory["memory_id"], "--json")
    assert result.code == 0 and result.json() == memory
    assert "Speaks Portuguese" in cli("--user-id", user, "--memory-id", memory["memory_id"]).stdout


def test_show_another_users_memory_is_not_found(agentos, cli, user):
    memory = agentos.seed(user + "-owner", "Secret")
    result = cli("--user-id", user, "--memory-id", memory["memory_id"], "--json")
    assert result.code == 1 and result.error()["type"] == "not_found"
    assert "Secret" not in result.stdout + result.stderr


# ------------------------------------------------------------------------- update


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


def test_topics_alone_changes_only_the_topics(agentos, cli, user):
    memory = agentos.seed(user, "Prefers dark mode", ["preferences"])
    result = cli("--user-id", user, "--memory-id", memory["memory_id"], "--topics", "ui,theme")
    assert result.code == 0, result.stderr
    stored = agentos.memories(user)[0]
    assert stored["memory"] == "Prefers dark mode" and stored["topics"] == ["ui", "theme"]


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


# ------------------------------------------------------------------------- delete


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


@pytest.mark.parametrize("memory_id", ["../health", "..", "a/b", "x?user_id=bob", "x#y", "%2e%2e", " space", ""])
def test_memory_ids_that_could_leave_the_memory_path_are_refused(agentos, cli, user, memory_id):
    result = cli("--user-id", user, "--memory-id", memory_id, "--delete", "--json")
    assert result.code == 2 and result.error()["type"] == "usage"
    assert result.stdout == ""


# ------------------------------------------------------------------------- topics


def test_topics_list_for_all_users_and_for_one(fresh_agentos):
    server = fresh_agentos()
    server.seed("alice", "a", ["ui", "food"])
    server.seed("bob", "b", ["travel"])
    everyone = run_script("--base-url", server.url, "--topics-list", "--json")
    assert everyone.code == 0 and everyone.json() == ["food", "travel", "ui"]
    alice = run_script("--base-url", server.url, "--topics-list", "--user-id", "alice")
    assert alice.stdout.split() == ["food", "ui"]


# ----------------------------------------------------------------- bad input, exit 2


@pytest.mark.parametrize(
    "args, message",
    [
        (["--create", "   "], "empty"),
        (["--create", ""], "empty"),
        (["--create", "x" * 5001], "at most 5000"),
        (["--update", "new"], "needs --memory-id"),
        (["--delete"], "needs --memory-id"),
        (["--create", "x", "--delete", "--memory-id", "m1"], "cannot be combined"),
        (["--create", "x", "--update", "y", "--memory-id", "m1"], "cannot be combined"),
        (["--limit", "0"], "--limit"),
        (["--limit", "1001"], "--limit"),
        (["--page", "0"], "--page"),
        (["--limit", "ten"], "--limit"),
        (["--timeout", "0"], "--timeout"),
        (["--base-url", "localhost:7777"], "http://"),
        (["--base-url", "ftp://example.com"], "http://"),
        (["--create", "x", "--search", "y"], "cannot be used"),
        (["--create", "x", "--limit", "20"], "cannot be used"),
        (["--all", "--page", "1"], "drop --page"),
        (["--no-such-flag"], "unrecognized"),
    ],
)
def test_bad_input_is_one_line_exit_2_and_sends_nothing(agentos, user, args, message):
    # Tests on one worker run one at a time, so what the access log gains is this run's.
    before = len(agentos.requests())
    result = run_script("--base-url", agentos.url, "--user-id", user, *args)
    assert agentos.requests()[before:] == []
    assert result.code == 2, result.stderr
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("error: ") and message in result.stderr
    assert "Traceback" not in result.stderr and result.stdout == ""


@pytest.mark.parametrize(
    "args",
    [
        ["--jso", "--user-id", "a", "--limit", "0"],
        ["--js", "--limit", "ten"],
        ["--json", "--no-such-flag"],
        ["--user-id", "a", "--create", " ", "--json"],
    ],
    ids=["abbreviated, bad value", "abbreviated, parse error", "parse error", "bad content"],
)
def test_json_mode_is_decided_once_even_for_a_parse_error(agentos, args):
    result = run_script("--base-url", agentos.url, *args)
    assert result.code == 2 and result.stdout == ""
    assert result.error()["type"] == "usage"


@pytest.mark.parametrize("args", [[], ["--create", "x"], ["--memory-id", "m1"], ["--memory-id", "m1", "--delete"]])
def test_operations_on_memories_need_a_user_id(agentos, args):
    result = run_script("--base-url", agentos.url, *args)
    assert result.code == 2 and "--user-id is required" in result.stderr


def test_topics_with_only_separators_filter_nothing(agentos, user):
    result = run_script("--base-url", agentos.url, "--user-id", user, "--topics", " , ,")
    assert result.code == 2 and "--topics is empty" in result.stderr


def test_usage_errors_are_json_with_json(agentos, user):
    result = run_script("--base-url", agentos.url, "--user-id", user, "--create", " ", "--json")
    assert result.code == 2 and result.stdout == ""
    assert result.error()["type"] == "usage" and result.error()["status"] is None


# ------------------------------------------------------------ unreachable, exit 3


def test_unreachable_is_json_with_json(user):
    result = run_script("--base-url", "http://127.0.0.1:9", "--user-id", user, "--json")
    assert result.code == 3 and result.error()["type"] == "unreachable"


# ----------------------------------------------------------------- auth, exit 4


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


def test_base_url_comes_from_agentos_url(agentos, user):
    agentos.seed(user, "From the environment")
    result = run_script("--user-id", user, "--json", env={"AGENTOS_URL": agentos.url})
    assert result.code == 0 and result.json()["data"][0]["memory"] == "From the environment"


def test_base_url_flag_wins_over_agentos_url(agentos, user):
    result = run_script("--base-url", agentos.url, "--user-id", user, env={"AGENTOS_URL": "http://127.0.0.1:9"})
    assert result.code == 0


# --------------------------------------------------------------- help and running


def test_help_lists_exit_codes_and_environment():
    result = run_script("--help")
    assert result.code == 0
    for text in ("exit codes:", "0  success", "2  usage", "3  server unreachable", "4  authentication", "AGENTOS_URL"):
        assert text in result.stdout


def test_help_and_usage_errors_do_not_import_agno(tmp_path):
    # An 'agno' that explodes on import: --help and argument errors must not touch it.
    (tmp_path / "agno").mkdir()
    (tmp_path / "agno" / "__init__.py").write_text("raise SystemExit('agno was imported')\n")
    env = {"PYTHONPATH": str(tmp_path)}
    assert run_script("--help", env=env).code == 0
    result = run_script("--user-id", "u", "--limit", "0", env=env)
    assert result.code == 2 and "agno was imported" not in result.stderr


def test_piping_into_head_prints_no_traceback(agentos, user):
    for number in range(30):
        agentos.seed(user, f"fact {number}")
    pipeline = subprocess.run(
        f"{sys.executable} {SCRIPT} --base-url {agentos.url} --user-id {user} --all | head -1",
        shell=True,
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert pipeline.stdout.startswith("30 of 30") and "Traceback" not in pipeline.stderr


# On SQLite only: what is tested is the environment uv builds from the inline metadata.
@pytest.mark.skipif(shutil.which("uv") is None, reason="uv is not on PATH; .ci/run installs it")
@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_runs_through_uv_from_its_inline_metadata(agentos, user):
    agentos.seed(user, "Through uv")
    result = run_script(
        "--base-url",
        agentos.url,
        "--user-id",
        user,
        "--json",
        command=["uv", "run", "--quiet", str(SCRIPT)],
        timeout=600,
    )
    assert result.code == 0, result.stderr
    assert result.json()["data"][0]["memory"] == "Through uv"


def test_empty_topics_on_a_memory_clear_them(agentos, cli, user):
    memory = agentos.seed(user, "Tagged", ["a", "b"])
    result = cli("--user-id", user, "--memory-id", memory["memory_id"], "--topics", "")
    assert result.code == 0, result.stderr
    assert agentos.memories(user)[0]["topics"] == [] and agentos.memories(user)[0]["memory"] == "Tagged"
