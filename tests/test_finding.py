"""--find: how it ranks (words, their forms and typos, meaning: pure functions), the
ranking set's questions answered by a real AgentOS, and what an answer says (scores,
matches, the words no memory holds, each user); and the literal --search pointing to it.

The model and --find's cache of embeddings: test_finding_by_meaning.py.
"""

import contextlib
import io
import json
import sys

import pytest

from conftest import ROOT, run_script
from ranking_set import CASES, HELD_OUT, MEMORIES, TUNING

sys.path.insert(0, str(ROOT / "scripts"))
import manage_memories  # noqa: E402


# ---------------------------------------------------------- ranking, pure functions


def stem(word):
    import Stemmer

    return Stemmer.Stemmer("english").stemWord(word)


@pytest.mark.parametrize(
    "text, expected",
    [
        ("Wi-Fi", ["wifi", "wi", "fi"]),
        ("Café CRÈME", ["cafe", "creme"]),
        ("user's e-mail.", ["users", "email", "e", "mail"]),
        ("Tomás, 2019!", ["tomas", "2019"]),
    ],
)
def test_words_fold_case_accents_and_hyphens(text, expected):
    assert manage_memories.words(text) == expected


def test_question_words_are_dropped_and_adjacent_words_joined():
    query = manage_memories.Query.parse("What is the user's time zone?", stem)
    assert query.words == ["time", "zone"]
    assert query.terms == ["time", "zone", "timezone"] and query.covers[2] == (0, 1)


def rank(texts, query, limit=10, cosines=None):
    ranking = manage_memories.Ranking(manage_memories.Query.parse(query, stem), stem, limit)
    for number, text in enumerate(texts):
        memory = {"memory_id": str(number), "memory": text, "updated_at": f"2026-01-01T00:00:{59 - number:02}Z"}
        ranking.add(memory, cosines[number] if cosines else 0.0)
    return ranking


def test_a_memory_with_more_of_the_words_ranks_first():
    best, _, _ = rank(["likes tea", "likes green tea a lot", "green"], "green tea").best()
    assert [memory["memory"] for memory in best][:1] == ["likes green tea a lot"]
    assert best[0]["score"] > best[1]["score"] > 0


def test_a_typo_matches_but_counts_less_than_the_word():
    best, _, _ = rank(["birthday in May", "birthdy party"], "birthday").best()
    assert [memory["memory"] for memory in best] == ["birthday in May", "birthdy party"]
    assert best[0]["score"] == 1.0 and best[1]["score"] == manage_memories.FUZZY_WEIGHT


def test_short_words_are_not_matched_with_typos():
    best, matched, _ = rank(["the cat"], "car").best()
    assert matched == 0 and [memory["score"] for memory in best] == [0]


def test_scores_are_the_share_of_the_query_answered_from_0_to_1():
    texts = ["green tea in the morning", "green shoes", "black coffee"]
    best, matched, _ = rank(texts, "green tea").best()
    scores = {memory["memory"]: memory["score"] for memory in best}
    assert scores["green tea in the morning"] == 1.0
    assert 0 < scores["green shoes"] < manage_memories.MATCH_SCORE  # "tea" is the rarer word, and missing
    assert scores["black coffee"] == 0 and matched == 1


def test_a_word_in_most_memories_tells_none_apart():
    # Every memory names the user: her name must not make them all matches.
    texts = [f"Dana {fact}" for fact in ("does not eat meat", "plays the cello", "lives in Berlin")] + [
        f"Dana likes item {number}" for number in range(10)
    ]
    ranking = rank(texts, "is dana vegetarian?")
    best, matched, _ = ranking.best()
    assert matched == 0 and {memory["score"] for memory in best} == {0}
    assert ranking.common_words() == ["dana"] and ranking.unmatched_words() == ["vegetarian"]


def test_a_query_of_only_common_words_still_finds_them():
    ranking = rank([f"Dana fact {number}" for number in range(10)], "dana")
    best, matched, _ = ranking.best()
    assert matched == 10 and ranking.common_words() == []


def test_meaning_counts_as_far_as_it_stands_above_the_typical_memory():
    # Ten memories near 0.5 (they share the user's name with the query), one far closer.
    cosines = [0.5] * 10 + [0.5 + manage_memories.COSINE_LEAD]
    texts = [f"fact {number}" for number in range(11)]
    best, matched, _ = rank(texts, "vegetarian", cosines=cosines).best()
    assert best[0]["memory_id"] == "10" and best[0]["score"] == 1.0 and matched == 1
    assert {memory["score"] for memory in best[1:]} == {0}


def test_words_and_meaning_each_can_make_a_match_and_both_score_higher():
    texts = ["green tea", "matcha latte", "green tea latte", "unrelated"] + [f"filler {n}" for n in range(8)]
    lead = manage_memories.COSINE_LEAD
    cosines = [0.1, 0.1 + lead, 0.1 + lead, 0.1] + [0.1] * 8
    best, matched, _ = rank(texts, "green tea", cosines=cosines).best()
    scores = {memory["memory"]: memory["score"] for memory in best if memory["score"]}
    assert scores == {"green tea latte": 1.0, "green tea": 1.0, "matcha latte": 1.0} and matched == 3
    assert manage_memories.fused(0.5, 0.5) == pytest.approx(0.75)
    assert manage_memories.fused(0.0, 0.3) == pytest.approx(0.3)


def test_ties_keep_the_newest_first_and_only_the_limit():
    ranking = rank([f"fact about tea number {n}" for n in range(50)], "tea", limit=3)
    assert [memory["memory_id"] for memory in ranking.best()[0]] == ["0", "1", "2"]


def test_ties_keep_the_newest_whatever_order_they_arrive_in():
    # Walks read in memory_id order, not by time: the newest may come last.
    texts = [f"fact about tea number {n}" for n in range(50)]
    ranking = manage_memories.Ranking(manage_memories.Query.parse("tea", stem), stem, 3)
    for number in reversed(range(50)):
        ranking.add(
            {"memory_id": str(number), "memory": texts[number], "updated_at": f"2026-01-01T00:00:{59 - number:02}Z"}
        )
    best, matched, _ = ranking.best()
    assert [memory["memory_id"] for memory in best] == ["0", "1", "2"]
    assert matched == 50 and ranking.scanned == 50
    kept = sum(len(group) for group in ranking.groups.values())
    assert kept <= (3 + 1) * len(ranking.groups) and kept < 50


def test_the_closest_in_meaning_are_kept_whatever_order_they_arrive_in():
    # Memory stays flat: a group keeps its `limit` closest, so a close memory read
    # after many far ones still wins, and the count of matches covers them all.
    texts = [f"note {number}" for number in range(2000)]
    cosines = [0.1] * 2000
    cosines[1234] = 0.1 + manage_memories.COSINE_LEAD
    ranking = rank(texts, "anything", limit=3, cosines=cosines)
    best, matched, _ = ranking.best()
    assert best[0]["memory_id"] == "1234" and matched == 1
    assert sum(len(group) for group in ranking.groups.values()) <= (3 + 1) * len(ranking.groups) < 100


def test_the_words_remembered_stay_bounded_when_every_memory_brings_new_ones(monkeypatch):
    # Numbers and ids make the vocabulary grow with the memories (at 1,000,000 memories
    # the words seen held about 120 MB); the answer must not change when they are forgotten.
    monkeypatch.setattr(manage_memories, "JUDGED_WORDS_KEPT", 100)
    texts = [f"order {number} shipped with green tea" for number in range(1000)]
    ranking = rank(texts, "green tea", limit=3)
    assert len(ranking.matches_of_word) <= 100
    best, matched, _ = ranking.best()
    assert [memory["memory_id"] for memory in best] == ["0", "1", "2"]
    assert matched == 1000


# -------------------------------------------------------- ranking, on a real server


@pytest.fixture(scope="module")
def people(tmp_path_factory, backend):
    """The ranking set's memories on a server of their own, with their ids."""
    from conftest import start_server

    db_url = backend.create_database() if backend else None
    server = start_server(tmp_path_factory.mktemp("ranking"), db_url=db_url)
    ids = {}
    for user, memories in MEMORIES.items():
        for key, (text, topics) in memories.items():
            ids[server.seed(user, text, topics)["memory_id"]] = (user, key)
    yield server, ids
    server.stop()


def call(server, *args):
    """main() in-process: the ranking set makes dozens of calls, each a second as a subprocess."""
    stdout, stderr = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        code = manage_memories.main(["--base-url", server.url, *args])
    return code, stdout.getvalue(), stderr.getvalue()


def top_five(server, ids, case, *flags):
    scope = ["--user-id", case.user] if case.user else []
    code, stdout, stderr = call(server, *scope, *flags, "--json")
    assert code == 0, stderr
    return [ids[memory["memory_id"]] for memory in json.loads(stdout)["data"][:5]]


def literal_matches(server, ids, case):
    """The first five memories --search finds for the query (across users: through --export)."""
    if case.user:
        return top_five(server, ids, case, "--search", case.query, "--all")
    code, stdout, stderr = call(server, "--export", "-", "--search", case.query)
    assert code == 0, stderr
    return [ids[json.loads(line)["memory_id"]] for line in stdout.splitlines()[:5]]


def recall_at(server, ids, cases, *flags):
    """(recall@1, recall@5, the questions whose answer is not in the top five)."""
    first, five, misses = 0, 0, []
    for case in cases:
        top = top_five(server, ids, case, "--find", case.query, "--limit", "5", *flags)
        first += top[:1] == [case.answer]
        five += case.answer in top
        if case.answer not in top:
            misses.append(case.query)
    return first / len(cases), five / len(cases), misses


# On SQLite only: the ranking is the script's, over the same listing on either backend
# (that listing is checked on both by the tests around this one), and 83 questions cost 20 s.
@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_find_answers_the_ranking_set_by_meaning_and_reports_recall(people):
    server, ids = people
    for part, cases in (("tuning", TUNING), ("held out", HELD_OUT)):
        at_one, at_five, misses = recall_at(server, ids, cases)
        print(f"\n{part}: recall@1 {at_one:.2f}, recall@5 {at_five:.2f} over {len(cases)} queries; missed {misses}")
        assert at_five >= 0.9 and at_one >= 0.75, part


# The broad-question set (tests/broad_question_set.py) on a real server: --find as a user
# runs it, over the server's listing, judged as tests/benchmarks/broad.py judges it. The
# floors are the figures measured in-process at the commit that added this test (all
# shown, all matched; a question below each), not
# the targets (95% shown, 85% matched on the held-out part), which --find does
# not reach (docs/performance.md, "Broad questions"): the test keeps them from falling.
BROAD_FLOORS = {"tuning": (0.80, 0.12), "held out": (0.73, 0.19), "independent": (0.70, 0.16)}


@pytest.fixture(scope="module")
def broad_people(tmp_path_factory):
    """The broad set's eight users on a SQLite server, with the ids the benchmark gives them."""
    sys.path.insert(0, str(ROOT / "tests" / "benchmarks"))
    from broad import MEMORIES as BROAD_MEMORIES

    from conftest import start_server

    server = start_server(tmp_path_factory.mktemp("broad"))
    for user, memories in BROAD_MEMORIES.items():
        for key, (text, topics) in memories.items():
            server.put(f"{user}-{key}", user, text, topics)
    yield server
    server.stop()


# On SQLite only, for the reason the ranking set's test gives.
def test_find_answers_the_broad_set_on_a_real_server_with_its_measured_recall(broad_people):
    from broad import ALL, SHOWN, Judged, figures
    from broad_question_set import HELD_OUT as BROAD_HELD_OUT
    from broad_question_set import TUNING as BROAD_TUNING
    from broad_question_set_independent import INDEPENDENT as BROAD_INDEPENDENT

    parts = {}
    for part, questions in (("tuning", BROAD_TUNING), ("held out", BROAD_HELD_OUT), ("independent", BROAD_INDEPENDENT)):
        parts[part] = []
        for question in questions:
            code, stdout, stderr = call(
                broad_people, "--find", question.query, "--user-id", question.user, "--json", "--limit", str(ALL)
            )
            assert code == 0, stderr
            answer = json.loads(stdout)
            assert answer["meta"]["ranked_by"] == "words+meaning"
            every = answer["data"]
            parts[part].append(Judged(question, every[:SHOWN], every, answer["meta"]["matched"]))
    for part, judged in parts.items():
        row = figures(judged)
        print(
            f"\n{part}: all shown {row['all shown']:.0%}, all matched {row['all matched']:.0%}, ratio {row['ratio']:.2f}"
        )
        shown_floor, matched_floor = BROAD_FLOORS[part]
        assert row["all shown"] >= shown_floor and row["all matched"] >= matched_floor, part
    assert figures([judged for part in parts.values() for judged in part])["ratio"] <= 3
    # What a user sees at --limit 10 is the same first ten, matches and all.
    question = BROAD_HELD_OUT[0]
    code, stdout, _ = call(broad_people, "--find", question.query, "--user-id", question.user, "--json")
    shown = [memory["memory_id"] for memory in json.loads(stdout)["data"]]
    assert code == 0 and shown == parts["held out"][0].shown


def test_find_by_words_finds_what_the_words_carry_and_beats_search(people):
    server, ids = people
    word_cases = [case for case in CASES if not case.known_miss]
    _, _, misses = recall_at(server, ids, word_cases, "--by", "words")
    found_by_search = sum(case.answer in literal_matches(server, ids, case) for case in word_cases)
    assert not misses, f"--find --by words missed {misses}"
    assert found_by_search < len(word_cases)


def test_the_ranking_set_asks_mostly_what_no_word_answers():
    """Half the questions or more share no content word (in any form) with their answer."""
    stems = {}
    for case in CASES:
        memory = MEMORIES[case.answer[0]][case.answer[1]][0]
        answer_stems = {stem(word) for word in manage_memories.content_words(memory)}
        stems[case.query] = {stem(word) for word in manage_memories.content_words(case.query)} & answer_stems
    no_shared_word = sum(not shared for shared in stems.values())
    assert len(CASES) >= 60 and len({case.answer[0] for case in CASES}) >= 2
    assert no_shared_word >= len(CASES) / 2, f"{no_shared_word} of {len(CASES)}"


def test_find_results_carry_a_score_best_first(people):
    server, _ = people
    code, stdout, _ = call(server, "--user-id", "alice", "--find", "prefers dark mode", "--json")
    body = json.loads(stdout)
    scores = [memory["score"] for memory in body["data"]]
    assert code == 0 and scores == sorted(scores, reverse=True) and 0 <= scores[-1] <= scores[0] <= 1
    assert body["meta"]["shown"] == len(body["data"]) == body["meta"]["limit"]  # weaker ones fill the limit
    assert body["data"][0]["memory"] == "Prefers dark mode in every editor"
    assert body["meta"]["searched"] == len(MEMORIES["alice"])
    assert body["meta"]["matched"] == sum(memory["match"] for memory in body["data"]) >= 1
    assert all(memory["match"] == (memory["score"] >= body["meta"]["match_score"]) for memory in body["data"])


def test_the_users_own_name_makes_no_match_and_the_unmatched_word_is_named(people):
    server, _ = people
    body = json.loads(call(server, "--user-id", "dana", "--find", "is dana vegetarian?", "--json")[1])
    meta = body["meta"]
    assert meta["common_words"] == ["dana"] and meta["unmatched_words"] == ["vegetarian"]
    assert body["data"][0]["memory"] == "Dana does not eat meat or fish" and body["data"][0]["match"]
    assert meta["matched"] <= 3 < meta["searched"] == 40
    words_only = json.loads(
        call(server, "--user-id", "dana", "--find", "is dana vegetarian?", "--by", "words", "--json")[1]
    )
    assert words_only["meta"]["matched"] == 0 and not any(memory["match"] for memory in words_only["data"])
    result = run_script("--base-url", server.url, "--user-id", "dana", "--find", "is dana vegetarian?")
    lines = result.stdout.splitlines()
    verb = "matches" if meta["matched"] == 1 else "match"
    assert lines[0] == f"{meta['matched']} of 40 memories of user dana {verb} 'is dana vegetarian?' (best first)"
    assert lines[1:3] == ["no memory mentions 'vegetarian'", "'dana' is in most memories: it tells none apart"]


def test_a_header_never_claims_more_than_was_found(people):
    server, _ = people
    result = run_script("--base-url", server.url, "--user-id", "dana", "--find", "coffee habits")
    body = json.loads(call(server, "--user-id", "dana", "--find", "coffee habits", "--json")[1])
    matched = body["meta"]["matched"]
    assert 1 <= matched < 40 and body["meta"]["unmatched_words"] == ["habits"]
    assert result.stdout.startswith(f"{matched} of 40 memories of user dana match")
    assert "no memory mentions 'habits'" in result.stdout
    shown = [memory["memory"] for memory in body["data"]]
    assert "Dana has no coffee after 3pm or she cannot sleep" in shown[:2]
    assert "Dana drinks oat milk flat whites, no sugar" in shown  # by meaning: no word of the query in it


@pytest.mark.parametrize(
    "query, answer",
    [
        ("what musical instrument", "Dana plays the cello in an amateur orchestra"),  # a category
        ("favourite kind of fiction", "Dana reads mostly crime novels"),  # a paraphrase
    ],
)
def test_find_answers_by_meaning_what_no_word_matches(people, query, answer):
    server, _ = people
    body = json.loads(call(server, "--user-id", "dana", "--find", query, "--json")[1])
    assert body["data"][0]["memory"] == answer and body["data"][0]["match"]
    assert body["meta"]["ranked_by"] == "words+meaning"


def test_find_limit_defaults_to_ten_and_can_be_set(people):
    server, _ = people
    body = json.loads(call(server, "--find", "prefers", "--json")[1])
    assert body["meta"]["limit"] == 10
    body = json.loads(call(server, "--find", "prefers", "--by", "words", "--limit", "2", "--json")[1])
    assert len(body["data"]) == 2 and body["meta"]["matched"] == 5


def test_find_without_user_names_each_results_user(people):
    server, _ = people
    result = run_script("--base-url", server.url, "--find", "birthday")
    assert result.code == 0
    assert all(f"user {name}" in result.stdout for name in ("alice", "bob", "dana"))
    assert result.stdout.startswith("3 of 76 memories of every user match 'birthday' (best first)")


def test_find_is_read_only(people):
    server, _ = people
    before = len(server.requests())
    result = run_script("--base-url", server.url, "--user-id", "bob", "--find", "coffee")
    assert result.code == 0 and "coffee" in result.stdout.lower(), result.stderr
    sent = server.requests()[before:]
    assert any(line.startswith("GET /memories") for line in sent)
    assert all(line.startswith("GET ") for line in sent)


def test_find_with_no_match_says_how_many_memories_there_are(people):
    server, _ = people
    result = run_script("--base-url", server.url, "--user-id", "carla", "--find", "where is the submarine?")
    assert result.code == 0
    assert result.stdout.startswith(
        "no memory of the 8 memories of user carla answers 'where is the submarine?' well; the closest:\n"
        "no memory mentions 'submarine'\n"
    )
    # carla has no more memories than the limit: every one is shown, so none is left to list
    assert "hint: none matches well; all 8 memories searched are shown, closest first" in result.stdout


def test_the_examples_find_what_they_ask_for(fresh_agentos):
    """The --find examples of the README, SKILL.md and --help, on the memory they create."""
    server = fresh_agentos()
    server.seed("alice", "Prefers dark mode", ["preferences", "ui"])
    queries = ("does alice prefer a dark theme?", "does she prefer a dark theme?", "which colour scheme does she like")
    for query in queries:
        body = run_script("--base-url", server.url, "--user-id", "alice", "--find", query, "--json").json()
        assert [memory["memory"] for memory in body["data"]] == ["Prefers dark mode"], query


def test_find_with_only_question_words_is_a_usage_error():
    result = run_script("--find", "what does the user know?")
    assert result.code == 2 and "only common words" in result.stderr


# ----------------------------------------------------------------- literal --search


def test_search_without_a_match_points_to_find(people):
    server, _ = people
    result = run_script("--base-url", server.url, "--user-id", "alice", "--search", "dark theme")
    assert result.code == 0 and "no memories of user alice containing 'dark theme'" in result.stdout
    assert '--find "dark theme" matches words' in result.stdout
    body = run_script("--base-url", server.url, "--user-id", "alice", "--search", "dark theme", "--json").json()
    assert body["data"] == [] and '--find "dark theme"' in body["hint"]


def test_the_limit_is_what_is_shown_and_the_best_not_shown_is_named():
    texts = ["green tea", "green shoes", "black coffee", "red wine"]
    best, matched, best_not_shown = rank(texts, "green tea", limit=3).best()
    assert [memory["memory"] for memory in best] == ["green tea", "green shoes", "black coffee"]  # then the newest
    assert matched == 1 and best_not_shown == 0
    everything, _, nothing_hidden = rank(texts, "green tea", limit=10).best()
    assert len(everything) == 4 and nothing_hidden is None


# ------------------------------------------------------------ what an answer shows


def test_a_user_with_no_more_memories_than_the_limit_gets_every_one(agentos, user):
    facts = ["Allergic to peanuts", "Follows a vegan diet", "Loves mango sorbet", "Avoids caffeine after noon"]
    for fact in facts:
        agentos.seed(user, fact)
    asked = ("--base-url", agentos.url, "--user-id", user, "--find", "ordering food for her", "--by", "words")
    body = run_script(*asked, "--json").json()
    assert sorted(memory["memory"] for memory in body["data"]) == sorted(facts)
    assert (body["meta"]["shown"], body["meta"]["not_shown"], body["meta"]["best_not_shown"]) == (4, 0, None)
    text = run_script(*asked).stdout.splitlines()
    assert "all 4 memories searched are shown" in text
    assert text[-1] == "hint: none matches well; all 4 memories searched are shown, closest first"


def test_an_answer_says_how_many_it_did_not_show_and_the_best_of_them(agentos, user):
    for number in range(15):
        agentos.seed(user, f"Tea note {number}" if number < 3 else f"Unrelated fact {number}")
    asked = ("--base-url", agentos.url, "--user-id", user, "--find", "tea", "--limit", "5", "--by", "words")
    body = run_script(*asked, "--json").json()
    meta = body["meta"]
    assert (meta["shown"], meta["not_shown"], meta["matched"]) == (5, 10, 3) and len(body["data"]) == 5
    assert meta["best_not_shown"] <= body["data"][-1]["score"]
    assert "10 not shown, the best of them scoring" in run_script(*asked).stdout.splitlines()[-1]


def test_a_user_with_one_memory_is_told_it_is_the_one_shown(agentos, user):
    agentos.seed(user, "Prefers dark mode")
    result = run_script("--base-url", agentos.url, "--user-id", user, "--find", "theme", "--by", "words")
    assert "the one memory searched is shown" in result.stdout and "all 1 " not in result.stdout, result.stdout
