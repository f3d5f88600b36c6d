"""The command line itself: usage errors (one line, exit 2, nothing sent, agno not
imported), an unreachable server (exit 3), --base-url and $AGENTOS_URL, --help, one
JSON shape per kind of result, and the script run as users run it (piped into head,
through uv run).
"""

import shutil
import subprocess
import sys

import pytest

from conftest import CLEAN_ENV, ROOT, SCRIPT, run_script


# ------------------------------------------------------------- usage errors, exit 2


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


@pytest.mark.parametrize(
    "args", [["--create", "x"], ["--memory-id", "m1"], ["--memory-id", "m1", "--delete"], ["--move-to", "bob"]]
)
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


@pytest.mark.parametrize(
    "args",
    [
        ["--import", "/no/such/file.jsonl"],
        ["--user-id", "a", "--limit", "0"],
        ["--find", "the"],
        ["--create", "x"],
        ["--stats", "--sort", "created_at"],
    ],
)
def test_usage_errors_never_import_agno(args):
    """Exit-2 answers come before agno is imported: python -X importtime lists every import."""
    result = subprocess.run(
        [sys.executable, "-X", "importtime", SCRIPT, *args], capture_output=True, text=True, env=CLEAN_ENV
    )
    assert result.returncode == 2
    imported = [line.rsplit("|", 1)[-1].strip() for line in result.stderr.splitlines() if "|" in line]
    heavy = ("agno", "httpx", "pydantic", "numpy", "onnxruntime", "tokenizers")
    assert imported and not [name for name in imported if name.startswith(heavy)]


# -------------------------------------------------------------- unreachable, exit 3


def test_unreachable_is_json_with_json(user):
    result = run_script("--base-url", "http://127.0.0.1:9", "--user-id", user, "--json")
    assert result.code == 3 and result.error()["type"] == "unreachable"


# --------------------------------------------------------------------- which server


def test_base_url_comes_from_agentos_url(agentos, user):
    agentos.seed(user, "From the environment")
    result = run_script("--user-id", user, "--json", env={"AGENTOS_URL": agentos.url})
    assert result.code == 0 and result.json()["data"][0]["memory"] == "From the environment"


def test_base_url_flag_wins_over_agentos_url(agentos, user):
    result = run_script("--base-url", agentos.url, "--user-id", user, env={"AGENTOS_URL": "http://127.0.0.1:9"})
    assert result.code == 0


# ---------------------------------------------------------- JSON shapes and wording


def test_every_delete_answers_with_the_same_keys(agentos, user):
    memories = [agentos.seed(user, f"fact {n}")["memory_id"] for n in range(4)]
    base = ["--base-url", agentos.url, "--user-id", user, "--json"]
    answers = [
        run_script(*base, "--memory-id", memories[0], "--delete", "--dry-run"),
        run_script(*base, "--memory-id", memories[0], "--delete"),
        run_script(*base, "--memory-id", memories[1], "--memory-id", memories[2], "--delete"),
        run_script(*base, "--delete-all", "--dry-run"),
        run_script(*base, "--delete-all", "--yes"),
    ]
    for answer in answers:
        assert answer.code == 0, answer.stderr
        # "operation", the journal's id for --undo, comes with every delete that deleted something.
        changed = not answer.json()["dry_run"] and answer.json()["count"] > 0
        # A dry run adds what it would change ("changes") and what the server would clear.
        dry = answer.json()["dry_run"]
        assert set(answer.json()) == {"deleted", "count", "not_found", "dry_run"} | (
            {"operation"} if changed else set()
        ) | ({"changes", "cleared"} if dry else set())


def test_the_error_envelope_always_has_its_four_fields():
    error = run_script("--user-id", "a", "--limit", "0", "--json").error()
    assert set(error) == {"type", "message", "status", "hint"}


def test_counts_are_in_singular_and_plural(agentos, user):
    agentos.seed(user, "only one")
    assert run_script("--base-url", agentos.url, "--user-id", user).stdout.startswith(f"1 of 1 memory of user {user}")
    result = run_script("--base-url", agentos.url, "--user-id", user, "--delete-all", "--yes")
    assert result.stdout.startswith(f"deleted 1 memory of user {user}")


# ----------------------------------------------------------------- help and running


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
