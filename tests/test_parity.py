"""AgentOSClient is the contract: for every action that maps to one of its calls, the
script sends the server the request agno's own client sends for the same input.

A recording proxy on loopback sits in front of a real AgentOS of each supported
release. The client (agno from the project's environment) is called in this process;
the script runs as a user runs it, with --base-url pointing at another proxy. The
script sends more than the client (it reads a memory before changing or deleting it,
and asks /info or /health what the server is), so the request compared is the
script's of the same method and path; every one of those must match. Each side works
on memories of its own, seeded alike, so ids are compared by the part they play.
"""

import asyncio
import json
from collections.abc import Callable
from dataclasses import dataclass
from importlib.metadata import version

import pytest
from conftest import run_script, start_server
from recorder import RecordingProxy
from releases import OLD_RELEASES, ReleaseServer, start_release_server

# The release the project's environment holds: the client compared against, and a server.
CURRENT = version("agno")
# One worker starts each release's server once for this module.
pytestmark = pytest.mark.xdist_group("parity")

USER = "parity-user"
# Seeded for each side before it acts; "first" and "second" stand for their ids.
SEEDED = {"first": ("Prefers green tea", ["drinks"]), "second": ("Walks to work", ["health"])}
# The dev server's one database, and agno's default name for its memory table.
SCOPE = {"db_id": "dev", "table": "agno_memories"}


@dataclass
class Parity:
    """One action: the script's flags, and the AgentOSClient call that does the same."""

    flags: Callable[[dict], list]  # ids of SEEDED's memories by name -> the script's flags
    call: Callable  # (client, ids, **scope) -> the client's coroutine


PARITY = {
    "list": Parity(
        lambda ids: ["--user-id", USER, "--limit", "20"],
        lambda client, ids, **scope: client.list_memories(user_id=USER, **scope),
    ),
    "get": Parity(
        lambda ids: ["--user-id", USER, "--memory-id", ids["first"]],
        lambda client, ids, **scope: client.get_memory(ids["first"], user_id=USER, **scope),
    ),
    "create": Parity(
        # --allow-duplicate: the script creates without first reading the user's memories.
        lambda ids: ["--user-id", USER, "--create", "Keeps bees", "--topics", "garden,animals", "--allow-duplicate"],
        lambda client, ids, **scope: client.create_memory("Keeps bees", USER, topics=["garden", "animals"], **scope),
    ),
    "update": Parity(
        lambda ids: ["--user-id", USER, "--memory-id", ids["first"], "--update", "Drinks coffee", "--topics", "a,b"],
        lambda client, ids, **scope: client.update_memory(
            ids["first"], "Drinks coffee", USER, topics=["a", "b"], **scope
        ),
    ),
    # AgentOSClient has no topics-only update: it sends the memory's text as it stands.
    "topics-only": Parity(
        lambda ids: ["--user-id", USER, "--memory-id", ids["first"], "--topics", "x"],
        lambda client, ids, **scope: client.update_memory(
            ids["first"], SEEDED["first"][0], USER, topics=["x"], **scope
        ),
    ),
    "delete-one": Parity(
        lambda ids: ["--user-id", USER, "--memory-id", ids["first"], "--delete"],
        lambda client, ids, **scope: client.delete_memory(ids["first"], user_id=USER, **scope),
    ),
    "delete-several": Parity(
        lambda ids: ["--user-id", USER, "--memory-id", ids["first"], "--memory-id", ids["second"], "--delete"],
        lambda client, ids, **scope: client.delete_memories([ids["first"], ids["second"]], user_id=USER, **scope),
    ),
    "topics": Parity(
        lambda ids: ["--topics-list", "--user-id", USER],
        lambda client, ids, **scope: client.get_memory_topics(user_id=USER, **scope),
    ),
    "stats": Parity(
        lambda ids: ["--stats"],
        lambda client, ids, **scope: client.get_user_memory_stats(**scope),
    ),
}
# Releases before 2.6 answer /memory_topics wrongly, so the script reads the user's
# memories instead there: --topics-list is tested on its own, at the end.
TOPICS_RIGHT_FROM = (2, 6)


@pytest.fixture(scope="module")
def current_server(tmp_path_factory):
    server = start_server(tmp_path_factory.mktemp(f"parity-agno-{CURRENT}"))
    yield ReleaseServer(CURRENT, server)
    server.stop()


@pytest.fixture(scope="module", params=[*OLD_RELEASES, CURRENT])
def release(request, tmp_path_factory):
    """A server of request.param's release on SQLite, empty: each test seeds its own."""
    if request.param == CURRENT:
        yield request.getfixturevalue("current_server")
        return
    server = start_release_server(request.param, tmp_path_factory.mktemp(f"parity-agno-{request.param}"), CURRENT)
    yield ReleaseServer(request.param, server)
    server.stop()


def seed(server):
    """SEEDED's memories, stored anew: name -> memory id."""
    return {name: server.seed(USER, memory, topics)["memory_id"] for name, (memory, topics) in SEEDED.items()}


def client_requests(server, action, scope):
    """What AgentOSClient sends for the action, on memories of its own; and their ids."""
    from agno.client import AgentOSClient

    ids = seed(server)
    with RecordingProxy(server.url) as proxy:
        asyncio.run(PARITY[action].call(AgentOSClient(base_url=proxy.url), ids, **scope))
    return proxy.requests, ids


def script_requests(server, flags):
    """What the script sends for `flags`, run as a user runs it."""
    with RecordingProxy(server.url) as proxy:
        result = run_script("--base-url", proxy.url, *flags)
    assert result.code == 0, result.stderr
    return proxy.requests


def as_compared(request, ids):
    """The request as the server reads it, with each seeded memory's id replaced by its name."""
    names = {memory_id: f"{{{name}}}" for name, memory_id in ids.items()}

    def named(value):
        if isinstance(value, str):
            return names.get(value, value)
        if isinstance(value, list):
            return [named(item) for item in value]
        if isinstance(value, dict):
            return {key: named(item) for key, item in value.items()}
        return value

    body = request.json()
    return {
        "method": request.method,
        "path": "/".join(named(segment) for segment in request.path.split("/")),
        "query": named(request.query),
        "body": named(body),
        # The server takes a body for JSON only under a JSON media type (or none), so it is
        # part of the request.
        "content_type": request.content_type if body is not None else None,
    }


def assert_same_requests(server, action, scope_flags=(), scope=None):
    sent_by_client, client_ids = client_requests(server, action, scope or {})
    assert len(sent_by_client) == 1, [str(request) for request in sent_by_client]
    expected = as_compared(sent_by_client[0], client_ids)

    script_ids = seed(server)
    sent_by_script = script_requests(server, [*PARITY[action].flags(script_ids), *scope_flags])
    compared = [as_compared(request, script_ids) for request in sent_by_script]
    kind = (expected["method"], expected["path"])
    same_kind = [request for request in compared if (request["method"], request["path"]) == kind]
    assert same_kind, f"the script sent no {' '.join(kind)}: {json.dumps(compared)}"
    for request in same_kind:
        assert request == expected


@pytest.mark.parametrize("action", [action for action in PARITY if action != "topics"])
def test_script_sends_what_agentos_client_sends(release, action):
    assert_same_requests(release.server, action)


@pytest.mark.parametrize("action", PARITY)
def test_database_and_table_reach_the_server_as_agentos_client_sends_them(current_server, action):
    scope_flags = ["--db-id", SCOPE["db_id"], "--table", SCOPE["table"]]
    assert_same_requests(current_server.server, action, scope_flags, SCOPE)


def test_topics_list_asks_what_agentos_client_asks_or_reads_the_memories_before_2_6(release):
    if release.version >= TOPICS_RIGHT_FROM:
        assert_same_requests(release.server, "topics")
        return
    # /memory_topics before 2.6: SQL for PostgreSQL only (2.2 and older), the first row's
    # topics whoever owns them (2.3, 2.4), a 500 (2.5). The script gathers the topics from
    # the user's memories, page by page, and never asks /memory_topics (docs/design.md, "AgentOS releases").
    seed(release.server)
    sent = script_requests(release.server, PARITY["topics"].flags({}))
    memory_requests = [request for request in sent if request.path.startswith(("/memor", "/user_memory"))]
    assert memory_requests, [str(request) for request in sent]
    for request in memory_requests:
        assert (request.method, request.path, request.body) == ("GET", "/memories", b"")
        assert request.query["user_id"] == [USER]
