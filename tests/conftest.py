"""Fixtures: real AgentOS servers on loopback, and the script run as a user runs it."""

import json
import os
import socket
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "scripts" / "manage_memories.py"
DEV_SERVER = ROOT / "scripts" / "dev_server.py"
# Variables that would change what the script talks to; each test sets its own.
CLEAN_ENV = {key: value for key, value in os.environ.items() if key not in ("AGENTOS_URL", "AGNO_ADMIN_TOKEN", "OS_SECURITY_KEY")}
CLEAN_ENV["AGNO_TELEMETRY"] = "false"


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class AgentOSServer:
    """A running dev server, with an HTTP client for seeding and checking its state."""

    url: str
    process: subprocess.Popen
    token: str | None = None
    db_file: Path | None = None
    db_url: str | None = None

    def http(self):
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=30)

    def seed(self, user_id, memory, topics=None):
        with self.http() as http:
            response = http.post("/memories", json={"memory": memory, "user_id": user_id, "topics": topics or []})
            response.raise_for_status()
            return response.json()

    def put(self, memory_id, user_id, memory, topics=None):
        """Write a memory with a chosen id (PATCH upserts), as the tests' own setup."""
        with self.http() as http:
            response = http.patch(f"/memories/{memory_id}", json={"memory": memory, "user_id": user_id, "topics": topics or []})
            response.raise_for_status()
            return response.json()

    def memories(self, user_id=None):
        """Everything the server holds (for one user), straight from the API."""
        params = {"limit": 100000}
        if user_id is not None:
            params["user_id"] = user_id
        with self.http() as http:
            response = http.get("/memories", params=params)
            response.raise_for_status()
            return response.json()["data"]

    def seed_from_agent(self, user_id, memory, agent_id=None, team_id=None, topics=None):
        """Store a memory the way an agent run does, with agent_id/team_id, which the
        HTTP API cannot set: through agno's own database layer on the same database."""
        from agno.db.schemas import UserMemory

        memory_id = f"agent-{uuid.uuid4().hex[:12]}"
        self.database().upsert_user_memory(
            UserMemory(memory=memory, memory_id=memory_id, user_id=user_id, agent_id=agent_id, team_id=team_id, topics=topics or [])
        )
        return memory_id

    def database(self):
        if self.db_url:
            from agno.db.postgres import PostgresDb

            return PostgresDb(db_url=self.db_url)
        from agno.db.sqlite import SqliteDb

        return SqliteDb(db_file=str(self.db_file))

    def stop(self):
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def start_server(tmp_path, *, token=None, db_url=None, port=None):
    port = port or free_port()
    env = dict(CLEAN_ENV)
    if token:
        env["OS_SECURITY_KEY"] = token
    command = [sys.executable, str(DEV_SERVER), "--port", str(port)]
    command += ["--db-url", db_url] if db_url else ["--db-file", str(tmp_path / "agentos.db")]
    log = open(tmp_path / f"server-{port}.log", "w")
    process = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
    db_file = None if db_url else tmp_path / "agentos.db"
    server = AgentOSServer(f"http://127.0.0.1:{port}", process, token, db_file, db_url)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"dev server exited: {(tmp_path / f'server-{port}.log').read_text()}")
        try:
            if httpx.get(f"{server.url}/health", timeout=1).status_code == 200:
                return server
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    server.stop()
    raise RuntimeError("dev server did not answer /health within 60 s")


@pytest.fixture(scope="session")
def agentos(tmp_path_factory):
    """One server for the tests that keep to their own user ids."""
    server = start_server(tmp_path_factory.mktemp("agentos"))
    yield server
    server.stop()


@pytest.fixture
def fresh_agentos(tmp_path_factory):
    """An empty server of one's own, for tests that look at every user."""
    servers = []

    def start(**options):
        server = start_server(tmp_path_factory.mktemp("fresh"), **options)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


@pytest.fixture
def user():
    """A user id no other test uses."""
    return f"user-{uuid.uuid4().hex[:12]}"


@dataclass
class Result:
    code: int
    stdout: str
    stderr: str

    def json(self):
        return json.loads(self.stdout)

    def error(self):
        return json.loads(self.stderr)["error"]


def run_script(*args, env=None, input=None, timeout=120, command=None):
    full_env = dict(CLEAN_ENV)
    full_env.update(env or {})
    process = subprocess.run(
        (command or [sys.executable, str(SCRIPT)]) + [str(arg) for arg in args],
        env=full_env,
        input=input,
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
    )
    return Result(process.returncode, process.stdout, process.stderr)


@pytest.fixture
def cli(agentos):
    """Run the script against the shared server, as a user would."""

    def run(*args, **options):
        return run_script("--base-url", agentos.url, *args, **options)

    return run
