"""Reading memories: a user's listing and its pages, one memory by id, the filters
(--search, --topics, --agent-id, --team-id, --since, --until), sorting, --brief,
--topics-list and --stats. On a real AgentOS, both backends.
"""

import datetime
import sys
import time

import pytest

from conftest import ROOT, run_script

sys.path.insert(0, str(ROOT / "scripts"))
import manage_memories  # noqa: E402


def memories_of(result):
    return sorted(memory["memory"] for memory in result.json()["data"])


# -------------------------------------------------------------------------- listing


def test_list_shows_newest_first_with_ids_and_topics(agentos, cli, user):
    old = agentos.seed(user, "Lives in Lisbon", ["location"])
    time.sleep(1.1)  # the server stores seconds
    new = agentos.seed(user, "Prefers dark mode", ["preferences", "ui"])
    result = cli("--user-id", user)
    assert result.code == 0, result.stderr
    assert result.stdout.index(new["memory_id"]) < result.stdout.index(old["memory_id"])
    assert "Prefers dark mode" in result.stdout and "topics: preferences, ui" in result.stdout
    assert result.stdout.startswith(f"2 of 2 memories of user {user}")


def test_list_json_has_data_and_meta(agentos, cli, user):
    agentos.seed(user, "Likes tea")
    result = cli("--user-id", user, "--json")
    assert result.code == 0
    body = result.json()
    assert [memory["memory"] for memory in body["data"]] == ["Likes tea"]
    assert body["meta"] == {"page": 1, "limit": 20, "total_pages": 1, "total_count": 1}
    assert result.stderr == ""


def test_list_only_shows_that_users_memories(agentos, cli, user):
    agentos.seed(user, "Mine")
    agentos.seed(user + "-other", "Not mine")
    assert [m["memory"] for m in cli("--user-id", user, "--json").json()["data"]] == ["Mine"]


def test_empty_list_says_so(cli, user):
    result = cli("--user-id", user)
    assert result.code == 0 and result.stdout.splitlines()[0] == f"no memories of user {user}"
    assert result.stdout.splitlines()[1].startswith(f"hint: user {user} has no memories")


def test_a_user_id_with_no_memories_names_close_ones(fresh_agentos):
    server = fresh_agentos()
    for number in range(3):
        server.seed("maria@example.com", f"fact {number}")
    server.seed("mario", "one fact")
    server.seed("zeno", "unrelated")
    result = run_script("--base-url", server.url, "--user-id", "maria")
    assert result.code == 0 and result.stdout.startswith("no memories of user maria")
    assert "did you mean maria@example.com (3 memories), mario (1 memory)?" in result.stdout
    body = run_script("--base-url", server.url, "--user-id", "maria", "--json").json()
    assert body["hint"].startswith("user maria has no memories; did you mean maria@example.com (3 memories)")
    stats = run_script("--base-url", server.url, "--stats", "--user-id", "maria", "--json")
    assert stats.code == 0 and "maria@example.com" in stats.json()["hint"]


# ---------------------------------------------------------------------------- pages


def test_list_says_how_many_of_the_total_and_how_to_see_more(agentos, cli, user):
    for number in range(7):
        agentos.seed(user, f"fact {number}")
    result = cli("--user-id", user, "--limit", "3")
    assert result.code == 0
    assert result.stdout.startswith(f"3 of 7 memories of user {user}")
    assert "--page 2" in result.stdout and "--all" in result.stdout


def test_page_shows_the_next_memories(agentos, cli, user):
    for number in range(5):
        agentos.seed(user, f"fact {number}")
    first = cli("--user-id", user, "--limit", "2", "--json").json()
    second = cli("--user-id", user, "--limit", "2", "--page", "2", "--json").json()
    assert second["meta"]["page"] == 2
    assert not {m["memory_id"] for m in first["data"]} & {m["memory_id"] for m in second["data"]}


def test_page_past_the_end_reports_the_real_total(agentos, cli, user):
    for number in range(3):
        agentos.seed(user, f"fact {number}")
    result = cli("--user-id", user, "--limit", "2", "--page", "5")
    assert result.code == 0
    assert "page 5 is past the end" in result.stdout and "3 memories" in result.stdout
    body = cli("--user-id", user, "--limit", "2", "--page", "5", "--json").json()
    assert body["data"] == [] and body["meta"]["total_count"] == 3 and body["meta"]["total_pages"] == 2


def test_all_fetches_every_page(agentos, cli, user):
    created = {agentos.seed(user, f"fact {number}")["memory_id"] for number in range(25)}
    body = cli("--user-id", user, "--all", "--json").json()
    assert {m["memory_id"] for m in body["data"]} == created
    assert body["meta"]["total_count"] == 25
    assert cli("--user-id", user, "--all").stdout.startswith(f"25 of 25 memories of user {user}")


# ----------------------------------------------------------------------- one memory


def test_show_one_memory(agentos, cli, user):
    memory = agentos.seed(user, "Speaks Portuguese", ["language"])
    result = cli("--user-id", user, "--memory-id", memory["memory_id"], "--json")
    assert result.code == 0 and result.json() == memory
    assert "Speaks Portuguese" in cli("--user-id", user, "--memory-id", memory["memory_id"]).stdout


def test_show_another_users_memory_is_not_found(agentos, cli, user):
    memory = agentos.seed(user + "-owner", "Secret")
    result = cli("--user-id", user, "--memory-id", memory["memory_id"], "--json")
    assert result.code == 1 and result.error()["type"] == "not_found"
    assert "Secret" not in result.stdout + result.stderr


# -------------------------------------------------------------------------- filters


def test_search_is_case_insensitive_substring(agentos, cli, user):
    agentos.seed(user, "Prefers DARK mode")
    agentos.seed(user, "Likes coffee")
    body = cli("--user-id", user, "--search", "dark", "--json").json()
    assert [m["memory"] for m in body["data"]] == ["Prefers DARK mode"]


def test_topics_filter_means_all_of_them(agentos, cli, user):
    # Sent as a list, the server would read only 'a' and return 'only a' too.
    agentos.seed(user, "only a", ["a"])
    agentos.seed(user, "a and b", ["a", "b"])
    agentos.seed(user, "only b", ["b"])
    assert memories_of(cli("--user-id", user, "--topics", "a,b", "--json")) == ["a and b"]
    assert memories_of(cli("--user-id", user, "--topics", "b", "--json")) == ["a and b", "only b"]


def test_agent_and_team_filters(agentos, cli, user):
    agentos.seed_from_agent(user, "from the agent", agent_id="support-agent")
    agentos.seed_from_agent(user, "from the team", team_id="care-team")
    agentos.seed(user, "by hand")
    assert memories_of(cli("--user-id", user, "--agent-id", "support-agent", "--json")) == ["from the agent"]
    assert memories_of(cli("--user-id", user, "--team-id", "care-team", "--json")) == ["from the team"]
    assert "agent support-agent" in cli("--user-id", user, "--agent-id", "support-agent").stdout


def test_db_id_and_table_pass_through(agentos, cli, user):
    agentos.seed(user, "in the dev db")
    result = cli("--user-id", user, "--db-id", "dev", "--table", "agno_memories", "--json")
    assert result.code == 0 and memories_of(result) == ["in the dev db"]


def test_unknown_db_id_is_a_clear_error(cli, user):
    result = cli("--user-id", user, "--db-id", "no-such-db")
    assert result.code == 1 and "no-such-db" in result.stderr and result.stderr.count("\n") == 1


# ----------------------------------------------------------------- --since, --until


def seed_dated(server, user):
    """Memories updated 1, 3, 10 and 40 days ago, set through agno's own upsert."""
    from agno.db.schemas import UserMemory

    now = datetime.datetime.now(datetime.timezone.utc)
    ages = {"one": 1, "three": 3, "ten": 10, "forty": 40}
    server.database().upsert_memories(
        [
            UserMemory(
                memory=f"Fact from {name} days ago",
                memory_id=f"{user}-{name}",
                user_id=user,
                updated_at=int((now - datetime.timedelta(days=days)).timestamp()),
            )
            for name, days in ages.items()
        ],
        preserve_updated_at=True,
    )
    return now


def listed(server, *args):
    result = run_script("--base-url", server.url, *args, "--json")
    assert result.code == 0, result.stderr
    return sorted(memory["memory_id"].rsplit("-", 1)[1] for memory in result.json()["data"])


def test_since_and_until_filter_a_listing_by_update_time(fresh_agentos, user):
    server = fresh_agentos()
    now = seed_dated(server, user)
    assert listed(server, "--user-id", user, "--since", "7d") == ["one", "three"]
    assert listed(server, "--user-id", user, "--since", "48h") == ["one"]
    assert listed(server, "--user-id", user, "--until", "7d") == ["forty", "ten"]
    since = (now - datetime.timedelta(days=20)).date().isoformat()
    until = (now - datetime.timedelta(days=2)).isoformat()
    assert listed(server, "--user-id", user, "--since", since, "--until", until) == ["ten", "three"]
    human = run_script("--base-url", server.url, "--user-id", user, "--since", "2w")
    assert "3 of 3 memories of user " in human.stdout and " updated since " in human.stdout


def test_since_works_with_find_export_and_delete_all(fresh_agentos, user, tmp_path):
    server = fresh_agentos()
    seed_dated(server, user)
    found = run_script("--base-url", server.url, "--user-id", user, "--find", "fact", "--since", "7d", "--json")
    assert sorted(memory["memory"] for memory in found.json()["data"]) == [
        "Fact from one days ago",
        "Fact from three days ago",
    ]
    assert "updated_since" in found.json()["meta"]
    out = tmp_path / "recent.jsonl"
    exported = run_script("--base-url", server.url, "--user-id", user, "--export", out, "--since", "7d", "--json")
    assert exported.json()["exported"] == 2 and len(out.read_text().splitlines()) == 2
    deleted = run_script(
        "--base-url", server.url, "--user-id", user, "--delete-all", "--until", "7d", "--yes", "--json"
    )
    assert deleted.json()["count"] == 2
    assert sorted(memory["memory"] for memory in server.memories(user)) == [
        "Fact from one days ago",
        "Fact from three days ago",
    ]


def test_a_bad_date_is_a_usage_error_before_anything_is_sent():
    result = run_script("--user-id", "a", "--since", "last tuesday")
    assert result.code == 2 and "--since 'last tuesday' is neither a date or time nor a span" in result.stderr
    result = run_script("--user-id", "a", "--since", "1d", "--until", "2d")
    assert result.code == 2 and "is not before --until" in result.stderr


def test_spans_and_dates_parse_to_utc():
    now = datetime.datetime(2026, 12, 2, 12, 0, tzinfo=datetime.timezone.utc)
    assert manage_memories.parse_when("7d", "--since", now) == now - datetime.timedelta(days=7)
    assert manage_memories.parse_when("12h", "--since", now) == now - datetime.timedelta(hours=12)
    assert manage_memories.parse_when("2w", "--since", now) == now - datetime.timedelta(weeks=2)
    assert manage_memories.parse_when("2026-11-25", "--since", now) == datetime.datetime(
        2026, 11, 25, tzinfo=datetime.timezone.utc
    )
    assert manage_memories.parse_when("2026-11-25T09:00+01:00", "--since", now).utcoffset() == datetime.timedelta(
        hours=1
    )


# -------------------------------------------------------------------------- sorting


def test_sort_and_order(agentos, cli, user):
    import time

    agentos.seed(user, "first")
    time.sleep(1.1)  # the server stores seconds
    second = agentos.seed(user, "second")
    time.sleep(1.1)
    agentos.put(second["memory_id"], user, "second, edited")  # newest update, older creation
    by_update = [m["memory"] for m in cli("--user-id", user, "--json").json()["data"]]
    by_creation = [
        m["memory"] for m in cli("--user-id", user, "--sort", "created_at", "--order", "asc", "--json").json()["data"]
    ]
    assert by_update == ["second, edited", "first"]
    assert by_creation == ["first", "second, edited"]


def test_unknown_sort_field_is_refused(cli, user):
    result = cli("--user-id", user, "--sort", "memory")
    assert result.code == 2 and "invalid choice" in result.stderr


@pytest.mark.parametrize(
    "args, message",
    [
        (["--stats", "--sort", "created_at"], "--stats sorts by count or updated_at"),
        (["--user-id", "a", "--sort", "count"], "--sort count goes with --stats"),
    ],
)
def test_sorts_that_do_not_fit_are_refused(args, message):
    result = run_script(*args)
    assert result.code == 2 and message in result.stderr


# -------------------------------------------------------------------------- --brief


def test_brief_prints_one_line_per_fact_without_ids_or_repeats(cli, agentos, user):
    agentos.seed(user, "Lives in Berlin", ["home"])
    agentos.seed(user, "lives in berlin.")
    agentos.seed(user, "Prefers dark mode")
    result = cli("--user-id", user, "--brief", "--all")
    assert result.code == 0 and sorted(result.stdout.splitlines()) in (
        ["- Lives in Berlin", "- Prefers dark mode"],
        ["- Prefers dark mode", "- lives in berlin."],
    )
    found = cli("--user-id", user, "--find", "where does she live", "--brief")
    assert found.stdout.splitlines()[0] in ("- Lives in Berlin", "- lives in berlin.")
    assert all(line.startswith("- ") for line in found.stdout.splitlines())
    assert cli("--user-id", user, "--brief", "--json").code == 2


# -------------------------------------------------------------------- --topics-list


def test_topics_list_for_all_users_and_for_one(fresh_agentos):
    server = fresh_agentos()
    server.seed("alice", "a", ["ui", "food"])
    server.seed("bob", "b", ["travel"])
    everyone = run_script("--base-url", server.url, "--topics-list", "--json")
    assert everyone.code == 0 and everyone.json() == ["food", "travel", "ui"]
    alice = run_script("--base-url", server.url, "--topics-list", "--user-id", "alice")
    assert alice.stdout.split() == ["food", "ui"]


# -------------------------------------------------------------------------- --stats


def test_stats_for_all_users_and_one(fresh_agentos):
    server = fresh_agentos()
    for number in range(3):
        server.seed("alice", f"a{number}")
    server.seed("bob", "b")
    everyone = run_script("--base-url", server.url, "--stats", "--json")
    assert everyone.code == 0
    counts = {row["user_id"]: row["total_memories"] for row in everyone.json()["data"]}
    assert counts == {"alice": 3, "bob": 1} and everyone.json()["meta"]["total_count"] == 2
    bob = run_script("--base-url", server.url, "--stats", "--user-id", "bob")
    assert "bob" in bob.stdout and "alice" not in bob.stdout
    paged = run_script("--base-url", server.url, "--stats", "--limit", "1")
    assert paged.stdout.startswith("1 of 2 users") and "--page 2" in paged.stdout
    assert len(run_script("--base-url", server.url, "--stats", "--all", "--json").json()["data"]) == 2


def test_stats_sort_count_orders_every_user_not_one_page(fresh_agentos):
    server = fresh_agentos()
    for number in range(5):
        server.seed("heavy", f"fact {number}")  # written first: last by updated_at
    time.sleep(1.1)
    for user in ("light-1", "light-2", "light-3"):
        server.seed(user, "one fact")
    body = run_script("--base-url", server.url, "--stats", "--sort", "count", "--limit", "2", "--json").json()
    assert [row["user_id"] for row in body["data"]][:1] == ["heavy"]
    assert body["meta"]["total_count"] == 4 and body["meta"]["total_pages"] == 2
    ascending = run_script("--base-url", server.url, "--stats", "--sort", "count", "--order", "asc", "--all", "--json")
    assert [row["user_id"] for row in ascending.json()["data"]][-1] == "heavy"
    human = run_script("--base-url", server.url, "--stats", "--sort", "count", "--limit", "1")
    assert "heavy" in human.stdout and "1 of 4 users with memories" in human.stdout


def test_stats_for_one_user_gives_that_users_count(agentos, user):
    agentos.seed(user, "a")
    agentos.seed(user, "b")
    body = run_script("--base-url", agentos.url, "--stats", "--user-id", user, "--json").json()
    assert [(row["user_id"], row["total_memories"]) for row in body["data"]] == [(user, 2)]
