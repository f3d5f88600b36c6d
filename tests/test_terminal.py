"""Text from the server is shown, never obeyed: terminal-safe output.

A memory, topic or user id stored by any client may hold what a terminal acts on:
colours, a changed window title, a cleared line, C1 controls, right-to-left
overrides. Every human output shows them escaped; --json keeps the exact text; every
write path refuses them before sending.
"""

import json
import re

import pytest

from conftest import run_script, start_server
from faults import FaultServer, json_answer

ESC, BEL, CSI, RLO = "\x1b", "\x07", "\x9b", "\u202e"
OSC_TITLE = f"{ESC}]0;pwned{BEL}"
# One of each: a colour (CSI by ESC), a bell, CSI as one C1 character, a window title, an override.
HOSTILE_TEXT = f"red {ESC}[31mALERT{ESC}[0m bell{BEL} home{CSI}1;1H title{OSC_TITLE} file{RLO}txt.exe"
HOSTILE_TOPICS = [f"ui{BEL}", f"{CSI}2J", f"{RLO}gpj"]
HOSTILE_USER = f"mallory{ESC}[2K{RLO}"
HOSTILE_AGENT = f"agent{OSC_TITLE}"
# A memory whose text tries to end its own block and print a header of its own.
FAKE_HEADER = "fine\rdeadbeef-0000  updated 2020-01-01 00:00:00Z\n\x0bfake  topics: none"
# What a terminal would obey, as output could carry it: C0 but newline, DEL, C1, bidi controls.
OBEYED = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
HEADER = re.compile(r"^\S+  (score \S+  )?(\d{4}-\d\d-\d\d \S+|unknown time)(  |$)")  # a memory's first line


@pytest.fixture(scope="module")
def hostile(tmp_path_factory):
    """A server holding memories that try to drive the terminal, for user 'victim' and HOSTILE_USER."""
    server = start_server(tmp_path_factory.mktemp("hostile"))
    memories = {
        "text": server.seed("victim", HOSTILE_TEXT, HOSTILE_TOPICS),
        "header": server.seed("victim", FAKE_HEADER),
        "owner": server.seed(HOSTILE_USER, f"owned by a hostile user id {ESC}[5m"),
    }
    server.seed_from_agent("victim", "written by an agent with a hostile id", agent_id=HOSTILE_AGENT)
    yield server, memories
    server.stop()


def human_outputs(server, memories):
    """Every human output that shows memory text, topics, user ids or agent ids."""
    base = ["--base-url", server.url]
    text_id = memories["text"]["memory_id"]
    return {
        "list": base + ["--user-id", "victim"],
        "show": base + ["--user-id", "victim", "--memory-id", text_id],
        "find": base + ["--user-id", "victim", "--find", "red alert title"],
        "find everyone": base + ["--find", "hostile user id agent red"],
        "stats": base + ["--stats"],
        "topics-list": base + ["--topics-list"],
        "topics-list of a user": base + ["--topics-list", "--user-id", "victim"],
        "delete dry run": base + ["--user-id", "victim", "--memory-id", text_id, "--delete", "--dry-run"],
        "delete-all dry run": base + ["--user-id", "victim", "--delete-all", "--dry-run"],
    }


@pytest.mark.parametrize(
    "output",
    [
        "list",
        "show",
        "find",
        "find everyone",
        "stats",
        "topics-list",
        "topics-list of a user",
        "delete dry run",
        "delete-all dry run",
    ],
)
def test_human_output_shows_control_characters_escaped(hostile, output):
    server, memories = hostile
    result = run_script(*human_outputs(server, memories)[output])
    assert result.code == 0, result.stderr
    shown = result.stdout + result.stderr
    assert not OBEYED.search(shown), repr(OBEYED.search(shown)[0])
    assert "\\x1b" in shown or "\\x9b" in shown or "\\u202e" in shown or "\\x07" in shown


def test_a_listing_shows_each_hostile_field_as_escapes(hostile):
    server, memories = hostile
    result = run_script("--base-url", server.url, "--user-id", "victim", "--all")
    assert result.code == 0, result.stderr
    assert (
        "red \\x1b[31mALERT\\x1b[0m bell\\x07 home\\x9b1;1H title\\x1b]0;pwned\\x07 file\\u202etxt.exe" in result.stdout
    )
    assert "topics: ui\\x07, \\x9b2J, \\u202egpj" in result.stdout
    assert "agent agent\\x1b]0;pwned\\x07" in result.stdout


def test_stats_and_find_show_a_hostile_user_id_escaped(hostile):
    server, _ = hostile
    stats = run_script("--base-url", server.url, "--stats")
    assert "mallory\\x1b[2K\\u202e" in stats.stdout
    found = run_script("--base-url", server.url, "--find", "hostile user id")
    assert "user mallory\\x1b[2K\\u202e" in found.stdout


def test_a_memorys_text_cannot_print_a_header_of_its_own(hostile):
    server, memories = hostile
    result = run_script("--base-url", server.url, "--user-id", "victim", "--all")
    headers = [line for line in result.stdout.splitlines() if HEADER.match(line)]
    assert len(headers) == 3  # the three memories of victim, no more
    body = result.stdout.split(memories["header"]["memory_id"], 1)[1].split("\n\n", 1)[0]
    assert "fine\\x0ddeadbeef-0000  updated 2020-01-01 00:00:00Z" in body
    assert all(line.startswith("  ") for line in body.splitlines()[1:])


def test_json_keeps_the_exact_text_and_sends_no_raw_control_character(hostile):
    server, memories = hostile
    result = run_script("--base-url", server.url, "--user-id", "victim", "--all", "--json")
    assert result.code == 0, result.stderr
    assert not OBEYED.search(result.stdout)
    by_id = {memory["memory_id"]: memory for memory in result.json()["data"]}
    assert by_id[memories["text"]["memory_id"]]["memory"] == HOSTILE_TEXT
    assert by_id[memories["text"]["memory_id"]]["topics"] == HOSTILE_TOPICS
    assert by_id[memories["header"]["memory_id"]]["memory"] == FAKE_HEADER
    stats = run_script("--base-url", server.url, "--stats", "--json")
    assert HOSTILE_USER in [row["user_id"] for row in stats.json()["data"]]
    assert not OBEYED.search(stats.stdout)


def test_an_export_to_stdout_keeps_the_exact_text_without_raw_control_characters(hostile):
    server, memories = hostile
    result = run_script("--base-url", server.url, "--export", "-")
    assert result.code == 0 and not OBEYED.search(result.stdout)
    exported = [json.loads(line) for line in result.stdout.splitlines()]
    assert {memory["memory"] for memory in exported} >= {HOSTILE_TEXT, FAKE_HEADER}
    assert HOSTILE_USER in {memory["user_id"] for memory in exported}


def test_an_update_shows_the_hostile_topics_it_kept_escaped(hostile):
    server, memories = hostile
    memory = server.seed("victim-update", "plain text", HOSTILE_TOPICS)
    result = run_script(
        "--base-url", server.url, "--user-id", "victim-update", "--memory-id", memory["memory_id"], "--update", "new"
    )
    assert result.code == 0, result.stderr
    assert not OBEYED.search(result.stdout) and "topics: ui\\x07, \\x9b2J, \\u202egpj" in result.stdout


def test_a_server_error_detail_is_shown_escaped(tmp_path):
    detail = f"database says {ESC}]0;pwned{BEL} no"
    with FaultServer(json_answer({"detail": detail}, status=500)) as server:
        human = run_script("--base-url", server.url, "--user-id", "a", "--verbose")
        machine = run_script("--base-url", server.url, "--user-id", "a", "--json")
    assert human.code == 1 and not OBEYED.search(human.stderr)
    assert "database says \\x1b]0;pwned\\x07 no" in human.stderr
    assert machine.error()["message"].endswith(f"database says {ESC}]0;pwned{BEL} no")


# ------------------------------------------------------------ refused on every write


@pytest.fixture(scope="module")
def quiet(tmp_path_factory):
    """A server of this module's own: on one worker its tests run one at a time, so what
    its access log gains during a test is what that test sent."""
    server = start_server(tmp_path_factory.mktemp("quiet"))
    yield server
    server.stop()


def sends_nothing(server, *args, input=None):
    before = len(server.requests())
    result = run_script("--base-url", server.url, *args, input=input)
    assert server.requests()[before:] == []
    return result


CONTROLS = {"ESC": ESC, "BEL": BEL, "C1 CSI": CSI, "OSC title": OSC_TITLE, "RLO": RLO}


@pytest.mark.parametrize("control", CONTROLS.values(), ids=CONTROLS.keys())
@pytest.mark.parametrize(
    "write",
    [
        ["--user-id", "u", "--create", "text {}"],
        ["--user-id", "u", "--create", "text", "--topics", "a,b{}c"],
        ["--user-id", "u", "--memory-id", "m1", "--update", "text {}"],
        ["--user-id", "u", "--memory-id", "m1", "--topics", "t{}t"],
    ],
    ids=["create", "create topics", "update", "topics"],
)
def test_every_write_refuses_what_a_terminal_would_obey(quiet, write, control):
    result = sends_nothing(quiet, *[arg.replace("{}", control) for arg in write])
    assert result.code == 2 and result.stdout == ""
    assert result.stderr.count("\n") == 1 and not OBEYED.search(result.stderr)


@pytest.mark.parametrize("control", CONTROLS.values(), ids=CONTROLS.keys())
@pytest.mark.parametrize("field", ["memory", "topics", "user_id"])
def test_an_import_refuses_lines_holding_what_a_terminal_would_obey(quiet, tmp_path, field, control):
    line = {"memory": "text", "user_id": "u", "topics": ["t"]}
    line[field] = [f"t{control}"] if field == "topics" else f"{line[field]}{control}"
    backup = tmp_path / "in.jsonl"
    backup.write_text(json.dumps({"memory": "fine", "user_id": "u"}) + "\n" + json.dumps(line) + "\n")
    result = sends_nothing(quiet, "--import", backup, "--json")
    assert result.code == 2 and result.error()["type"] == "usage"
    assert "line 2" in result.error()["message"]


def test_a_carriage_return_in_content_is_refused(quiet):
    result = sends_nothing(quiet, "--user-id", "u", "--create", "line\rover it")
    assert result.code == 2 and "CR (U+000D)" in result.stderr


def test_newlines_and_tabs_are_text_and_are_kept(quiet):
    result = run_script("--base-url", quiet.url, "--user-id", "tabs", "--create", "line one\n\tline two", "--json")
    assert result.code == 0, result.stderr
    assert result.json()["memory"] == "line one\n\tline two"
