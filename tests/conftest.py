"""Fixtures: real AgentOS servers on loopback, and the script run as a user runs it."""

import atexit
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "scripts" / "manage_memories.py"
DEV_SERVER = ROOT / "scripts" / "dev_server.py"
# Where the machine keeps what outlives a run (the old releases' environments, releases.py),
# read before the script's own cache is pointed elsewhere below. pytest-xdist's workers
# inherit the environment of the process that started them, whose $XDG_CACHE_HOME is by
# then a temporary folder: they read the machine's from RUNNER_CACHE_ENV, which that
# process sets first (else each run built every release's environment again).
RUNNER_CACHE_ENV = "AGENTOS_MEMORY_TESTS_RUNNER_CACHE"
RUNNER_CACHE = Path(
    os.environ.setdefault(RUNNER_CACHE_ENV, os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache"))
)

# Variables that would change what the script talks to; each test sets its own.
CLEAN_ENV = {
    key: value for key, value in os.environ.items() if key not in ("AGENTOS_URL", "AGNO_ADMIN_TOKEN", "OS_SECURITY_KEY")
}
CLEAN_ENV["AGNO_TELEMETRY"] = "false"


def private_folder(prefix):
    """A temporary folder for this process's tests, removed when the process ends."""
    folder = tempfile.mkdtemp(prefix=prefix)
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    return folder


# The script keeps a journal under $XDG_STATE_HOME: the tests' goes to a folder of their
# own, never to the home of whoever runs them. Tests of the journal name one of their own.
CLEAN_ENV["XDG_STATE_HOME"] = private_folder("agentos-memory-tests-state-")
CLEAN_ENV.pop("AGENTOS_MEMORY_JOURNAL", None)
CLEAN_ENV.pop("AGENTOS_MEMORY_JOURNAL_DAYS", None)
# And --find's cache of embeddings under $XDG_CACHE_HOME.
CLEAN_ENV["XDG_CACHE_HOME"] = private_folder("agentos-memory-tests-cache-")
# uv's packages stay in the machine's cache, not that folder: else each `uv run` of the
# tests (the script from its inline metadata, the benchmark's, the old releases'
# environments) downloaded all of its packages again, every run.
CLEAN_ENV.setdefault("UV_CACHE_DIR", str(RUNNER_CACHE / "uv"))
for name in ("AGENTOS_MEMORY_CACHE", "AGENTOS_MEMORY_CACHE_DAYS", "AGENTOS_MEMORY_MODEL"):
    CLEAN_ENV.pop(name, None)
# The same for the tests that call main() in this process.
os.environ["XDG_STATE_HOME"] = CLEAN_ENV["XDG_STATE_HOME"]
os.environ["XDG_CACHE_HOME"] = CLEAN_ENV["XDG_CACHE_HOME"]
os.environ["UV_CACHE_DIR"] = CLEAN_ENV["UV_CACHE_DIR"]
for name in ("AGENTOS_MEMORY_JOURNAL", "AGENTOS_MEMORY_CACHE", "AGENTOS_MEMORY_CACHE_DAYS", "AGENTOS_MEMORY_MODEL"):
    os.environ.pop(name, None)


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
    access_log: Path | None = None

    def requests(self):
        """'METHOD PATH?QUERY STATUS' for every request the server has answered."""
        return self.access_log.read_text().splitlines() if self.access_log.exists() else []

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
            response = http.patch(
                f"/memories/{memory_id}", json={"memory": memory, "user_id": user_id, "topics": topics or []}
            )
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
            UserMemory(
                memory=memory,
                memory_id=memory_id,
                user_id=user_id,
                agent_id=agent_id,
                team_id=team_id,
                topics=topics or [],
            )
        )
        return memory_id

    def database(self):
        if self.db_url:
            from agno.db.postgres import PostgresDb

            return PostgresDb(db_url=self.db_url)
        from agno.db.sqlite import SqliteDb

        return SqliteDb(db_file=str(self.db_file))

    def launch(self, command, env, log_path, port):
        self.command, self.env, self.log_path, self.port = command, env, log_path, port
        self.url = f"http://127.0.0.1:{port}"
        with open(log_path, "a") as log:
            self.process = subprocess.Popen(
                command + ["--port", str(port)], env=env, stdout=log, stderr=subprocess.STDOUT
            )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"dev server exited: {log_path.read_text()}")
            try:
                if httpx.get(f"{self.url}/health?probe=fixture", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError("dev server did not answer /health within 60 s")

    def kill(self):
        """Die at once, as a crashed or OOM-killed server would."""
        self.process.kill()
        self.process.wait()

    def restart(self):
        """Start again on the same port and database."""
        self.launch(self.command, self.env, self.log_path, self.port)

    def empty(self):
        """Delete every memory and forget the requests answered so far: to a test, the server
        is then as one just started (fresh_agentos hands it out again)."""
        database = self.database()
        try:
            database.clear_memories()
        finally:
            database.db_engine.dispose()
        if self.memories():
            raise RuntimeError(f"{self.url} still holds memories after clear_memories()")
        if self.access_log:
            self.access_log.write_text("")

    def stop(self):
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


JWT_KEY = "jwt-signing-key-for-tests-only-0123456789abcdef"


def mint(user, scopes=("memories:read", "memories:write", "memories:delete"), key=JWT_KEY, **claims):
    """A JWT as an identity provider would issue it, signed with the test servers' key."""
    from agno.os import create_dev_token

    return create_dev_token(user, secret=key, scopes=list(scopes), **claims)


ADMIN_JWT_SCOPES = ("agent_os:admin",)


def start_server(
    tmp_path, *, token=None, db_url=None, db_file=None, jwt_key=None, user_isolation=False, audience=None, port=None
):
    """A dev server (on port, else a free one); with jwt_key it verifies JWTs and `token` is an admin JWT for seeding."""
    env = dict(CLEAN_ENV)
    auth = []
    if jwt_key:
        # Isolation comes with a user directory, as deployments that isolate users run it.
        auth = ["--jwt-key", jwt_key] + (["--user-isolation", "--user-directory"] if user_isolation else [])
        auth += ["--jwt-audience", audience] if audience else []
        token = mint("test-admin", ADMIN_JWT_SCOPES, key=jwt_key, audience=audience)
    elif token:
        env["OS_SECURITY_KEY"] = token
    db_file = None if db_url else (db_file or tmp_path / "agentos.db")
    database = ["--db-url", db_url] if db_url else ["--db-file", str(db_file)]
    command = [sys.executable, str(DEV_SERVER), *database, *auth, "--access-log", str(tmp_path / "access.log")]
    server = AgentOSServer("", None, token, db_file, db_url, tmp_path / "access.log")
    server.launch(command, env, tmp_path / "server.log", port or free_port())
    return server


@pytest.hookimpl(tryfirst=True)  # before pytest-xdist reads the groups
def pytest_collection_modifyitems(items):
    """A module's own server (a module-scoped fixture of the module: test_scale's crowded,
    test_finding's people, test_docs' ...) starts, and is filled, on one worker: every test
    that uses one goes to one xdist group, of its module and backend. Spread over both
    workers, each started and filled its own, and the filling is what takes long.

    The backend is in the group's name: a worker then runs a group on one backend, and does
    not switch the session's servers from SQLite to PostgreSQL and back in its middle."""
    for item in items:
        if item.get_closest_marker("xdist_group"):
            continue
        module = item.nodeid.split("::")[0]
        own = [
            definition
            for *_, definition in item._fixtureinfo.name2fixturedefs.values()
            # not one that only seeds the session's server (test_properties' search corpus)
            if definition.scope == "module" and definition.baseid == module and "agentos" not in definition.argnames
        ]
        if own:
            backend = item.callspec.params.get("backend") if hasattr(item, "callspec") else None
            item.add_marker(pytest.mark.xdist_group(f"{Path(module).stem}-{backend or 'any'}"))


@pytest.fixture(scope="session")
def postgres():
    """A PostgreSQL cluster for the session, or a clear reason why there is none."""
    from postgres import PostgresCluster, find_bin_dir

    bin_dir = find_bin_dir()
    if bin_dir is None:
        if os.environ.get("CI"):
            pytest.fail("PostgreSQL binaries not found under /usr/lib/postgresql; .ci/run installs them")
        pytest.skip("PostgreSQL binaries not found under /usr/lib/postgresql (apt-get install postgresql)")
    cluster = PostgresCluster(bin_dir, free_port()).start()
    yield cluster
    cluster.stop()


@pytest.fixture(scope="session", params=["sqlite", "postgres"])
def backend(request):
    """Every end-to-end test runs once on SQLite and once on PostgreSQL, as in production."""
    if request.param == "postgres":
        return request.getfixturevalue("postgres")
    return None


@pytest.fixture(scope="session")
def agentos(tmp_path_factory, backend):
    """One server for the tests that keep to their own user ids."""
    db_url = backend.create_database() if backend else None
    server = start_server(tmp_path_factory.mktemp("agentos"), db_url=db_url)
    yield server
    server.stop()


# The most servers fresh_agentos keeps for its next tests, by backend: a test asks for two at most.
IDLE_SERVERS = 2


@pytest.fixture(scope="session")
def idle_servers():
    """Servers fresh_agentos handed out whose test passed and left them running, by backend:
    the next tests get them emptied instead of new ones. A server's start is seconds of
    CPU (agno's imports), and some 80 tests ask for one."""
    idle = {"sqlite": [], "postgres": []}
    yield idle
    for servers in idle.values():
        for server in servers:
            server.stop()


@pytest.fixture
def fresh_agentos(tmp_path_factory, backend, idle_servers, request):
    """An empty server of one's own (on the same backend), for tests that look at every user.

    Empty, and no other test's while this one runs: it may have served an earlier test of
    this worker, which passed, and has since been emptied (AgentOSServer.empty: no memory,
    an empty access log). A server started with options, left dead by a kill, or used by a
    test that failed is stopped, never handed out again."""
    idle = idle_servers["postgres" if backend else "sqlite"]
    reusable, own = [], []  # servers as start() makes them; servers started with options of the test's
    failed_before = request.session.testsfailed

    def start(**options):
        while not options and idle:
            server = idle.pop()
            if server.process.poll() is not None:  # it died while idle: never handed out
                server.stop()
                continue
            server.empty()
            reusable.append(server)
            return server
        started = own if options else reusable
        if backend and "db_url" not in options:
            options["db_url"] = backend.create_database()
        server = start_server(tmp_path_factory.mktemp("fresh"), **options)
        started.append(server)
        return server

    yield start
    passed = request.session.testsfailed == failed_before
    for server in reusable:
        if passed and len(idle) < IDLE_SERVERS and server.process.poll() is None:
            idle.append(server)
        else:
            own.append(server)
    for server in own:
        server.stop()


# Where what a test proves cannot differ by database, it runs on SQLite alone: a refusal
# made before any memory is sent or read, or an answer that comes from the server's auth
# and not from its rows. The fixtures on `backend` then take its SQLite server.
ON_SQLITE_ALONE = pytest.mark.parametrize("backend", ["sqlite"], indirect=True)


def start_jwt_server(tmp_path_factory, backend, **options):
    db_url = backend.create_database() if backend else None
    return start_server(tmp_path_factory.mktemp("jwt"), db_url=db_url, jwt_key=JWT_KEY, **options)


# The JWT servers are the session's, shared by every module that needs one: each module's
# own cost a start (seconds of CPU) on each worker. Their tests act for user ids of their
# own and compare what the server holds before and after, so what others wrote is no matter.
@pytest.fixture(scope="session")
def isolated(tmp_path_factory, backend):
    """JWT with user isolation: the server binds every non-admin token to its own user."""
    server = start_jwt_server(tmp_path_factory, backend, user_isolation=True)
    yield server
    server.stop()


@pytest.fixture(scope="session")
def scoped(tmp_path_factory, backend):
    """JWT with scopes but no isolation: the server honours the user_id sent."""
    server = start_jwt_server(tmp_path_factory, backend)
    yield server
    server.stop()


TOKEN = "s3cret-token-value"


@pytest.fixture(scope="session")
def secured(tmp_path_factory):
    """A server started with OS_SECURITY_KEY=TOKEN."""
    server = start_server(tmp_path_factory.mktemp("secured"), token=TOKEN)
    yield server
    server.stop()


@pytest.fixture
def user():
    """A user id no other test uses."""
    return f"user-{uuid.uuid4().hex[:12]}"


# The tests that must hold for every action build its command line from its row of
# ACTIONS, so that a new action is covered without editing them. They read only the
# row's name, flag, value, memory_ids, needs_user, options, offline and scopes.
sys.path.insert(0, str(ROOT / "scripts"))
import manage_memories  # noqa: E402

TOPICS_ALONE = "update by --topics alone"
# Every row, and the one command line that reaches a row without its flag (and with
# other arguments): --memory-id with --topics alone is an update of the topics only.
EVERY_ACTION = [*manage_memories.ACTIONS, TOPICS_ALONE]
# The value a flag takes, by the kind its row names (Action.value); "path" is a file,
# below, and "undo" none: --undo's operation id is optional, and the latest is undone.
VALUES = {
    "content": ["a text from the tests"],
    "query": ["what does alice keep private?"],
    "undo": [],
    "topics_added": ["changed"],
    "topics_removed": ["private"],
    "target_user": ["bob"],
    None: [],
}


class NoInvocation(Exception):
    """A row of ACTIONS asks for something invocation() cannot build yet."""


@dataclass
class Invocation:
    action: object  # the row of ACTIONS
    args: list
    env: dict  # a journal of the test's own, so that --history and --undo read only its operations
    writes: Path | None = None  # the file the command writes (an export's): a refused command leaves none
    reads_journal: bool = False  # it acts on the journal: the test puts an operation there first


def invocation(name, tmp_path, memory_id):
    """The command line of the action named (one of EVERY_ACTION), as alice on memory_id,
    with its files in tmp_path."""
    env = {"AGENTOS_MEMORY_JOURNAL": str(tmp_path / "journal")}
    if name == TOPICS_ALONE:
        args = ["--user-id", "alice", "--memory-id", memory_id, "--topics", "changed"]
        return Invocation(manage_memories.ACTIONS["update"], args, env)
    action = manage_memories.ACTIONS[name]
    if action.memory_ids not in ("none", "one", "several", "ids or filters"):
        raise NoInvocation(f"{name}: memory_ids={action.memory_ids!r}")
    if action.value not in (*VALUES, "path") or (action.value and not action.flag):
        raise NoInvocation(f"{name}: value={action.value!r}, flag={action.flag!r}")
    args = ["--user-id", "alice"] if action.needs_user else []
    if action.memory_ids != "none":
        args += ["--memory-id", memory_id]
    value, writes = VALUES.get(action.value), None
    if action.value == "path" and "memories:write" in (action.scopes or ()):
        # It writes memories, so its file is one to read: an import of one line.
        value = [tmp_path / "in.jsonl"]
        value[0].write_text(json.dumps({"memory": "imported", "user_id": "alice", "memory_id": memory_id}) + "\n")
    elif action.value == "path":
        # It only reads memories, so its file is one to write: an export, to a new file.
        writes = tmp_path / "out.jsonl"
        value = [writes]
    if action.flag:
        args += [action.flag, *value]
    if "--yes" in action.options:
        args.append("--yes")
    # Offline rows read only the journal; --undo's value names an operation in it.
    reads_journal = action.offline or action.value == "undo"
    return Invocation(action, [str(arg) for arg in args], env, writes, reads_journal)


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


# Runs a command and writes its peak resident memory (KB) to a file. The script is its
# child, not the test's: a process forked from the test worker (hundreds of MB once it
# has imported agno) counts the worker's pages as its own until it execs.
MEASURED = """
import os, resource, subprocess, sys
report, data_limit, command = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
child = subprocess.Popen(command)
if data_limit:
    try:
        resource.prlimit(child.pid, resource.RLIMIT_DATA, (data_limit, data_limit))
    except ProcessLookupError:
        pass
_, status, usage = os.wait4(child.pid, 0)
with open(report, "w") as file:
    file.write(str(usage.ru_maxrss))
code = os.waitstatus_to_exitcode(status)
sys.exit(code if code >= 0 else 128 - code)
"""


@dataclass
class MeasuredRun:
    result: "Result"
    peak_mb: float
    seconds: float
    killed: bool  # it ran past its time and was killed


def run_script_measured(*args, env=None, timeout=60, data_limit=0, cwd=ROOT):
    """The script run as run_script runs it, with its peak resident memory (os.wait4's
    rusage) and its time; killed after timeout seconds. data_limit: an RLIMIT_DATA in
    bytes, so that a run out of bounds cannot take the machine with it."""
    with tempfile.TemporaryDirectory() as folder:
        out, err, report = (Path(folder) / name for name in ("stdout", "stderr", "peak"))
        command = [sys.executable, "-c", MEASURED, str(report), str(data_limit), sys.executable, str(SCRIPT)]
        started = time.monotonic()
        with open(out, "wb") as stdout, open(err, "wb") as stderr:
            process = subprocess.Popen(
                [*command, *map(str, args)],
                env={**CLEAN_ENV, **(env or {})},
                stdout=stdout,
                stderr=stderr,
                cwd=cwd,
                start_new_session=True,
            )
        try:
            code, killed = process.wait(timeout=timeout), False
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, 9)
            code, killed = process.wait(), True
        seconds = time.monotonic() - started
        peak = int(report.read_text() or 0) / 1024 if report.exists() else float("nan")
        result = Result(code, out.read_text(errors="replace"), err.read_text(errors="replace"))
    return MeasuredRun(result, peak, seconds, killed)


def start_script(*args, env=None, **options):
    """Start the script without waiting for it, for tests that act while it runs."""
    command = [sys.executable, str(SCRIPT), *map(str, args)]
    return subprocess.Popen(
        command, env={**CLEAN_ENV, **(env or {})}, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **options
    )


def wait_for_requests(server, prefix, count, timeout=60):
    """Until the server has answered `count` requests starting with `prefix`."""
    deadline = time.monotonic() + timeout
    while sum(line.startswith(prefix) for line in server.requests()) < count:
        if time.monotonic() > deadline:
            raise AssertionError(f"the server saw fewer than {count} '{prefix}' requests in {timeout} s")
        time.sleep(0.01)


@pytest.fixture
def cli(agentos):
    """Run the script against the shared server, as a user would."""

    def run(*args, **options):
        return run_script("--base-url", agentos.url, *args, **options)

    return run
