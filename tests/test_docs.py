"""SKILL.md, the reference and the README say only what is true: their code runs, their
flags and error types are the script's, and the skill passes the Agent Skills validator."""

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import CLEAN_ENV, DEV_SERVER, JWT_KEY, ROOT, SCRIPT, free_port, run_script

DOCS = ["SKILL.md", "references/api-patterns.md", "README.md"]
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


def help_flags():
    return set(re.findall(r"(?<![\w-])--[a-z][a-z-]+", run_script("--help").stdout)) - {"--help"}


def test_every_flag_in_help_is_in_skill_md():
    skill = (ROOT / "SKILL.md").read_text()
    missing = {flag for flag in help_flags() if not re.search(rf"(?<![\w-]){flag}(?![\w-])", skill)}
    assert not missing, f"SKILL.md does not mention {sorted(missing)}"


def test_every_flag_skill_md_uses_exists():
    used = set()
    for line in (ROOT / "SKILL.md").read_text().splitlines():
        if "manage_memories.py" in line or line.startswith(("Other flags", "`--")):
            used |= set(re.findall(r"(?<![\w-])--[a-z][a-z-]+", line))
    assert used and used <= help_flags(), f"SKILL.md uses flags the script lacks: {sorted(used - help_flags())}"


def test_every_flag_in_help_is_in_the_readme_table():
    readme = (ROOT / "README.md").read_text()
    table_flags = set(re.findall(r"^\| `(--[a-z-]+)", readme, re.MULTILINE))
    assert help_flags() <= table_flags, f"README flag table lacks {sorted(help_flags() - table_flags)}"


def test_skill_passes_the_agent_skills_validator(tmp_path):
    skill = tmp_path / "agentos-api-memory"  # the validator wants folder name == skill name
    skill.mkdir()
    for part in ("SKILL.md", "scripts", "references"):
        source = ROOT / part
        (shutil.copytree if source.is_dir() else shutil.copy)(source, skill / part)
    validator = Path(sys.executable).parent / "agentskills"
    result = subprocess.run([validator, "validate", skill], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_skill_md_stays_lean():
    # The Agent Skills guidance is under 500 lines; this keeps well inside it, with room
    # for what an agent needs in one call (undo included) and the rest in the reference.
    assert len((ROOT / "SKILL.md").read_text().splitlines()) < 300


def declared_error_types():
    """ERROR_TYPES as the script declares it: type -> its usual exit code."""
    sys.path.insert(0, str(ROOT / "scripts"))
    import manage_memories

    return {kind: code for kind, (code, _meaning) in manage_memories.ERROR_TYPES.items()}


def test_every_error_type_the_script_raises_is_declared():
    raised = set(re.findall(r'kind="([a-z_]+)"', SCRIPT.read_text()))
    assert raised and raised <= set(declared_error_types()), sorted(raised - set(declared_error_types()))


def test_skill_md_lists_every_error_type_with_its_exit_code():
    rows = re.findall(r"^\| (\d+) \| `([a-z_]+)` \|", (ROOT / "SKILL.md").read_text(), re.MULTILINE)
    assert {kind: int(code) for code, kind in rows} == declared_error_types()
