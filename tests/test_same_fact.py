"""The same fact in other words, and facts that may disagree: --duplicates and --dedupe
--by meaning, --create's judgement, --conflicts and --find's "older" mark.

The judgement is measured first on the labelled pairs (in-process, no server), so a
change of a threshold or a rule that loses ground fails here before any figure in the
docs goes stale. Then the script runs as a user runs it against a real AgentOS on
SQLite: the judgement reads what the walk gives and sends writes through the one write
path, which do not differ by database (the PostgreSQL runs of those paths are in
test_curation.py and test_bulk.py).
"""

import datetime
import json
import sys

import pytest

from conftest import ROOT, run_script, start_server

sys.path.insert(0, str(ROOT / "tests" / "benchmarks"))


# ------------------------------------------------------------- the labelled pairs


@pytest.fixture(scope="module")
def pair_figures():
    """{part: {figure: share}} as tests/benchmarks/pairs.py reports them."""
    import pairs
    import Stemmer

    import manage_memories

    stem = Stemmer.Stemmer("english").stemWord
    embedder = manage_memories.Embedder(
        manage_memories.MODEL_FOLDER, manage_memories.model_name(manage_memories.MODEL_FOLDER)
    )
    figures = {}
    parts = {
        "tuning": pairs.TUNING,
        "held out": pairs.HELD_OUT,
        "fresh": pairs.FRESH,
        "independent": pairs.INDEPENDENT,
        "independent 2": pairs.INDEPENDENT_2,
    }
    for part, rows in ((part, pairs.pairs(labelled)) for part, labelled in parts.items()):
        facts, cosines, _ = pairs.embed_pairs(embedder, rows, stem)
        counted = pairs.figures(pairs.judged(rows, facts, cosines))
        figures[part] = {name: count / total for name, (count, total) in counted.items()}
    return figures


def test_the_pair_set_has_300_pairs_of_every_label_in_parts_that_share_none():
    import itertools

    from fact_pairs import FRESH, HELD_OUT, LABELS, TUNING, pairs
    from fact_pairs_independent import INDEPENDENT
    from fact_pairs_independent_2 import INDEPENDENT_2
    from fact_pairs_tuning_2 import TUNING_2

    assert len(pairs(TUNING)) + len(pairs(HELD_OUT)) >= 300
    parts = (TUNING, HELD_OUT, FRESH, INDEPENDENT, TUNING_2, INDEPENDENT_2)
    for part in parts:
        assert set(part) == set(LABELS) and all(len(part[label]) >= 5 for label in LABELS)
    seen = [{frozenset((first.lower(), second.lower())) for first, second, _ in pairs(part)} for part in parts]
    shared = [pair for one, other in itertools.combinations(seen, 2) for pair in one & other]
    # FRESH repeats one TUNING pair the other way round (noticed when the third part came);
    # held-out pairs are not edited once measured, so it stays, and nothing else may.
    assert shared == [frozenset(("prefers dark mode", "prefers light mode"))]


def test_the_judgement_holds_its_measured_figures_on_the_held_out_pairs(pair_figures):
    """The figures docs/performance.md and references/cli.md give, with a pair's room
    either way. On the first held-out part (read while the rules were written): 82.9%
    found, 2.7% merged, 90.9% warned, 4.2% false alarms; on the second (FRESH, run only
    once the rules were chosen): 91.4%, 1.8%, 97.0%, 4.1%; on the third (INDEPENDENT,
    written by another author who never saw the rules): 81.0%, 6.7%, 90.3%, 5.6%; on the
    fourth (INDEPENDENT_2, another author, asked with no example from any part): 79.4%,
    6.1%, 86.0%, 5.6%. The issue's targets (90%, 2%) hold on the second alone, not over the
    four (82.7%, 4.6%)."""
    held_out, fresh, independent = (pair_figures[part] for part in ("held out", "fresh", "independent"))
    second = pair_figures["independent 2"]
    assert second["same found"] >= 0.77 and second["different merged"] <= 0.071
    assert second["contradiction found"] >= 0.84 and second["false alarm"] <= 0.068
    assert held_out["same found"] >= 0.81 and fresh["same found"] >= 0.885 and independent["same found"] >= 0.79
    assert held_out["different merged"] <= 0.035 and fresh["different merged"] <= 0.036
    assert independent["different merged"] <= 0.077
    assert held_out["contradiction found"] >= 0.89 and fresh["contradiction found"] >= 0.93
    assert independent["contradiction found"] >= 0.88
    assert held_out["false alarm"] <= 0.053 and fresh["false alarm"] <= 0.062 and independent["false alarm"] <= 0.068


def test_the_thresholds_were_chosen_where_the_tuning_part_meets_the_targets(pair_figures):
    tuning = pair_figures["tuning"]
    assert tuning["same found"] >= 0.9 and tuning["different merged"] <= 0.02


@pytest.mark.parametrize(
    "first, second, person",
    [
        ("Wife's name is Sofia", "Is married to Sofia", False),  # "married to" names the spouse
        ("Tom is her husband", "Is married to Tom", False),
        ("His wife is a lawyer", "His husband is a lawyer", True),
        ("His wife is a lawyer", "His sister is a lawyer", True),
        ("His wife is a lawyer", "Is a lawyer", True),  # no "married": someone else
    ],
)
def test_married_to_someone_names_the_spouse_and_nobody_else(first, second, person):
    import Stemmer

    from manage_memories import Fact, differences

    stem = Stemmer.Stemmer("english").stemWord
    assert ("person" in differences(Fact.of(first, stem), Fact.of(second, stem))) is person


@pytest.mark.parametrize(
    "first, second",
    [
        ("Doesn't eat meat but eats fish", "Doesn't eat fish but eats meat"),
        ("Is vegetarian, not vegan", "Is vegan, not vegetarian"),
        (
            "Is not allergic to peanuts but is allergic to shellfish",
            "Is not allergic to shellfish but is allergic to peanuts",
        ),
        ("Does not want email notifications, wants SMS", "Does not want SMS notifications, wants email"),
    ],
)
def test_two_facts_that_deny_each_others_words_are_never_the_same(first, second):
    # Each denies something, and what one denies the other states: a rule that skipped
    # negations when both sides hold one merged these (cosine 0.93-0.99).
    import Stemmer

    from manage_memories import Fact, differences

    stem = Stemmer.Stemmer("english").stemWord
    assert "negation" in differences(Fact.of(first, stem), Fact.of(second, stem))


# ------------------------------------------------------------- on a real server


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    server = start_server(tmp_path_factory.mktemp("same-fact"))
    yield server
    server.stop()


@pytest.fixture
def env(tmp_path):
    return {"AGENTOS_MEMORY_JOURNAL": str(tmp_path / "journal"), "AGENTOS_MEMORY_CACHE": str(tmp_path / "cache")}


def run(server, env, *args):
    return run_script("--base-url", server.url, *args, env=env)


def seed_aged(server, user_id, memories):
    """Memories with the ages given in days (the API sets updated_at to now): {text: id}."""
    from agno.db.schemas import UserMemory

    now = datetime.datetime.now(datetime.timezone.utc)
    rows = [
        UserMemory(
            memory=text,
            memory_id=f"{user_id}-{index}",
            user_id=user_id,
            topics=topics,
            updated_at=int((now - datetime.timedelta(days=days)).timestamp()),
        )
        for index, (text, days, topics) in enumerate(memories)
    ]
    server.database().upsert_memories(rows, preserve_updated_at=True)
    return {row.memory: row.memory_id for row in rows}


KEN = [
    ("Ken lives in Lyon", 80, ["home"]),
    ("Ken moved to Madrid last month and now lives there", 4, ["home"]),
    ("Ken drinks his coffee black", 30, ["food"]),
    ("Ken takes his coffee without milk or sugar", 20, []),
    ("Ken prefers aisle seats on flights", 60, ["travel"]),
    ("Ken always asks for an aisle seat when flying", 10, ["travel", "preferences"]),
    ("Ken is allergic to peanuts", 50, ["health"]),
    ("Ken is allergic to cats", 40, ["health"]),
    ("Ken's son Leo plays football", 45, ["family"]),
    ("Ken plays tennis on weekends", 35, ["sport"]),
]


def test_duplicates_by_meaning_groups_a_fact_reworded_and_keeps_different_facts_apart(server, env, user):
    ids = seed_aged(server, user, KEN)

    by_words = run(server, env, "--user-id", user, "--duplicates", "--json")
    assert by_words.code == 0, by_words.stderr
    assert by_words.json()["meta"] | {"groups": 0, "by": "words"} == by_words.json()["meta"]

    answer = run(server, env, "--user-id", user, "--duplicates", "--by", "meaning", "--json")
    assert answer.code == 0, answer.stderr
    assert answer.json()["meta"] | {"by": "meaning", "searched": 10} == answer.json()["meta"]
    groups = {
        group["keep"]["memory_id"]: sorted(other["memory_id"] for other in group["remove"])
        for group in answer.json()["data"]
    }
    # The one with the most topics is kept; Lyon/Madrid, peanuts/cats, Ken/his son stay apart.
    assert groups == {
        ids["Ken always asks for an aisle seat when flying"]: [ids["Ken prefers aisle seats on flights"]],
        ids["Ken drinks his coffee black"]: [ids["Ken takes his coffee without milk or sugar"]],
    }

    text = run(server, env, "--user-id", user, "--duplicates", "--by", "meaning")
    assert "2 facts stored more than once among 10 memories" in text.stdout
    assert "(same fact in other words too)" in text.stdout and "close in meaning" in text.stdout


def test_dedupe_by_meaning_deletes_the_rewording_merges_its_topics_and_one_undo_restores_it(server, env, user):
    ids = seed_aged(server, user, KEN[2:6])
    before = {memory["memory_id"]: memory["memory"] for memory in server.memories(user)}

    preview = run(server, env, "--user-id", user, "--dedupe", "--by", "meaning", "--dry-run", "--json")
    assert preview.code == 0, preview.stderr
    # Two deletes; the memories kept hold every topic of those deleted already.
    assert [change["after"] for change in preview.json()["changes"]] == [None, None]
    assert {memory["memory_id"] for memory in server.memories(user)} == set(before)

    done = run(server, env, "--user-id", user, "--dedupe", "--by", "meaning", "--yes", "--json")
    assert done.code == 0, done.stderr
    left = {memory["memory_id"]: memory for memory in server.memories(user)}
    assert set(left) == {ids["Ken drinks his coffee black"], ids["Ken always asks for an aisle seat when flying"]}
    assert left[ids["Ken drinks his coffee black"]]["topics"] == ["food"]

    undone = run(server, env, "--undo", "--json")
    assert undone.code == 0, undone.stderr
    assert {memory["memory_id"]: memory["memory"] for memory in server.memories(user)} == before


def test_create_stores_nothing_for_a_fact_the_user_holds_in_other_words(server, env, user):
    ids = seed_aged(server, user, KEN[6:])
    answer = run(server, env, "--user-id", user, "--create", "Ken has a peanut allergy", "--json")
    assert answer.code == 0, answer.stderr
    assert answer.json() | {"created": False, "by": "meaning"} == answer.json()
    assert answer.json()["memory_id"] == ids["Ken is allergic to peanuts"]
    assert len(server.memories(user)) == 4

    text = run(server, env, "--user-id", user, "--create", "Ken has a peanut allergy")
    assert text.stdout.startswith(f"already stored in other words as {ids['Ken is allergic to peanuts']}")


def test_create_names_the_memory_a_new_one_may_replace_and_stores_it(server, env, user):
    ids = seed_aged(server, user, [KEN[0], *KEN[2:4], KEN[9]])
    answer = run(server, env, "--user-id", user, "--create", "Ken moved to Madrid and now lives there", "--json")
    assert answer.code == 0, answer.stderr
    assert answer.json()["created"] is True
    assert [(older["memory_id"], older["why"]) for older in answer.json()["may_replace"]] == [
        (ids["Ken lives in Lyon"], "change")
    ]
    assert len(server.memories(user)) == 5

    text = run(server, env, "--user-id", user, "--create", "Ken no longer plays tennis", "--dry-run")
    assert text.code == 0, text.stderr
    assert "it may replace" in text.stdout and "Ken plays tennis on weekends" in text.stdout


def test_conflicts_lists_pairs_that_may_disagree_newest_first_and_never_across_users(server, env, user):
    ids = seed_aged(server, user, KEN)
    other = user + "-other"
    seed_aged(server, other, [("Ken lives in Madrid", 1, []), ("Ken is not allergic to anything", 1, [])])

    answer = run(server, env, "--user-id", user, "--conflicts", "--json")
    assert answer.code == 0, answer.stderr
    pairs = [(pair["newer"]["memory_id"], pair["older"]["memory_id"], pair["why"]) for pair in answer.json()["data"]]
    assert (ids["Ken moved to Madrid last month and now lives there"], ids["Ken lives in Lyon"], "change") in pairs
    newest = [pair["newer"]["updated_at"] for pair in answer.json()["data"]]
    assert newest == sorted(newest, reverse=True)
    assert answer.json()["meta"] | {"by": "meaning", "searched": 10} == answer.json()["meta"]
    # Reworded facts are not conflicts, nor are facts about someone else.
    same = {
        ids["Ken prefers aisle seats on flights"],
        ids["Ken drinks his coffee black"],
        ids["Ken's son Leo plays football"],
    }
    assert not same & {memory_id for pair in pairs for memory_id in pair[:2]}

    both = run(server, env, "--user-id", user, "--user-id", other, "--conflicts", "--json")
    assert both.code == 0, both.stderr
    assert all(pair["newer"]["user_id"] == pair["older"]["user_id"] for pair in both.json()["data"])
    assert both.json()["meta"]["searched"] == 12
    said = run(server, env, "--user-id", user, "--user-id", other, "--conflicts").stdout
    assert f"among 12 memories of users {user}, {other}" in said  # not "of all users"

    text = run(server, env, "--user-id", user, "--conflicts")
    assert "newest first" in text.stdout and "the newer one says something changed" in text.stdout


def test_find_shows_the_newer_fact_first_and_marks_the_older_one(server, env, user):
    ids = seed_aged(server, user, KEN)
    answer = run(server, env, "--user-id", user, "--find", "Where does Ken live?", "--json")
    assert answer.code == 0, answer.stderr
    first, second = answer.json()["data"][:2]
    assert first["memory_id"] == ids["Ken moved to Madrid last month and now lives there"]
    assert second["memory_id"] == ids["Ken lives in Lyon"]
    assert second["may_be_replaced_by"] == first["memory_id"] and "may_be_replaced_by" not in first

    text = run(server, env, "--user-id", user, "--find", "Where does Ken live?")
    assert f"older; may be replaced by {first['memory_id']}" in text.stdout


def test_duplicates_by_meaning_of_every_user_never_groups_two_users(server, env, user):
    for owner in (user + "-a", user + "-b"):
        server.seed(owner, "Drinks his coffee black")
    answer = run(
        server, env, "--user-id", user + "-a", "--user-id", user + "-b", "--duplicates", "--by", "meaning", "--json"
    )
    assert answer.code == 0, answer.stderr
    assert answer.json()["data"] == [] and answer.json()["meta"]["searched"] == 2


@pytest.mark.parametrize(
    "action", [["--duplicates", "--by", "meaning"], ["--conflicts"], ["--dedupe", "--by", "meaning", "--yes"]]
)
def test_a_comparison_by_meaning_without_the_model_fails_in_one_line_before_reading(
    server, env, user, tmp_path, action
):
    server.seed(user, "Drinks his coffee black")
    sent = len(server.requests())
    answer = run(
        server, env | {"AGENTOS_MEMORY_MODEL": str(tmp_path / "no-model")}, "--user-id", user, *action, "--json"
    )
    assert answer.code == 1
    assert json.loads(answer.stderr)["error"]["type"] == "model" and len(answer.stderr.splitlines()) == 1
    assert not [line for line in server.requests()[sent:] if line.startswith(("GET /memories", "DELETE", "PATCH"))]


def test_conflicts_shows_up_to_limit_pairs_and_says_how_many_there_are(server, env, user):
    seed_aged(
        server,
        user,
        [
            ("Lives in Lyon", 90, []),
            ("Moved to Madrid and now lives there", 3, []),
            ("Prefers dark mode in every editor", 80, []),
            ("Prefers light mode in every editor", 2, []),
            ("Plays tennis on weekends", 70, []),
            ("No longer plays tennis on weekends", 1, []),
        ],
    )
    every = run(server, env, "--user-id", user, "--conflicts", "--json")
    assert every.code == 0, every.stderr
    assert every.json()["meta"]["pairs"] == every.json()["meta"]["shown"] == 3

    first = run(server, env, "--user-id", user, "--conflicts", "--limit", "1", "--json")
    assert first.json()["meta"] | {"pairs": 3, "shown": 1} == first.json()["meta"]
    assert first.json()["data"][0]["newer"]["memory"] == "No longer plays tennis on weekends"
    assert first.json()["hint"].startswith("2 older pairs not shown: --limit 3")


# The script with a lower cap on the memories of one user held at once: the real cap
# (100,000) would take minutes to fill; the check and its message are the same.
CAPPED = (
    "import sys; sys.path.insert(0, 'scripts'); import manage_memories; "
    "manage_memories.MEANING_USER_MAX = 3; sys.exit(manage_memories.main(sys.argv[1:]))"
)


@pytest.mark.parametrize("action", [["--duplicates", "--by", "meaning"], ["--conflicts"]])
def test_a_user_past_the_cap_fails_in_one_line_before_anything_is_compared(server, env, user, action):
    for number in range(4):
        server.seed(user, f"Drinks {number} cups of coffee a day")
    capped = [sys.executable, "-c", CAPPED]
    answer = run_script("--base-url", server.url, "--user-id", user, *action, "--json", env=env, command=capped)
    assert answer.code == 1 and answer.stdout == ""
    error = json.loads(answer.stderr)["error"]
    assert error["type"] == "too_large" and f"user {user} has 4 memories matching" in error["message"]
    assert len(answer.stderr.splitlines()) == 1


def test_conflicts_of_two_memories_written_in_one_second_calls_the_one_that_says_it_changed_newer(server, env, user):
    # Madrid first: its id sorts before Lyon's, so the tie is not broken by the id alone.
    seed_aged(server, user, [("Moved to Madrid and now lives there", 3, []), ("Lives in Lyon", 3, [])])
    answer = run(server, env, "--user-id", user, "--conflicts", "--json")
    assert answer.code == 0, answer.stderr
    (pair,) = answer.json()["data"]
    assert pair["newer"]["memory"] == "Moved to Madrid and now lives there" and pair["why"] == "change"
