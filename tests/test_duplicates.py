"""Remember without duplicates, clean up in one call, ask "what changed since"
(issue: duplicate-free writes, --duplicates/--dedupe, --since/--until, before and
after, --brief, per-user counts). On a real AgentOS, both backends.
"""

import datetime
import json
import sys

from conftest import ROOT, run_script
from duplicate_set import DIFFERENT_FACTS, SAME_FACT, SAME_FACT_MISSED

sys.path.insert(0, str(ROOT / "scripts"))
import manage_memories  # noqa: E402


# ------------------------------------------------------------ what counts as one fact


def test_the_duplicate_set_finds_every_same_fact_pair_and_merges_no_different_facts():
    found = [pair for pair in SAME_FACT if manage_memories.fact_key(pair[0]) == manage_memories.fact_key(pair[1])]
    merged = [
        pair for pair in DIFFERENT_FACTS if manage_memories.fact_key(pair[0]) == manage_memories.fact_key(pair[1])
    ]
    missed = [
        pair for pair in SAME_FACT_MISSED if manage_memories.fact_key(pair[0]) == manage_memories.fact_key(pair[1])
    ]
    print(f"\nsame fact: {len(found)} of {len(SAME_FACT)} found; different facts merged: {len(merged)}")
    assert found == SAME_FACT and merged == [] and missed == []


# ------------------------------------------------------------------ --create


def create(cli, user, content, *flags):
    result = cli("--user-id", user, "--create", content, "--json", *flags)
    assert result.code == 0, result.stderr
    return result.json()


def test_an_exact_duplicate_is_not_stored_and_the_answer_names_the_memory(cli, agentos, user):
    first = create(cli, user, "Tom prefers dark mode", "--topics", "ui")
    again = create(cli, user, "Tom prefers dark mode")
    assert again["created"] is False and again["memory_id"] == first["memory_id"] and "operation" not in again
    assert len(agentos.memories(user)) == 1
    human = cli("--user-id", user, "--create", "Tom prefers dark mode")
    assert human.stdout.startswith(f"already stored as {first['memory_id']}: nothing created")


def test_a_near_duplicate_is_not_stored(cli, agentos, user):
    first = create(cli, user, "Tom prefers dark mode")
    again = create(cli, user, "tom prefers dark mode too.")
    assert again["created"] is False and again["memory_id"] == first["memory_id"]
    assert [memory["memory"] for memory in agentos.memories(user)] == ["Tom prefers dark mode"]


def test_a_contradiction_is_stored_and_the_old_memory_listed_as_similar(cli, agentos, user):
    dark = create(cli, user, "Tom prefers dark mode")
    light = create(cli, user, "Tom prefers light mode")
    assert light["created"] is True and [memory["memory_id"] for memory in light["similar"]] == [dark["memory_id"]]
    assert "--update that one instead" in light["hint"] and len(agentos.memories(user)) == 2


def test_allow_duplicate_stores_it_anyway(cli, agentos, user):
    create(cli, user, "Tom prefers dark mode")
    again = create(cli, user, "Tom prefers dark mode", "--allow-duplicate")
    assert again["created"] is True and len(agentos.memories(user)) == 2


def test_another_users_memory_is_no_duplicate(cli, agentos, user):
    create(cli, f"{user}-other", "Prefers dark mode")
    assert create(cli, user, "Prefers dark mode")["created"] is True


# ------------------------------------------------------------ --duplicates, --dedupe


def seed_with_duplicates(server, user):
    """Three facts stated twice or three times, with ids that fall far apart in memory_id
    order (so a walk in small pages meets a group's members on different pages), among
    fillers; updated_at set, so the rule's choice is known."""
    from agno.db.schemas import UserMemory

    base = int(datetime.datetime(2026, 11, 1, tzinfo=datetime.timezone.utc).timestamp())
    rows = [
        ("a-01", "Tom prefers dark mode", ["ui"], 1),
        ("z-01", "tom prefers dark mode too", ["ui", "preferences"], 2),  # most topics: kept
        ("m-01", "Lives in Berlin", [], 3),
        ("y-01", "Lives in Berlin.", [], 5),  # newest of equal topics: kept
        ("b-01", "lives in berlin", ["home"], 4),  # ...unless one has more topics: this one
        ("c-01", "Tom prefers light mode", [], 6),  # a different fact
    ] + [(f"f-{number:03d}", f"Filler fact number {number}", [], 0) for number in range(60)]
    server.database().upsert_memories(
        [
            UserMemory(
                memory=text, memory_id=f"{user}-{key}", user_id=user, topics=topics, updated_at=base + hours * 3600
            )
            for key, text, topics, hours in rows
        ],
        preserve_updated_at=True,
    )


def test_duplicates_lists_groups_across_pages_with_the_memory_kept_by_the_rule(fresh_agentos, user):
    from proxy import GatedProxy

    server = fresh_agentos()
    seed_with_duplicates(server, user)
    with GatedProxy(server.url, cap=10) as proxy:
        body = run_script("--base-url", proxy.url, "--user-id", user, "--duplicates", "--json").json()
        assert proxy.pages >= 5
    groups = {group["keep"]["memory_id"]: group for group in body["data"]}
    assert set(groups) == {f"{user}-z-01", f"{user}-b-01"}
    dark, berlin = groups[f"{user}-z-01"], groups[f"{user}-b-01"]
    assert [memory["memory_id"] for memory in dark["remove"]] == [f"{user}-a-01"]
    assert dark["topics"] == ["ui", "preferences"]
    assert [memory["memory_id"] for memory in berlin["remove"]] == [f"{user}-y-01", f"{user}-m-01"]
    assert [memory["exact"] for memory in berlin["remove"]] == [False, True]
    assert body["meta"] | {"rule": None} == {
        "user_id": user,
        "searched": 66,
        "groups": 2,
        "duplicates": 3,
        "rule": None,
    }


def test_dedupe_dry_run_changes_nothing_and_yes_does_exactly_what_was_listed(fresh_agentos, user):
    server = fresh_agentos()
    seed_with_duplicates(server, user)
    before = {memory["memory_id"]: memory for memory in server.memories(user)}
    dry = run_script("--base-url", server.url, "--user-id", user, "--dedupe", "--dry-run", "--json").json()
    assert {memory["memory_id"]: memory for memory in server.memories(user)} == before
    refused = run_script("--base-url", server.url, "--user-id", user, "--dedupe")
    assert refused.code == 2 and "would delete 3 duplicates in 2 groups" in refused.stderr
    done = run_script("--base-url", server.url, "--user-id", user, "--dedupe", "--yes", "--json").json()
    assert done["data"] == dry["data"] and done["dry_run"] is False
    listed = {memory["memory_id"] for group in dry["data"] for memory in group["remove"]}
    after = {memory["memory_id"]: memory for memory in server.memories(user)}
    assert set(after) == set(before) - listed
    assert after[f"{user}-b-01"]["topics"] == ["home"]  # nothing to merge: the others had none
    assert after[f"{user}-z-01"]["topics"] == ["ui", "preferences"]
    undone = run_script("--base-url", server.url, "--undo", "--json")
    assert undone.code == 0 and set(memory["memory_id"] for memory in server.memories(user)) == set(before)


def test_dedupe_merges_the_others_topics_onto_the_memory_kept(fresh_agentos, user):
    server = fresh_agentos()
    server.put(f"{user}-1", user, "Likes green tea", ["drinks"])
    server.put(f"{user}-2", user, "likes green tea", ["food", "drinks"])
    done = run_script("--base-url", server.url, "--user-id", user, "--dedupe", "--yes", "--json")
    assert done.code == 0, done.stderr
    (kept,) = server.memories(user)
    assert kept["memory_id"] == f"{user}-2" and kept["topics"] == ["food", "drinks"]


def test_duplicates_of_every_user_are_grouped_per_user(fresh_agentos, user):
    server = fresh_agentos()
    for name in ("ann", "bo"):
        server.seed(f"{user}-{name}", "Prefers tea")
    server.seed(f"{user}-bo", "prefers tea")
    body = run_script("--base-url", server.url, "--duplicates", "--json").json()
    assert [group["user_id"] for group in body["data"]] == [f"{user}-bo"] and body["meta"]["user_id"] is None


# ------------------------------------------------------------------ --since, --until


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


# ------------------------------------------------------ before and after, --brief, counts


def test_update_shows_what_the_memory_held_before(cli, agentos, user):
    memory = agentos.seed(user, "Lives in Lisbon", ["home"])
    result = cli("--user-id", user, "--memory-id", memory["memory_id"], "--update", "Lives in Porto", "--json")
    assert result.json()["before"] == {"memory": "Lives in Lisbon", "topics": ["home"]}
    assert result.json()["memory"] == "Lives in Porto"
    human = cli("--user-id", user, "--memory-id", memory["memory_id"], "--topics", "home,city")
    assert "before:\n  Lives in Porto\n  topics: home" in human.stdout and "topics: home, city" in human.stdout


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


def test_export_and_import_count_users_and_memories_per_user(fresh_agentos, user, tmp_path):
    server = fresh_agentos()
    for name, count in (("ann", 2), ("bo", 3)):
        for number in range(count):
            server.seed(f"{user}-{name}", f"fact {number}")
    out = tmp_path / "all.jsonl"
    exported = run_script("--base-url", server.url, "--export", out, "--json").json()
    assert exported["users"] == 2 and exported["per_user"] == {f"{user}-ann": 2, f"{user}-bo": 3}
    human = run_script("--base-url", server.url, "--export", out)
    assert human.stdout.startswith("exported 5 memories of 2 users to ")
    imported = run_script("--base-url", server.url, "--import", out, "--json").json()
    assert imported["users"] == 2 and imported["per_user"] == {f"{user}-ann": 2, f"{user}-bo": 3}
    assert "(5 memories of 2 users)" in run_script("--base-url", server.url, "--import", out).stdout
