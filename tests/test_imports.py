"""A call costs its requests, not its imports: what each kind of call loads."""

import subprocess
import sys

import pytest

from conftest import CLEAN_ENV, SCRIPT, start_server

HEAVY = ("httpx", "agno", "onnxruntime", "numpy", "tokenizers")


def imported(*args, env=None):
    """(exit code, the top-level modules the script imported) for one run."""
    command = [sys.executable, "-X", "importtime", str(SCRIPT), *args]
    result = subprocess.run(command, capture_output=True, text=True, env=CLEAN_ENV | (env or {}))
    modules = {line.split("|")[-1].strip().split(".")[0] for line in result.stderr.splitlines() if "|" in line}
    return result.returncode, modules


@pytest.mark.parametrize(
    "args",
    [["--help"], ["--user-id", "alice", "--limit", "0"], ["--create", "x"]],
    ids=["help", "bad-value", "no-user"],
)
def test_help_and_usage_errors_import_no_http_client_and_no_model(args):
    code, modules = imported(*args)
    assert code in (0, 2)
    assert not modules & set(HEAVY), sorted(modules & set(HEAVY))


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """One SQLite server: what a call imports does not depend on the database."""
    server = start_server(tmp_path_factory.mktemp("imports"))
    yield server
    server.stop()


@pytest.mark.parametrize(
    "args",
    [
        ["--memory-id", "{id}"],
        ["--memory-id", "{id}", "--update", "edited"],
        ["--memory-id", "{id}", "--topics", "edited"],
        ["--create", "a new fact", "--allow-duplicate"],
        ["--topics-list"],
        ["--memory-id", "{id}", "--delete"],
    ],
    ids=["show", "update", "topics", "create", "topics-list", "delete"],
)
def test_single_memory_commands_do_not_import_agno(server, args):
    memory = server.seed("imports-user", "a fact to read")
    args = [arg.replace("{id}", memory["memory_id"]) for arg in args]
    code, modules = imported("--base-url", server.url, "--user-id", "imports-user", *args)
    assert code == 0
    assert "httpx" in modules and not modules & {"agno", "fastapi", "pydantic", "onnxruntime", "numpy"}
