"""--find by meaning: the model that ships with the skill, --find's cache of embeddings
(what it keeps, for how long, --erase), and the answer by words when the model is
missing, damaged or would have too many memories to embed.

Every test runs the script as a user would, against a real AgentOS, with a cache
folder of its own so that what it counts is its own.
"""

import json
import os
import sqlite3
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import CLEAN_ENV, ROOT, SCRIPT, run_script

sys.path.insert(0, str(ROOT / "scripts"))
import manage_memories  # noqa: E402

FACTS = [
    "Plays the cello in an amateur orchestra",
    "Does not eat meat or fish",
    "Commutes by bike, even in winter",
    "Keeps a balcony full of tomato plants",
    "Is allergic to shellfish",
]


@pytest.fixture(scope="module")
def agentos(tmp_path_factory):
    """One SQLite server for the module. The model, its cache and the ranking run in the
    script, after the memories are read; the reading is tested on both backends
    elsewhere (test_finding, test_scale), so these tests do not run twice."""
    from conftest import start_server

    server = start_server(tmp_path_factory.mktemp("meaning"))
    yield server
    server.stop()


@pytest.fixture
def fresh_agentos(tmp_path_factory):
    """An empty SQLite server of the test's own."""
    from conftest import start_server

    servers = []

    def start():
        servers.append(start_server(tmp_path_factory.mktemp("meaning-fresh")))
        return servers[-1]

    yield start
    for server in servers:
        server.stop()


@pytest.fixture
def seeded(agentos, user, tmp_path):
    """(server, user, env): five memories of a new user, and a cache folder of the test's own."""
    for fact in FACTS:
        agentos.seed(user, fact)
    return agentos, user, {"XDG_CACHE_HOME": str(tmp_path / "cache")}


def find(server, user, query, env, *flags):
    result = run_script("--base-url", server.url, "--user-id", user, "--find", query, "--json", *flags, env=env)
    assert result.code == 0, result.stderr
    return result


def cache_file(env):
    return os.path.join(env["XDG_CACHE_HOME"], "agentos-api-memory", "embeddings.sqlite")


def cached_digests(env, user):
    with sqlite3.connect(cache_file(env)) as db:
        return {bytes(digest) for (digest,) in db.execute("SELECT digest FROM vectors WHERE user_id = ?", (user,))}


def cache_rows(env, user=None):
    path = cache_file(env)
    if not os.path.exists(path):
        return 0
    with sqlite3.connect(path) as db:
        if user is None:
            return db.execute("SELECT count(*) FROM vectors").fetchone()[0]
        return db.execute("SELECT count(*) FROM vectors WHERE user_id = ?", (user,)).fetchone()[0]


def test_a_second_search_embeds_only_the_query(seeded):
    server, user, env = seeded
    first = find(server, user, "musical instrument", env).json()
    assert first["meta"]["embedded"] == 5 and first["meta"]["from_cache"] == 0
    second = find(server, user, "gardening", env).json()
    assert second["meta"]["embedded"] == 0 and second["meta"]["from_cache"] == 5
    assert first["data"][0]["memory"] == "Plays the cello in an amateur orchestra"
    assert second["data"][0]["memory"] == "Keeps a balcony full of tomato plants"


def test_an_edited_memory_is_embedded_again_and_only_it(seeded):
    server, user, env = seeded
    find(server, user, "instrument", env)
    memory = next(memory for memory in server.memories(user) if memory["memory"].startswith("Commutes"))
    server.put(memory["memory_id"], user, "Commutes by train since the spring")
    body = find(server, user, "instrument", env).json()
    assert body["meta"]["embedded"] == 1 and body["meta"]["from_cache"] == 4


def test_the_cache_is_private_to_its_owner(seeded):
    server, user, env = seeded
    find(server, user, "instrument", env)
    folder = os.path.join(env["XDG_CACHE_HOME"], "agentos-api-memory")
    assert stat.S_IMODE(os.stat(folder).st_mode) == 0o700
    assert stat.S_IMODE(os.stat(os.path.join(folder, "embeddings.sqlite")).st_mode) == 0o600


def test_the_cache_holds_vectors_and_digests_but_no_text(seeded):
    server, user, env = seeded
    find(server, user, "instrument", env)
    folder = os.path.join(env["XDG_CACHE_HOME"], "agentos-api-memory")
    stored = b"".join(path.read_bytes() for path in Path(folder).iterdir() if path.is_file())
    assert b"cello" not in stored and b"shellfish" not in stored


def test_vectors_unused_for_the_days_set_are_dropped(seeded):
    server, user, env = seeded
    find(server, user, "instrument", env)
    with sqlite3.connect(cache_file(env)) as db:
        db.execute("UPDATE vectors SET used = used - 8")
    body = find(server, user, "instrument", env | {"AGENTOS_MEMORY_CACHE_DAYS": "7"}).json()
    assert body["meta"]["embedded"] == 5 and body["meta"]["from_cache"] == 0


def test_an_erased_delete_removes_its_vectors_and_only_its(seeded):
    server, user, env = seeded
    find(server, user, "instrument", env)
    cello = next(memory for memory in server.memories(user) if "cello" in memory["memory"])
    result = run_script(
        "--base-url",
        server.url,
        "--user-id",
        user,
        "--memory-id",
        cello["memory_id"],
        "--delete",
        "--erase",
        "--json",
        env=env,
    )
    assert result.code == 0 and result.json()["erased_vectors"] == 1
    assert cache_rows(env, user) == 4 + 1  # the other memories, and the question's vector


def test_an_erased_delete_removes_the_vectors_the_same_fact_judgement_kept_too(agentos, user, tmp_path):
    # --duplicates --by meaning caches each memory as the model reads it ("drinks green
    # tea" for "Ken drinks green tea"): a vector derived from the memory all the same.
    env = {"XDG_CACHE_HOME": str(tmp_path / "cache")}
    texts = ["Ken drinks green tea", "Ken plays the cello", "The user's dog is called Biscuit"]
    ids = [agentos.seed(user, text)["memory_id"] for text in texts]
    judged = run_script("--base-url", agentos.url, "--user-id", user, "--duplicates", "--by", "meaning", env=env)
    assert judged.code == 0 and cache_rows(env, user) == 3, judged.stderr
    found = find(agentos, user, "instrument", env).json()
    assert found["meta"]["embedded"] == 3 and cache_rows(env, user) >= 6  # the sentences too, as they are
    every_id = [flag for memory_id in ids for flag in ("--memory-id", memory_id)]
    erased = run_script("--base-url", agentos.url, "--user-id", user, *every_id, "--delete", "--erase", env=env)
    assert erased.code == 0, erased.stderr
    assert cache_rows(env, user) == 1  # the question's vector ("instrument"), derived from no memory


def test_an_erased_delete_removes_the_vector_of_its_topics(agentos, user, tmp_path):
    env = {"XDG_CACHE_HOME": str(tmp_path / "cache")}
    memory = agentos.seed(user, "Has a rare heart condition", ["cardiology", "arrhythmia"])
    find(agentos, user, "health", env)
    topics = manage_memories.text_digest(manage_memories.topics_text(["cardiology", "arrhythmia"]))
    assert topics in cached_digests(env, user)
    erased = run_script(
        "--base-url", agentos.url, "--user-id", user, "--memory-id", memory["memory_id"], "--delete", "--erase", env=env
    )
    assert erased.code == 0 and topics not in cached_digests(env, user), erased.stderr


def test_an_erased_delete_removes_the_vectors_of_what_an_update_replaced(agentos, user, tmp_path):
    env = {"XDG_CACHE_HOME": str(tmp_path / "cache")}
    memory = agentos.seed(user, "Has a rare heart condition")
    agentos.seed(user, "Plays the cello in an amateur orchestra")
    find(agentos, user, "health", env)
    scope = ("--base-url", agentos.url, "--user-id", user, "--memory-id", memory["memory_id"])
    updated = run_script(*scope, "--update", "Has a heart condition, treated since May", env=env)
    find(agentos, user, "health", env)
    erased = run_script(*scope, "--delete", "--erase", env=env)
    assert updated.code == 0 and erased.code == 0, updated.stderr + erased.stderr
    left = cached_digests(env, user)
    assert manage_memories.text_digest("Has a rare heart condition") not in left
    assert manage_memories.text_digest("Has a heart condition, treated since May") not in left


def test_an_erased_delete_all_of_a_user_the_server_no_longer_holds_still_erases(agentos, user, tmp_path):
    # A request to be forgotten holds for what the script kept, whatever the server has left.
    env = {"XDG_CACHE_HOME": str(tmp_path / "cache")}
    agentos.seed(f"{user}-other", "Likes tea")
    asked = run_script(
        "--base-url", agentos.url, "--user-id", user, "--find", "who is her oncologist", "--by", "meaning", env=env
    )
    assert asked.code == 0 and cache_rows(env, user) == 1, asked.stderr
    # Without --yes nothing is erased: the journal's copies are what --undo brings back.
    unasked = run_script("--base-url", agentos.url, "--user-id", user, "--delete-all", "--erase", "--json", env=env)
    assert unasked.code == 0 and "add --yes to erase" in unasked.json()["hint"], unasked.stdout + unasked.stderr
    assert cache_rows(env, user) == 1
    erased = run_script(
        "--base-url", agentos.url, "--user-id", user, "--delete-all", "--yes", "--erase", "--json", env=env
    )
    assert erased.code == 0 and erased.json()["erased_vectors"] == 1, erased.stdout + erased.stderr
    assert cache_rows(env, user) == 0 and cache_rows(env, f"{user}-other") == 0


def test_an_erased_delete_all_of_every_user_by_agent_removes_each_users_vectors(agentos, user, tmp_path):
    env = {"XDG_CACHE_HOME": str(tmp_path / "cache")}
    other = f"{user}-other"
    agent = f"bot-{user}"
    for owner in (user, other):
        agentos.seed(owner, "Plays the cello in an amateur orchestra")
        agentos.seed_from_agent(owner, f"Asked {agent} about train times", agent_id=agent)
        find(agentos, owner, "musical instrument", env)
    before = {owner: cache_rows(env, owner) for owner in (user, other)}
    erased = run_script(
        "--base-url", agentos.url, "--all-users", "--agent-id", agent, "--delete-all", "--yes", "--erase", "--json",
        env=env,
    )  # fmt: skip
    assert erased.code == 0 and erased.json()["erased_vectors"] == 2, erased.stdout + erased.stderr
    for owner in (user, other):
        left = cached_digests(env, owner)
        assert cache_rows(env, owner) == before[owner] - 1
        assert manage_memories.text_digest(f"Asked {agent} about train times") not in left


def test_an_erase_the_cache_refuses_is_one_line_after_the_delete(agentos, user, tmp_path):
    env = {"XDG_CACHE_HOME": str(tmp_path / "cache")}
    memory = agentos.seed(user, "Has a rare heart condition")
    find(agentos, user, "health", env)
    with open(cache_file(env), "r+b") as file:
        file.write(b"not a database at all, not any more")
    result = run_script(
        "--base-url", agentos.url, "--user-id", user, "--memory-id", memory["memory_id"], "--delete", "--erase", env=env
    )
    assert result.code == 1 and len(result.stderr.splitlines()) <= 2, result.stderr
    assert "the memories were deleted and the journal's copies erased, but the embedding cache" in result.stderr
    assert "unexpected" not in result.stderr and agentos.memories(user) == []


def test_a_filtered_delete_all_that_finds_nothing_does_not_offer_to_erase(agentos, user, tmp_path):
    env = {"XDG_CACHE_HOME": str(tmp_path / "cache")}
    agentos.seed(user, "Has a rare heart condition")
    result = run_script(
        "--base-url", agentos.url, "--user-id", user, "--topics", "nothing-has-it", "--delete-all", "--erase", "--json",
        env=env,
    )  # fmt: skip
    assert result.code == 0 and "add --yes to erase" not in (result.json().get("hint") or ""), result.stdout


def test_an_erased_delete_all_removes_every_vector_of_the_user(seeded, agentos):
    server, user, env = seeded
    other = f"{user}-other"
    agentos.seed(other, "Drinks green tea")
    find(server, user, "instrument", env)
    find(server, other, "tea", env)
    result = run_script("--base-url", server.url, "--user-id", user, "--delete-all", "--yes", "--erase", env=env)
    # The user's five memories, and the question asked about the user: all the user's.
    assert result.code == 0 and "6 embeddings removed from --find's cache" in result.stdout
    assert cache_rows(env, user) == 0 and cache_rows(env, other) == 1 + 1


def a_model_that_breaks(tmp_path):
    """A copy of the model (the cache knows it by its folder's name and size), and what
    makes it unreadable at the same size."""
    import shutil

    folder = tmp_path / manage_memories.MODEL_FOLDER.name
    shutil.copytree(manage_memories.MODEL_FOLDER, folder)
    size = (folder / "model.onnx").stat().st_size
    return folder, lambda: (folder / "model.onnx").write_bytes(b"\0" * size)


def test_a_question_asked_again_loads_no_model(seeded, tmp_path):
    server, user, env = seeded
    folder, break_model = a_model_that_breaks(tmp_path)
    env = env | {"AGENTOS_MEMORY_MODEL": str(folder)}
    first = find(server, user, "musical instrument", env).json()
    two_matches = find(server, user, "diet and allergies", env).json()  # two matches: judged for "older" too
    assert two_matches["meta"]["matched"] == 2
    break_model()
    # The question's vector is cached as the memories' are: the model is not loaded.
    for question, answer in (("musical instrument", first), ("diet and allergies", two_matches)):
        again = find(server, user, question, env)
        assert again.stderr == "" and again.json()["data"] == answer["data"]
        assert again.json()["meta"]["ranked_by"] == "words+meaning" and again.json()["meta"]["embedded"] == 0


def test_a_model_first_needed_mid_search_and_unreadable_gives_the_answer_by_words(seeded, tmp_path):
    server, user, env = seeded
    folder, break_model = a_model_that_breaks(tmp_path)
    env = env | {"AGENTOS_MEMORY_MODEL": str(folder)}
    find(server, user, "musical instrument", env)
    break_model()
    # A memory the cache lacks needs the model, met only as the walk reads it.
    server.seed(user, "Sings bass in a choir")
    result = run_script("--base-url", server.url, "--user-id", user, "--find", "musical instrument", "--json", env=env)
    assert result.code == 0 and len(result.stderr.splitlines()) == 1, result.stderr
    assert "ranks by words only: the model cannot be loaded" in json.loads(result.stderr)["warning"]
    body = result.json()
    assert body["meta"]["ranked_by"] == "words" and body["meta"]["searched"] == len(FACTS) + 1


def test_the_fallback_by_words_walks_with_a_bar_of_its_own(seeded, tmp_path, monkeypatch, capsys):
    server, user, env = seeded
    folder, break_model = a_model_that_breaks(tmp_path)
    env = env | {"AGENTOS_MEMORY_MODEL": str(folder)}
    find(server, user, "musical instrument", env)
    break_model()
    last = max(server.memories(user), key=lambda memory: memory["memory_id"])  # the walk reads it last
    with sqlite3.connect(cache_file(env)) as db:
        db.execute("DELETE FROM vectors WHERE digest = ?", (manage_memories.text_digest(last["memory"]),))
    bars = []

    class Watched(manage_memories.Progress):
        def stop(self):
            if self.bar is not None:
                bars.append((self.bar.tasks[0].completed, self.bar.tasks[0].total))
            super().stop()

    monkeypatch.setattr(manage_memories, "WALK_PAGE_SIZE", 4)  # two pages: the model is met on the second
    monkeypatch.setattr(manage_memories, "WALK_OVERLAP", 1)
    monkeypatch.setattr(manage_memories.Progress, "for_request", classmethod(lambda cls, what, r: Watched(what, True)))
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    code = manage_memories.main(["--base-url", server.url, "--user-id", user, "--find", "musical instrument", "--json"])
    capsys.readouterr()
    assert code == 0 and bars and all(completed <= total for completed, total in bars), bars


def test_a_cached_question_cut_short_is_embedded_again(seeded):
    server, user, env = seeded
    find(server, user, "musical instrument", env)
    question = manage_memories.text_digest("musical instrument")
    with sqlite3.connect(cache_file(env)) as db:
        (vector,) = db.execute("SELECT vector FROM vectors WHERE digest = ?", (question,)).fetchone()
        # One component fewer: its length stays near 1, its width is not the model's.
        db.execute("UPDATE vectors SET vector = ? WHERE digest = ?", (vector[:-2], question))
    for _ in range(2):
        again = find(server, user, "musical instrument", env)
        assert again.stderr == "" and again.json()["meta"]["ranked_by"] == "words+meaning"
        assert again.json()["data"][0]["memory"] == "Plays the cello in an amateur orchestra"


def test_a_create_keeps_no_vector_of_its_content_and_falls_back_to_words(seeded, tmp_path):
    # --create searches with its content: a memory that may never be stored (a dry run, a
    # duplicate refused), so its vector is not kept, and the model is loaded to judge it.
    server, user, env = seeded
    folder, break_model = a_model_that_breaks(tmp_path)
    env = env | {"AGENTOS_MEMORY_MODEL": str(folder)}
    content = "Plays the viola in a string quartet"
    args = ("--base-url", server.url, "--user-id", user, "--create", content, "--json")
    dry = run_script(*args, "--dry-run", env=env)
    assert dry.code == 0, dry.stderr
    assert manage_memories.text_digest(content) not in cached_digests(env, user)
    break_model()
    result = run_script(*args, env=env)
    assert result.code == 0 and len(result.stderr.splitlines()) == 1, result.stderr
    assert "the model cannot be loaded" in json.loads(result.stderr)["warning"]
    assert result.json()["created"] is True


def test_a_missing_model_is_one_line_and_the_answer_comes_by_words(seeded, tmp_path):
    server, user, env = seeded
    env = env | {"AGENTOS_MEMORY_MODEL": str(tmp_path / "no-model")}
    result = run_script("--base-url", server.url, "--user-id", user, "--find", "cello", env=env)
    assert result.code == 0
    assert result.stderr.splitlines() == [
        f"warning: --find ranks by words only: the model cannot be loaded: {tmp_path / 'no-model' / 'model.onnx'} "
        "is missing"
    ]
    assert "Plays the cello" in result.stdout
    body = find(server, user, "cello", env).json()
    assert body["meta"]["ranked_by"] == "words" and "model cannot be loaded" in body["meta"]["why_words"]
    matches = [memory["memory"] for memory in body["data"] if memory["match"]]
    assert matches == ["Plays the cello in an amateur orchestra"] == [body["data"][0]["memory"]]


def test_an_unreadable_model_is_one_line_and_no_traceback(seeded, tmp_path):
    server, user, env = seeded
    folder = tmp_path / "broken"
    folder.mkdir()
    (folder / "model.onnx").write_bytes(b"not a model at all")
    (folder / "tokenizer.json").write_bytes((manage_memories.MODEL_FOLDER / "tokenizer.json").read_bytes())
    result = run_script(
        "--base-url",
        server.url,
        "--user-id",
        user,
        "--find",
        "cello",
        "--json",
        env=env | {"AGENTOS_MEMORY_MODEL": str(folder)},
    )
    assert result.code == 0 and "Traceback" not in result.stderr
    (line,) = result.stderr.splitlines()
    assert json.loads(line)["warning"].startswith(f"--find ranks by words only: the model cannot be loaded: {folder}")
    assert result.json()["data"][0]["memory"] == "Plays the cello in an amateur orchestra"


@pytest.mark.parametrize(
    "flags, shows",
    [(["--find", "cello", "--by", "words"], "Plays the cello"), ([], "5 of 5 memories")],
    ids=["find by words", "listing"],
)
def test_only_find_by_meaning_loads_the_model(seeded, flags, shows):
    server, user, env = seeded
    command = [sys.executable, "-X", "importtime", SCRIPT, "--base-url", server.url, "--user-id", user, *flags]
    result = subprocess.run(command, capture_output=True, text=True, env=CLEAN_ENV | env)
    assert result.returncode == 0 and shows in result.stdout
    assert "onnxruntime" not in result.stderr and "numpy" not in result.stderr and cache_rows(env) == 0


def test_past_the_limit_find_ranks_by_words_and_says_how_to_ask_for_meaning(seeded, monkeypatch, capsys):
    # MEANING_LIMIT is 10,000 memories not yet embedded; the same edge, on five.
    server, user, env = seeded
    monkeypatch.setattr(manage_memories, "MEANING_LIMIT", 4)
    monkeypatch.setenv("XDG_CACHE_HOME", env["XDG_CACHE_HOME"])
    code = manage_memories.main(["--base-url", server.url, "--user-id", user, "--find", "cello", "--json"])
    body = json.loads(capsys.readouterr().out)
    assert code == 0 and body["meta"]["ranked_by"] == "words"
    assert "5 memories not embedded yet" in body["hint"] and "--by meaning" in body["hint"]
    code = manage_memories.main(
        ["--base-url", server.url, "--user-id", user, "--find", "cello", "--by", "meaning", "--json"]
    )
    body = json.loads(capsys.readouterr().out)
    assert code == 0 and body["meta"]["ranked_by"] == "words+meaning" and body["meta"]["embedded"] == 5
    # Once they are cached, the same search needs no asking.
    code = manage_memories.main(["--base-url", server.url, "--user-id", user, "--find", "cello", "--json"])
    body = json.loads(capsys.readouterr().out)
    assert body["meta"]["ranked_by"] == "words+meaning" and body["meta"]["from_cache"] == 5


def test_find_across_users_names_each_user_and_embeds_each_once(agentos, user, tmp_path):
    env = {"XDG_CACHE_HOME": str(tmp_path / "cache")}
    agentos.seed(f"{user}-a", "Plays the violin")
    agentos.seed(f"{user}-b", "Plays the cello")
    agentos.seed(f"{user}-b", "Bakes sourdough bread")
    result = run_script("--base-url", agentos.url, "--find", "string instrument", "--json", env=env)
    body = result.json()
    mine = [memory for memory in body["data"] if memory["user_id"].startswith(user)]
    assert {memory["user_id"] for memory in mine[:2]} == {f"{user}-a", f"{user}-b"}
    assert body["meta"]["user_id"] is None
    assert cache_rows(env, f"{user}-b") == 2


def test_find_by_meaning_across_users_keeps_only_what_can_still_win(fresh_agentos, user, tmp_path, monkeypatch, capsys):
    # Flat memory: whatever the number searched, the ranking holds at most --limit memories
    # per group of equal word scores, plus 8 bytes a memory for the count of matches.
    from agno.db.schemas import UserMemory

    agentos = fresh_agentos()
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    memories = [
        UserMemory(
            memory=f"Note {number} about errands and chores",
            memory_id=f"{user}-{number:04d}",
            user_id=f"{user}-{number % 30}",
        )
        for number in range(600)
    ]
    memories.append(UserMemory(memory="Plays the cello", memory_id=f"{user}-cello", user_id=f"{user}-cello"))
    agentos.database().upsert_memories(memories)
    kept = []
    best = manage_memories.Ranking.best

    def counting_best(ranking):
        kept.append(sum(len(group) for group in ranking.groups.values()))
        return best(ranking)

    monkeypatch.setattr(manage_memories.Ranking, "best", counting_best)
    code = manage_memories.main(
        ["--base-url", agentos.url, "--find", "musical instrument", "--by", "meaning", "--limit", "3", "--json"]
    )
    body = json.loads(capsys.readouterr().out)
    assert code == 0 and body["data"][0]["memory_id"] == f"{user}-cello"
    assert body["meta"]["searched"] == 601 and kept[0] <= 3 * 2  # two groups: the notes, and the cello


def test_a_damaged_vector_in_the_cache_is_embedded_again(seeded):
    server, user, env = seeded
    find(server, user, "instrument", env)
    question = manage_memories.text_digest("instrument")
    with sqlite3.connect(cache_file(env)) as db:
        # Of the memories' vectors (not the question's), one of zeros (not of length 1), one cut short.
        memories = "SELECT {} (digest) FROM vectors WHERE digest != ?"
        db.execute(f"UPDATE vectors SET vector = zeroblob(768) WHERE digest = ({memories.format('min')})", (question,))
        db.execute(f"UPDATE vectors SET vector = x'00' WHERE digest = ({memories.format('max')})", (question,))
    body = find(server, user, "musical instrument", env).json()
    assert body["data"][0]["memory"] == "Plays the cello in an amateur orchestra"
    assert body["meta"]["embedded"] == 2 and body["meta"]["from_cache"] == 3


def a_cache_another_version_wrote(env):
    """A cache file the script's folder holds, whose table has a column this version does
    not write: it opens and reads, and fails only when a vector is stored."""
    folder = os.path.dirname(cache_file(env))
    os.makedirs(folder, mode=0o700)
    with sqlite3.connect(cache_file(env)) as db:
        db.execute(
            "CREATE TABLE vectors (model TEXT, user_id TEXT, digest BLOB, vector BLOB, used INTEGER, "
            "norm REAL, PRIMARY KEY (model, user_id, digest)) WITHOUT ROWID"
        )
    os.chmod(cache_file(env), 0o600)


@pytest.mark.parametrize("action", [["--find", "musical instrument"], ["--duplicates", "--by", "meaning"]])
def test_a_cache_that_fails_while_in_use_costs_time_not_the_answer(seeded, action):
    server, user, env = seeded
    a_cache_another_version_wrote(env)
    result = run_script("--base-url", server.url, "--user-id", user, *action, "--json", env=env)
    assert result.code == 0, result.stderr
    assert len(result.stderr.splitlines()) == 1, result.stderr
    warning = json.loads(result.stderr)["warning"]
    assert warning.startswith("every memory is embedded again: the embedding cache in ") and "6 columns" in warning
    body = result.json()
    if action[0] == "--find":
        assert body["data"][0]["memory"] == "Plays the cello in an amateur orchestra"
        assert body["meta"]["embedded"] == 5 and body["meta"]["from_cache"] == 0
    # The file is left as it was found: another version's cache is not ours to rewrite.
    assert cache_rows(env) == 0
