"""SKILL.md, the references and the README say only what is true: their code runs, their
flags, error types and JSON shapes are the script's, they stay short enough to read, and
the skill passes the Agent Skills validator."""

import contextlib
import json
import uuid
import os
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import CLEAN_ENV, DEV_SERVER, JWT_KEY, ROOT, SCRIPT, free_port, run_script

DOCS = ["SKILL.md", "references/api-patterns.md", "references/cli.md", "README.md"]
REFERENCE = "references/cli.md"
SKILL_MAX_CHARS = 9_000
README_MAX_LINES = 350
FENCE = re.compile(r"^```([^\n`]*)\n(.*?)^```", re.MULTILINE | re.DOTALL)
DOC_URL = "http://localhost:7777"
EXPECTED_PRINT = re.compile(r"^[ \t]*print\([^\n]*\)[ \t]+# ([^\n]+)$", re.MULTILINE)


def blocks(doc, language):
    """(number, code) for each fenced block whose info string is exactly `language`."""
    found = []
    for number, match in enumerate(FENCE.finditer((ROOT / doc).read_text()), start=1):
        if match.group(1).strip() == language:
            found.append((number, match.group(2)))
    return found


def block_ids(doc, language):
    return [f"{doc}#{number}" for number, _ in blocks(doc, language)]


def script_blocks(doc):
    return [(number, code) for number, code in blocks(doc, "bash") if "manage_memories.py" in code]


def test_every_unmarked_block_is_run_or_is_not_code():
    """Code blocks are python, bash (run below), or marked no-run; nothing slips through."""
    allowed = {"python", "bash", "bash no-run", "json", "text", "toml", "yaml", ""}
    for doc in DOCS:
        for match in FENCE.finditer((ROOT / doc).read_text()):
            assert match.group(1).strip() in allowed, f"{doc}: unexpected block type {match.group(1)!r}"
    no_run = sum(len(blocks(doc, "bash no-run")) for doc in DOCS)
    assert no_run <= 4, "almost every block should run"


@pytest.fixture(scope="module")
def docs_server(tmp_path_factory):
    from conftest import start_server

    server = start_server(tmp_path_factory.mktemp("docs"))
    yield server
    server.stop()


@pytest.fixture(scope="module")
def jwt_docs_server(tmp_path_factory):
    """For the blocks that show a JWT-secured AgentOS: JWT with user isolation."""
    from conftest import start_server

    server = start_server(tmp_path_factory.mktemp("docs-jwt"), jwt_key=JWT_KEY, user_isolation=True)
    yield server
    server.stop()


ALL_PYTHON = [(doc, number, code) for doc in DOCS for number, code in blocks(doc, "python")]


@pytest.mark.parametrize("doc, number, code", ALL_PYTHON, ids=[f"{d}#{n}" for d, n, _ in ALL_PYTHON])
def test_python_block_runs_and_prints_what_it_says(request, tmp_path, doc, number, code):
    # A block that mints tokens with the server's key runs against a JWT server.
    env = dict(CLEAN_ENV)
    if "JWT_VERIFICATION_KEY" in code:
        server = request.getfixturevalue("jwt_docs_server")
        env["JWT_VERIFICATION_KEY"] = JWT_KEY
    else:
        server = request.getfixturevalue("docs_server")
    program = tmp_path / "block.py"
    program.write_text(code.replace(DOC_URL, server.url))
    result = subprocess.run(
        [sys.executable, program], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120
    )
    assert result.returncode == 0, f"{doc} block {number} failed:\n{result.stderr}"
    # '# value' after a print() states its output: those lines must appear, in order.
    output = iter(result.stdout.splitlines())
    for expected in EXPECTED_PRINT.findall(code):
        assert any(line == expected for line in output), (
            f"{doc} block {number}: expected {expected!r} in\n{result.stdout}"
        )


ALL_BASH = [(doc, number, code) for doc in DOCS for number, code in script_blocks(doc)]


@pytest.mark.parametrize("doc, number, code", ALL_BASH, ids=[f"{d}#{n}" for d, n, _ in ALL_BASH])
def test_script_block_runs(docs_server, tmp_path, doc, number, code):
    # Each block gets a memory of its own to show, update or delete as $MEMORY_ID.
    memory = docs_server.seed("alice", "Prefers dark mode", ["preferences", "ui"])
    url = docs_server.url
    commands = code.replace("uv run scripts/manage_memories.py", f'"{sys.executable}" "{SCRIPT}"')
    if "scripts/dev_server.py" in commands:
        # A block that starts its own server gets a free port and a temporary db instead
        # of the ones it names, and talks to that server.
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        commands = re.sub(r" --(port|db-file) \S+", "", commands)
        commands = re.sub(r"http://localhost:\d+", url, commands)
        own_server = f'"{sys.executable}" "{DEV_SERVER}" --port {port} --db-file "{tmp_path / "quickstart.db"}"'
        commands = commands.replace("uv run scripts/dev_server.py", own_server)
    commands = commands.replace(DOC_URL, url)
    # The docs server has no security key, so it accepts and ignores any token.
    env = dict(CLEAN_ENV, AGENTOS_URL=url, MEMORY_ID=memory["memory_id"], AGNO_ADMIN_TOKEN="docs-token")
    env["AGENTOS_MEMORY_JOURNAL"] = str(tmp_path / "journal")  # what a block undoes is its own
    result = subprocess.run(
        ["bash", "-e", "-o", "pipefail", "-c", commands],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=300,
    )
    assert result.returncode == 0, f"{doc} block {number} failed:\n{result.stderr}"
    assert "Traceback" not in result.stderr


def test_the_readme_ci_job_runs_as_written(tmp_path):
    """The GitHub Actions job of the README: its run steps, in order, one shell each,
    from a checkout (here: the repository), on a free port instead of 7777."""
    import yaml

    ((_, job),) = blocks("README.md", "yaml")
    steps = [step["run"] for step in yaml.safe_load(job)["jobs"]["smoke"]["steps"] if "run" in step]
    assert any("dev_server.py" in step for step in steps) and any("--check --wait" in step for step in steps)
    port = free_port()
    database = tmp_path / "ci.db"
    outputs = []
    left_running = []  # (pid, session): what a step leaves behind (the server), stopped by pid at the end
    try:
        for step in steps:
            commands = step.replace("uv run scripts/manage_memories.py", f'"{sys.executable}" "{SCRIPT}"')
            commands = commands.replace("uv run scripts/dev_server.py", f'"{sys.executable}" "{DEV_SERVER}"')
            commands = commands.replace("7777", str(port)).replace("tmp/ci.db", str(database))
            commands = commands.replace("> tmp-server.log", f"> {tmp_path / 'server.log'}")
            # Each step's shell leads a session of its own, so what it leaves running is
            # found by that session's id, and nothing of another run's.
            shell = subprocess.Popen(
                ["bash", "-e", "-c", commands],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                env=CLEAN_ENV,
                cwd=ROOT,
                start_new_session=True,
            )
            try:
                stdout, stderr = shell.communicate(timeout=180)
            finally:
                left_running += [(pid, shell.pid) for pid in session_members(shell.pid)]
            assert shell.returncode == 0, f"step failed: {step}\n{stdout}\n{stderr}"
            outputs.append(stdout)
        assert json.loads(outputs[1])["ok"] is True
        found = json.loads(outputs[2].splitlines()[-1])
        assert [memory["memory"] for memory in found["data"]] == ["Deployed from CI"]
    finally:
        for pid, session in left_running:
            if session_of(pid) == session:  # still that process, not another that took its pid since
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGTERM)


def session_of(pid):
    try:
        return os.getsid(pid)
    except (ProcessLookupError, PermissionError):
        return None


def session_members(session):
    """The pids of the processes still running in a session."""
    pids = (int(name) for name in os.listdir("/proc") if name.isdigit())
    return [pid for pid in pids if session_of(pid) == session]


FLAG = re.compile(r"(?<![\w#-])--[a-z][a-z-]+")  # not an anchor such as #--find-and-its-cache


def help_flags():
    return set(FLAG.findall(run_script("--help").stdout)) - {"--help"}


def skill_and_its_references():
    """SKILL.md and the references/ files it links: what an agent reads."""
    skill = (ROOT / "SKILL.md").read_text()
    linked = sorted(set(re.findall(r"\]\((references/[\w.-]+\.md)(?:#[^)]*)?\)", skill)))
    return {"SKILL.md": skill} | {path: (ROOT / path).read_text() for path in linked}


def test_skill_md_links_the_reference():
    assert REFERENCE in skill_and_its_references()


def test_every_flag_in_help_is_in_skill_md_or_a_reference_it_links():
    docs = "\n".join(skill_and_its_references().values())
    missing = {flag for flag in help_flags() if not re.search(rf"(?<![\w-]){flag}(?![\w-])", docs)}
    assert not missing, f"neither SKILL.md nor its references mention {sorted(missing)}"


def test_every_flag_skill_md_and_its_references_use_exists():
    # Lines about the dev server name its flags (--port, --jwt-key), not the script's.
    used = set()
    for text in skill_and_its_references().values():
        for line in text.splitlines():
            if "dev_server" not in line:
                used |= set(FLAG.findall(line))
    assert used and used <= help_flags() | {"--help"}, f"flags the script lacks: {sorted(used - help_flags())}"


def test_the_reference_flag_table_has_a_row_for_every_flag_and_no_other():
    rows = set(re.findall(r"^\| `(--[a-z-]+)", (ROOT / REFERENCE).read_text(), re.MULTILINE))
    assert rows == help_flags(), f"missing {sorted(help_flags() - rows)}, extra {sorted(rows - help_flags())}"


def test_skill_passes_the_agent_skills_validator(tmp_path):
    skill = tmp_path / "agentos-api-memory"  # the validator wants folder name == skill name
    skill.mkdir()
    for part in ("SKILL.md", "scripts", "references"):
        source = ROOT / part
        (shutil.copytree if source.is_dir() else shutil.copy)(source, skill / part)
    validator = Path(sys.executable).parent / "agentskills"
    result = subprocess.run([validator, "validate", skill], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_skill_md_stays_short():
    # What an agent reads on every task: the everyday commands and what answers mean.
    # Every other fact is in the reference it links.
    size = len((ROOT / "SKILL.md").read_text())
    assert size <= SKILL_MAX_CHARS, f"SKILL.md has {size:,} characters; move detail to {REFERENCE}"


def test_readme_stays_short():
    lines = len((ROOT / "README.md").read_text().splitlines())
    assert lines <= README_MAX_LINES, f"README.md has {lines} lines; measurements go to docs/"


def declared_error_types():
    """ERROR_TYPES as the script declares it: type -> its usual exit code."""
    sys.path.insert(0, str(ROOT / "scripts"))
    import manage_memories

    return {kind: code for kind, (code, _meaning) in manage_memories.ERROR_TYPES.items()}


def test_every_error_type_the_script_raises_is_declared():
    raised = set(re.findall(r'kind="([a-z_]+)"', SCRIPT.read_text()))
    assert raised and raised <= set(declared_error_types()), sorted(raised - set(declared_error_types()))


def test_the_reference_lists_every_error_type_with_its_exit_code():
    rows = re.findall(r"^\| (\d+) \| `([a-z_]+)` \|", (ROOT / REFERENCE).read_text(), re.MULTILINE)
    assert {kind: int(code) for code, kind in rows} == declared_error_types()


# ------------------------------------------------------------ JSON shapes, written once

KEY = re.compile(r"[a-z_]+")
SHAPE_LITERAL = re.compile(r"`(\{[^`]*\})`")
SPELLED_OUT_SHAPE = re.compile(r'\{"[a-z_]+"(?:: [^,}]+)?(?:, "[a-z_]+"(?:: [^,}]+)?){2,}')


def reference_section(title):
    text = (ROOT / REFERENCE).read_text()
    return text.split(f"\n## {title}\n", 1)[1].split("\n## ", 1)[0]


def table_rows(section):
    """The cells of each row of the section's first table, header and rule left out."""
    lines = [line for line in section.splitlines() if line.startswith("|")]
    return [[cell.strip() for cell in line.strip("|").split(" | ")] for line in lines[2:]]


def literal_keys(literal):
    """The keys at the top of a written shape: {"a", "b": memory, "c": [x with "d"]} -> a, b, c."""
    keys, depth = [], 0
    for match in re.finditer(r'[{}\[\]]|"([a-z_]+)"', literal):
        if match.group(0) in "{[":
            depth += 1
        elif match.group(0) in "}]":
            depth -= 1
        elif depth == 1:
            keys.append(match.group(1))
    return keys


def parse_keys(cell):
    """A cell of the shapes table: (keys always there, keys only sometimes, what is said of
    each key in the parentheses after it). Keys are the `names` outside parentheses; those
    after the first ';' are the optional ones."""
    always, sometimes, said = [], [], {}
    keys, depth, last_key, opened = always, 0, None, None
    position = 0
    while position < len(cell):
        char = cell[position]
        if char == "`":
            end = cell.index("`", position + 1)
            name = cell[position + 1 : end]
            if depth == 0 and KEY.fullmatch(name):
                keys.append(name)
                last_key = name
            position = end
        elif char == "(":
            depth += 1
            if depth == 1:
                opened = position
        elif char == ")":
            depth -= 1
            if depth == 0 and last_key:
                said[last_key] = cell[opened + 1 : position]
        elif char == ";" and depth == 0:
            keys = sometimes
        position += 1
    return always, sometimes, said


def shapes():
    """{result: (keys, meta keys, what is said of its keys)}; the keys any result may add,
    and what is said of those."""
    results, added, said_of_added = {}, set(), {}
    for result, keys, meta in table_rows(reference_section("JSON shapes")):
        always, sometimes, said = parse_keys(keys)
        if keys.startswith("adds "):
            added |= set(always) | set(sometimes)
            said_of_added |= said
        else:
            results[result] = ((always, sometimes), parse_keys(meta)[:2], said)
    return results, added, said_of_added


def check_keys(found, documented, added, what):
    always, sometimes = documented
    assert set(always) <= set(found), f"{what}: the reference lists {sorted(set(always) - set(found))}, not printed"
    unlisted = set(found) - set(always) - set(sometimes) - added
    assert not unlisted, f"{what}: printed {sorted(unlisted)}, which the reference does not list"


def check_items(answer, said, what):
    """Where the reference writes a key's shape ({"a", "b"}), each item printed has those keys."""
    for key, note in said.items():
        literal = SHAPE_LITERAL.search(note)
        if key not in answer or not literal or not isinstance(answer[key], dict | list):
            continue
        expected = set(literal_keys(literal.group(1)))
        also = set(re.findall(r"`([a-z_]+)`", note.replace(literal.group(0), "")))
        items = [answer[key]] if isinstance(answer[key], dict) else answer[key]
        for item in (item for item in items if isinstance(item, dict)):
            assert expected <= set(item) <= expected | also, (
                f"{what}: {key} holds {sorted(item)}, not {sorted(expected)}"
            )


class Shapes:
    """Runs the script with --json against the docs server, each test with a user and a
    journal of its own, and returns what it printed as JSON."""

    def __init__(self, server, tmp_path):
        self.server, self.tmp_path = server, tmp_path
        self.user = f"shapes-{uuid.uuid4().hex[:8]}"
        self.env = {"AGENTOS_MEMORY_JOURNAL": str(tmp_path / "journal")}

    def seed(self, memory, topics=None, user=None):
        return self.server.seed(user or self.user, memory, topics or ["ui"])["memory_id"]

    def __call__(self, *args, code=0, stream="stdout"):
        result = run_script("--base-url", self.server.url, *args, "--json", env=self.env)
        assert result.code == code, f"{args}: exit {result.code}\n{result.stderr}"
        text = result.stdout if stream == "stdout" else result.stderr.strip().splitlines()[-1]
        return json.loads(text)


def show_create_update(run):
    memory_id = run.seed("Prefers dark mode")
    user = ("--user-id", run.user)
    return [
        run(*user, "--memory-id", memory_id),
        run(*user, "--create", "Plays the cello"),
        run(*user, "--create", "plays the cello!"),  # the same fact: nothing created
        run(*user, "--create", "Plays the viola"),  # much like the cello: similar
        run(*user, "--create", "Doesn't play the cello anymore"),  # may replace the cello
        run(*user, "--create", "Is a cello player"),  # the same fact in other words
        run(*user, "--memory-id", memory_id, "--update", "Prefers light mode"),
        run(*user, "--memory-id", memory_id, "--topics", "ui,theme"),
    ]


def listing(run):
    run.seed("Prefers dark mode")
    run.seed("Lives in Berlin", user=run.user + "-b")
    return [run("--user-id", run.user), run(), run("--user-id", run.user, "--user-id", run.user + "-b", "--all")]


def stats(run):
    run.seed("Prefers dark mode")
    return [run("--stats"), run("--stats", "--since", "1d"), run("--stats", "--user-id", run.user)]


def find(run):
    run.seed("Prefers dark mode")
    return [
        run("--user-id", run.user, "--find", "dark theme"),
        run("--find", "dark mode", "--by", "words", "--since", "1d"),
    ]


def duplicates(run):
    run.seed("Lives in Berlin", ["home"])
    run.seed("lives in berlin.")
    run.seed("Drinks his coffee black")
    run.seed("Takes his coffee without milk or sugar")
    user = ("--user-id", run.user)
    return [
        run(*user, "--duplicates"),
        run(*user, "--duplicates", "--by", "meaning"),
        run(*user, "--dedupe", "--by", "meaning", "--dry-run"),
        run(*user, "--dedupe", "--yes"),
    ]


def conflicts(run):
    run.seed("Lives in Lyon")
    run.seed("Moved to Madrid and now lives there")
    return [run("--user-id", run.user, "--conflicts"), run("--conflicts", "--user-id", run.user, "--since", "1d")]


def deletes(run):
    first, second = run.seed("Prefers dark mode"), run.seed("Lives in Berlin")
    user = ("--user-id", run.user)
    answers = [
        run(*user, "--memory-id", first, "--delete", "--dry-run"),
        run(*user, "--memory-id", first, "--memory-id", second, "--delete"),
    ]
    run.seed("Plays the cello")
    return [*answers, run(*user, "--delete-all", "--dry-run"), run(*user, "--delete-all", "--yes", "--erase")]


def topics(run):
    memory_id = run.seed("Prefers dark mode")
    run.seed("Lives in Berlin")
    user = ("--user-id", run.user)
    return [
        run(*user, "--add-topics", "diet", "--memory-id", memory_id),
        run(*user, "--remove-topics", "ui", "--topics", "ui", "--dry-run"),
    ]


def move(run):
    run.seed("Prefers dark mode")
    user = ("--user-id", run.user, "--move-to", run.user + "-new")
    return [run(*user, "--dry-run"), run(*user, "--yes")]


def import_lines(run):
    lines = run.tmp_path / "in.jsonl"
    lines.write_text(json.dumps({"memory": "Drinks green tea", "user_id": run.user}) + "\n")
    return [run("--import", lines, "--dry-run"), run("--import", lines)]


def export_to_file(run):
    run.seed("Prefers dark mode")
    return [run("--user-id", run.user, "--export", run.tmp_path / "out.jsonl")]


def export_to_stdout(run):
    run.seed("Prefers dark mode")
    return [run("--user-id", run.user, "--export", "-", stream="stderr")]


def undo(run):
    run("--user-id", run.user, "--create", "Prefers dark mode")
    return [run("--undo", "--dry-run"), run("--undo")]


def history(run):
    run("--user-id", run.user, "--create", "Prefers dark mode")
    return [run("--history"), run("--history", "--user-id", run.user)]


def an_error(run):
    return [run("--user-id", run.user, "--memory-id", "no-such-memory", code=1, stream="stderr")]


# How to make each result of the reference's table appear; a row without one fails.
RUNS = {
    "a memory: show, `--create`, `--update`, `--topics`": show_create_update,
    "a listing, one user or several": listing,
    "`--stats`": stats,
    "`--find`": find,
    "`--duplicates`, `--dedupe`": duplicates,
    "`--conflicts`": conflicts,
    "every delete: `--delete`, `--delete-all`": deletes,
    "`--add-topics`, `--remove-topics`": topics,
    "`--move-to`": move,
    "`--import`": import_lines,
    "`--export FILE`": export_to_file,
    "`--export -` (on stderr)": export_to_stdout,
    "`--topics-list`": lambda run: [run("--topics-list")],
    "`--whoami`": lambda run: [run("--whoami")],
    "`--check`": lambda run: [run("--check"), run("--check", "--dry-run")],
    "`--history`": history,
    "`--undo`": undo,
    "an error (stderr, exit 1–4)": an_error,
}


def test_every_result_of_the_shapes_table_is_run_below():
    results, added, _ = shapes()
    assert set(results) == set(RUNS)
    assert {"operation", "dry_run", "changes", "cleared", "hint"} <= added


@pytest.mark.parametrize("result", sorted(RUNS))
def test_json_output_has_the_keys_the_reference_lists(docs_server, tmp_path, result):
    results, added, said_of_added = shapes()
    keys, meta_keys, said = results[result]
    for answer in RUNS[result](Shapes(docs_server, tmp_path)):
        if not keys[0] and not keys[1]:  # a plain array
            assert isinstance(answer, list) and all(isinstance(item, str) for item in answer), result
            continue
        check_keys(answer, keys, added, result)
        if meta_keys[0] or meta_keys[1]:
            check_keys(answer["meta"], meta_keys, set(), f"{result}, meta")
        check_items(answer, said | said_of_added, result)


def test_json_shapes_are_spelled_out_only_in_the_reference():
    """Each shape is written once, in the reference; everything else links to it."""
    others = [
        "SKILL.md",
        "README.md",
        "tests/README.md",
        *(str(path.relative_to(ROOT)) for path in (ROOT / "docs").glob("*.md")),
    ]
    for doc in others:
        found = SPELLED_OUT_SHAPE.findall((ROOT / doc).read_text())
        assert not found, f"{doc} spells out a JSON shape ({found[0]}): link to {REFERENCE}#json-shapes instead"
