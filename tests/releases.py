"""A uv environment per older agno release, for the tests against their servers (issue 13).

The project pins agno 3.1.10 for its own client; servers run whatever their owners
deployed. Each older release gets an environment of its own, built once per machine
and reused (a lock keeps parallel test workers from building the same one twice).
"""

import fcntl
import os
import shutil
import subprocess
import sys

from dataclasses import dataclass

import pytest
from conftest import CLEAN_ENV, ROOT, RUNNER_CACHE, AgentOSServer, free_port, start_server

# One release of each line that answers differently (see docs/design.md, "AgentOS releases");
# AGENTOS_TEST_RELEASES=2.1.10,2.3.26,... tests others (the table was made with every line).
OLD_RELEASES = tuple(
    filter(None, os.environ.get("AGENTOS_TEST_RELEASES", "2.0.11,2.2.13,2.4.8,2.5.17").replace(" ", "").split(","))
)
# Resolve every environment as of one day, so no later upload changes what is tested.
RESOLVED_AS_OF = "2026-11-20T00:00:00Z"
# SQLite needs SQLAlchemy, which agno[os] leaves out (2.2 on import its asyncio part too);
# releases before 2.4 build an agent, which imports the OpenAI client.
REQUIREMENTS = ("sqlalchemy[asyncio]", "openai")
# The runner's cache, not the tests' temporary one: built once per machine, not once per run.
# Not the script's own cache folder (agentos-api-memory), which it keeps to files of its own.
CACHE = RUNNER_CACHE / "agentos-api-memory-tests" / "releases"


def release_python(version):
    """The Python of an environment holding agno==version and what its SQLite server needs."""
    uv = shutil.which("uv")
    if uv is None:
        reason = "uv is not on PATH: the old-release servers' environments are built with it (run: uv run pytest)"
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)
    requirements = [f"agno[os]=={version}", *REQUIREMENTS]
    home = CACHE / f"agno-{version}"
    python = home / "bin" / "python"
    built = home / "built-from.txt"  # written last: an interrupted build is redone
    wanted = f"{' '.join(requirements)} as of {RESOLVED_AS_OF}, Python {sys.version.split()[0]}\n"
    CACHE.mkdir(parents=True, exist_ok=True)
    with open(CACHE / f"agno-{version}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not built.exists() or built.read_text() != wanted:
            shutil.rmtree(home, ignore_errors=True)
            env = {key: value for key, value in os.environ.items() if key != "VIRTUAL_ENV"}
            install = [uv, "pip", "install", "--quiet", "--python", str(python), *requirements]
            for command in (
                [uv, "venv", "--quiet", "--python", sys.executable, str(home)],
                [*install, "--exclude-newer", RESOLVED_AS_OF],
            ):
                done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
                if done.returncode != 0:
                    raise RuntimeError(f"building the agno {version} environment failed: {done.stderr.strip()}")
            built.write_text(wanted)
    return python


def version_of(release):
    return tuple(int(part) for part in release.split("."))


@dataclass
class ReleaseServer:
    """A running AgentOS of one agno release."""

    release: str
    server: AgentOSServer

    @property
    def version(self):
        return version_of(self.release)


def start_release_server(release, home, current):
    """An empty AgentOS of `release` on SQLite in `home`: the project's own agno for
    `current`, else the release's environment (release_python) running release_server.py."""
    if release == current:
        return start_server(home)
    server = AgentOSServer("", None, db_file=home / "agentos.db")
    command = [
        str(release_python(release)),
        str(ROOT / "tests" / "release_server.py"),
        "--db-file",
        str(server.db_file),
    ]
    server.launch(command, CLEAN_ENV, home / "server.log", free_port())
    return server
