"""Any value either round-trips exactly or is refused before sending (hypothesis).

These call the script's main() in-process against the real server: a subprocess
costs about a second of imports, which would limit hypothesis to a handful of
examples. The subprocess path is covered by the other test files.
"""

import contextlib
import io
import json
import re
import sys
from urllib.parse import unquote, urlsplit

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import ROOT

sys.path.insert(0, str(ROOT / "scripts"))
import manage_memories  # noqa: E402

# Unicode text with what breaks naive tools: quotes, control characters, LIKE
# wildcards, path and URL syntax, and lengths around the limits.
NASTY = st.sampled_from(
    list("\"'%_/\\.?#&=+ \t\n\r\x00\x01\x7f,;:<>{}[]é漢🙂\u200b\ufeff") + ["..", "%2e", "../health"]
)
TEXT = st.lists(st.one_of(NASTY, st.text(max_size=8)), max_size=12).map("".join)
LONG = st.integers(min_value=4990, max_value=5010).map(lambda n: "x" * n)
CONTENT = st.one_of(TEXT, LONG, TEXT.map(lambda text: text + "y" * 4995))
IDS = st.one_of(TEXT, st.text(max_size=300))
MEMORY_PATHS = re.compile(r"^(/memories(/[A-Za-z0-9][A-Za-z0-9_.:-]*)?|/memory_topics|/user_memory_stats)$")
# What the script asks to learn the server's release and auth mode: plain GETs, no query,
# so a memory id like "../health" that escaped its path would still be caught.
DESCRIPTION_REQUESTS = {"GET /info", "GET /health", "GET /optimize-memories"}
SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def call(server, *args):
    """main(argv) as the script's user would call it, capturing what it prints."""
    stdout, stderr = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        code = manage_memories.main(["--base-url", server.url, *args])
    return code, stdout.getvalue(), stderr.getvalue()


def total(server):
    with server.http() as http:
        return http.get("/memories", params={"limit": 1}).json()["meta"]["total_count"]


def only_memory_endpoints_were_reached(server):
    requests = [line for line in server.requests() if not line.startswith("GET /health?probe=fixture ")]
    assert requests, "the access log recorded nothing"
    for line in requests:
        method, target, _status = line.split(" ")
        if f"{method} {target}" in DESCRIPTION_REQUESTS:
            continue
        path = unquote(urlsplit(target).path)
        assert MEMORY_PATHS.match(path), f"request left the memory endpoints: {line}"


@SETTINGS
@given(user_id=IDS, content=CONTENT, topics=TEXT)
def test_create_round_trips_exactly_or_is_refused_before_sending(agentos, user_id, content, topics):
    before = total(agentos)
    # Hypothesis replays a content for the same user: it is created each time, as asked.
    args = (f"--user-id={user_id}", f"--create={content}", f"--topics={topics}", "--allow-duplicate", "--json")
    code, stdout, stderr = call(agentos, *args)
    if code == 2:
        assert total(agentos) == before and stdout == ""
        assert json.loads(stderr)["error"]["type"] == "usage"
        return
    assert code == 0, stderr
    created = json.loads(stdout)
    created.pop("operation")  # the journal's id for --undo: not part of the memory
    assert created.pop("created") is True
    assert created["memory"] == content and created["user_id"] == user_id
    assert created["topics"] == manage_memories.parse_topics(topics)

    code, stdout, _ = call(agentos, f"--user-id={user_id}", f"--memory-id={created['memory_id']}", "--json")
    assert code == 0 and json.loads(stdout) == created
    code, stdout, _ = call(agentos, f"--user-id={user_id}", "--all", "--json")
    assert created in json.loads(stdout)["data"]
    only_memory_endpoints_were_reached(agentos)


@SETTINGS
@given(memory_id=IDS)
def test_no_memory_id_creates_a_memory_or_leaves_the_memory_endpoints(agentos, memory_id):
    before = total(agentos)
    for action in (["--update=new content"], ["--delete"], ["--topics=a"], []):
        code, _, stderr = call(agentos, "--user-id=prop-user", f"--memory-id={memory_id}", *action)
        assert code in (1, 2), stderr
    assert total(agentos) == before
    only_memory_endpoints_were_reached(agentos)


@SETTINGS
@given(search=TEXT)
def test_search_finds_exactly_the_memories_containing_the_text(agentos, search):
    code, stdout, stderr = call(agentos, "--user-id=search-corpus", f"--search={search}", "--all", "--json")
    if code == 2:
        assert not search.strip() or "\x00" in search or len(search) > 5000, stderr
        return
    assert code == 0, stderr
    found = {memory["memory"] for memory in json.loads(stdout)["data"]}
    assert found == {text for text in SEARCH_CORPUS if search.casefold() in text.casefold()}


SEARCH_CORPUS = [
    "100% sure",
    "50 percent",
    "snake_case",
    "snakeXcase",
    'say "hi"',
    "back\\slash",
    "Café au lait",
    "CAFÉ",
    "line\nbreak",
    "tab\there",
    "plain",
]


@pytest.fixture(scope="module", autouse=True)
def search_corpus(agentos):
    if not agentos.memories("search-corpus"):
        for text in SEARCH_CORPUS:
            agentos.seed("search-corpus", text)


@pytest.mark.parametrize(
    "search, expected",
    [
        ("%", ["100% sure"]),
        ("_", ["snake_case"]),
        ('"hi"', ['say "hi"']),
        ("\\", ["back\\slash"]),
        ("café", ["CAFÉ", "Café au lait"]),
        ("n", None),
    ],
)
def test_search_wildcards_quotes_and_accents_match_literally(agentos, search, expected):
    code, stdout, _ = call(agentos, "--user-id=search-corpus", f"--search={search}", "--all", "--json")
    found = sorted(memory["memory"] for memory in json.loads(stdout)["data"])
    assert code == 0
    if expected is None:  # 'n' must not match the \n escape in PostgreSQL's JSON text
        expected = sorted(text for text in SEARCH_CORPUS if "n" in text.casefold())
    assert found == expected


@pytest.mark.parametrize("topic", ["café", "a_b", "50%", 'quo"te', "back\\slash", "UI"])
def test_topic_filters_match_exactly_on_every_backend(agentos, user, topic):
    agentos.seed(user, "tagged", [topic])
    agentos.seed(user, "near miss", [topic.lower() if topic != topic.lower() else topic.upper() + "x", "axb", "500"])
    code, stdout, _ = call(agentos, f"--user-id={user}", f"--topics={topic}", "--json")
    body = json.loads(stdout)
    assert code == 0 and [m["memory"] for m in body["data"]] == ["tagged"] and body["meta"]["total_count"] == 1


def test_paged_search_counts_only_real_matches(agentos, user):
    for number in range(5):
        agentos.seed(user, f"{number}% done")
    for number in range(5):
        agentos.seed(user, f"{number} done")
    code, stdout, _ = call(agentos, f"--user-id={user}", "--search=%", "--limit=2", "--json")
    body = json.loads(stdout)
    assert code == 0 and body["meta"]["total_count"] == 5 and body["meta"]["total_pages"] == 3
    assert all("%" in memory["memory"] for memory in body["data"]) and len(body["data"]) == 2


def test_raw_server_filters_differ_by_backend_as_the_reference_says(agentos, user):
    """references/api-patterns.md section 7, shown on the server itself; the script
    gives the same answer on both (test_search_wildcards_quotes_and_accents_match_literally)."""
    agentos.seed(user, 'say "hi"', ["café"])
    agentos.seed(user, "plain", ["UI"])
    agentos.seed(user, "Café")
    with agentos.http() as http:

        def raw(**params):
            return sorted(m["memory"] for m in http.get("/memories", params={"user_id": user, **params}).json()["data"])

        on_postgres = agentos.db_url is not None
        # Both search the JSON text of the content, so a quote matches every memory.
        assert raw(search_content='"') == ["Café", "plain", 'say "hi"']
        # SQLite stores that text with non-ASCII escaped (caf\u00e9), so it finds no accents.
        assert raw(search_content="é") == (["Café"] if on_postgres else [])
        # SQLite stores topics with non-ASCII escaped, so its filter misses them.
        assert raw(topics="café") == ([] if not on_postgres else ['say "hi"'])
        # SQLite's LIKE ignores ASCII case; PostgreSQL's does not.
        assert raw(topics="ui") == (["plain"] if not on_postgres else [])
        # Both treat % as a wildcard.
        assert raw(search_content="%") == ["Café", "plain", 'say "hi"']
