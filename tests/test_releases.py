"""Every AgentOS release since 2.0: the right result or one clear refusal.

Real servers of one release from each line that answers differently (releases.py
builds their environments) and of the release the project pins, on SQLite, each
seeded once per module. What a server holds is read from its database file, so
no answer of the server under test is taken on trust.
"""

import json
import sqlite3
from collections import Counter
from dataclasses import dataclass

import httpx
import pytest
from conftest import Result, run_script
from releases import OLD_RELEASES, ReleaseServer, start_release_server, version_of

PINNED = "3.1.10"
# One worker starts and seeds each release's server once, not each worker its own.
pytestmark = pytest.mark.xdist_group("releases")


def named(release):
    """How a refusal names the server: releases before 2.6 do not report their version,
    so the script tells their lines apart by what their endpoints show."""
    version = version_of(release)
    if version >= (2, 6):
        return f"agno {release}"
    if version >= (2, 2):
        return f"agno {version[0]}.{version[1]}"
    return "agno 2.0 or 2.1"


CAROLS = 250  # more than the 100 rows a page of agno 2.2 and older holds, and not a multiple of it
ERINS = 150
TOPICS = {"alice": ["drinks", "food", "health"], "bob": ["work"]}


@dataclass
class Row:
    user_id: str
    memory: str
    topics: list
    updated_at: int


@dataclass
class UnderTest(ReleaseServer):
    """A release's server, seeded, with what the tests ask of it."""

    def run(self, *args) -> Result:
        return run_script("--base-url", self.server.url, *args)

    def sql(self, statement, parameters=()):
        with sqlite3.connect(self.server.db_file) as db:
            return db.execute(statement, parameters).fetchall()

    def rows(self, user_id=None):
        """memory_id -> Row, as the database holds them (one user's, or all)."""
        where, parameters = ("WHERE user_id = ?", (user_id,)) if user_id else ("", ())
        found = self.sql(
            f"SELECT memory_id, user_id, memory, topics, updated_at FROM agno_memories {where}", parameters
        )
        return {
            memory_id: Row(user, json.loads(memory), json.loads(topics or "[]"), updated)
            for memory_id, user, memory, topics, updated in found
        }

    def newest_first(self, user_id):
        rows = self.rows(user_id)
        return sorted(rows, key=lambda memory_id: rows[memory_id].updated_at, reverse=True)


@pytest.fixture(scope="module", params=[*OLD_RELEASES, PINNED])
def release(request, tmp_path_factory):
    server = start_release_server(request.param, tmp_path_factory.mktemp(f"agno-{request.param}"), PINNED)
    under_test = UnderTest(request.param, server)
    seed(under_test)
    yield under_test
    server.stop()


def seed(under_test):
    """Through the server's own POST, then timestamps set in the database where a test
    needs an order that seconds-apart writes would not give."""
    memories = [
        ("alice", "Alice likes green tea", ["drinks", "food"]),
        ("alice", "Alice walks to work", ["health"]),
        ("bob", "Bob likes coffee", ["work"]),
        *(("carol", f"Carol note {number}", ["bulk"]) for number in range(CAROLS - 1)),
        ("carol", "Carol keeps bees on the roof", ["bulk"]),
        *(("erin", f"Erin note {number}", ["erin", f"t{number % 3}"]) for number in range(ERINS)),
        ("dave", "Dave first", []),
        ("dave", "Dave second", []),
        ("dave", "Dave third", []),
    ]
    with httpx.Client(base_url=under_test.server.url, timeout=30) as http:
        for user_id, memory, topics in memories:
            http.post("/memories", json={"memory": memory, "user_id": user_id, "topics": topics}).raise_for_status()
    # Carol's memories newest first in seed order: pages have one right answer.
    for rank, memory_id in enumerate(sorted(under_test.rows("carol"))):
        under_test.sql("UPDATE agno_memories SET updated_at = ? WHERE memory_id = ?", (1_700_000_000 + rank, memory_id))
    # Dave's: created first, second, third; updated first, third, second.
    times = {"Dave first": (1000, 3000), "Dave second": (2000, 1000), "Dave third": (3000, 2000)}
    for memory_id, row in under_test.rows("dave").items():
        created, updated = times[row.memory]
        under_test.sql("UPDATE agno_memories SET updated_at = ? WHERE memory_id = ?", (updated, memory_id))
        if under_test.version >= (2, 3):  # no created_at column before
            under_test.sql("UPDATE agno_memories SET created_at = ? WHERE memory_id = ?", (created, memory_id))


def alices_tea(under_test):
    [memory_id] = [key for key, row in under_test.rows("alice").items() if row.memory == "Alice likes green tea"]
    return memory_id


def assert_one_line(result, code):
    assert result.code == code, result.stderr
    assert result.stdout == "" and result.stderr.count("\n") == 1, result.stderr
    assert "Traceback" not in result.stderr and "validation error" not in result.stderr


# ------------------------------------------------------------------ nobody else's


@pytest.mark.parametrize(
    "action",
    [[], ["--update", "taken over"], ["--topics", "taken"], ["--delete"]],
    ids=["show", "update", "topics", "delete"],
)
def test_another_users_memory_is_neither_shown_nor_changed(release, action):
    # agno 2.0 reads and deletes a memory by id whatever user_id says; later releases
    # answer 404. Either way: one line, exit 1, nothing shown or changed.
    before = release.rows()
    result = release.run("--user-id", "bob", "--memory-id", alices_tea(release), *action)
    assert_one_line(result, 1)
    assert release.rows() == before


def test_export_delete_all_and_import_touch_only_that_user(release, tmp_path):
    erins = release.rows("erin")
    others = {key: row for key, row in release.rows().items() if row.user_id != "erin"}
    backup = tmp_path / "erin.jsonl"
    exported = release.run("--user-id", "erin", "--export", backup, "--json")
    assert exported.code == 0 and exported.json()["exported"] == ERINS, exported.stderr

    deleted = release.run("--user-id", "erin", "--delete-all", "--yes", "--json")
    assert deleted.code == 0 and deleted.json()["count"] == ERINS, deleted.stderr
    assert release.rows("erin") == {}
    assert {key: row for key, row in release.rows().items() if row.user_id != "erin"} == others

    imported = release.run("--import", backup, "--json")
    assert imported.code == 0 and imported.json()["created"] == ERINS, imported.stderr
    restored = release.rows("erin")
    assert {key: (row.memory, row.topics) for key, row in restored.items()} == {
        key: (row.memory, row.topics) for key, row in erins.items()
    }
    again = release.run("--import", backup, "--json")
    assert again.code == 0 and again.json()["unchanged"] == ERINS, again.stderr


# ------------------------------------------------------------------ every page


def test_all_of_a_user_beyond_the_servers_page_size(release):
    listed = release.run("--user-id", "carol", "--all", "--json")
    assert listed.code == 0, listed.stderr
    assert [memory["memory_id"] for memory in listed.json()["data"]] == release.newest_first("carol")


def test_pages_larger_than_the_server_serves(release):
    pages = [release.run("--user-id", "carol", "--limit", 150, "--page", page, "--json") for page in (1, 2)]
    assert [page.code for page in pages] == [0, 0], pages[0].stderr + pages[1].stderr
    bodies = [page.json() for page in pages]
    assert [body["meta"]["total_count"] for body in bodies] == [CAROLS, CAROLS]
    shown = [memory["memory_id"] for body in bodies for memory in body["data"]]
    assert shown == release.newest_first("carol")


def test_find_ranks_every_memory_of_a_large_user(release):
    found = release.run("--user-id", "carol", "--find", "who keeps bees", "--limit", 1, "--json")
    assert found.code == 0, found.stderr
    assert [memory["memory"] for memory in found.json()["data"]] == ["Carol keeps bees on the roof"]
    assert found.json()["meta"]["searched"] == CAROLS


def test_topics_filter_over_several_pages(release):
    tea = release.run("--user-id", "alice", "--topics", "drinks", "--json")
    assert tea.code == 0, tea.stderr
    assert [memory["memory"] for memory in tea.json()["data"]] == ["Alice likes green tea"]
    thirds = release.run("--user-id", "erin", "--topics", "t1", "--all", "--json")
    assert thirds.code == 0, thirds.stderr
    assert sorted(memory["memory"] for memory in thirds.json()["data"]) == sorted(
        row.memory for row in release.rows("erin").values() if "t1" in row.topics
    )


# ------------------------------------------------------------------ topics and stats


@pytest.mark.parametrize("user_id", ["alice", "bob", None])
def test_topics_list_of_one_user_or_everyone(release, user_id):
    result = release.run("--topics-list", "--json", *(["--user-id", user_id] if user_id else []))
    assert result.code == 0, result.stderr
    expected = sorted({topic for row in release.rows(user_id).values() for topic in row.topics})
    assert result.json() == expected
    assert user_id is None or expected == TOPICS[user_id]


def test_stats_of_one_user_and_of_everyone(release):
    bob = release.run("--stats", "--user-id", "bob", "--json")
    assert bob.code == 0, bob.stderr
    assert [(row["user_id"], row["total_memories"]) for row in bob.json()["data"]] == [("bob", 1)]
    everyone = release.run("--stats", "--all", "--json")
    assert everyone.code == 0, everyone.stderr
    counts = {row["user_id"]: row["total_memories"] for row in everyone.json()["data"]}
    assert counts == Counter(row.user_id for row in release.rows().values())


# ------------------------------------------------------------------ sorting


@pytest.mark.parametrize("every_page", [False, True], ids=["page", "all"])
def test_sort_by_created_at_or_a_refusal_naming_the_release(release, every_page):
    asked = ["--user-id", "dave", "--sort", "created_at", "--order", "asc", *(["--all"] if every_page else [])]
    result = release.run(*asked, "--json")
    if release.version < (2, 3):
        assert result.code == 1 and result.stdout == "", result.stderr
        error = result.error()
        assert error["type"] == "unsupported"
        assert named(release.release) in error["message"] and "agno 2.3 and later" in error["message"]
        assert_one_line(release.run(*asked), 1)
        return
    assert result.code == 0, result.stderr
    assert [memory["memory"] for memory in result.json()["data"]] == ["Dave first", "Dave second", "Dave third"]
    by_update = release.run("--user-id", "dave", "--json", *(["--all"] if every_page else []))
    assert [memory["memory"] for memory in by_update.json()["data"]] == ["Dave first", "Dave third", "Dave second"]
