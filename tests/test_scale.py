"""Bulk work stays exact and linear at production scale, on small data built to hit
the same edges: ties across page boundaries, writes between two pages, a heavy user
beside many light ones, an import into a server far larger than the file.

Pages hold 5,000 memories, so these servers hold a few pages' worth, written through
agno's own bulk upsert_memories as an agent run would write them.
"""

import asyncio
import json
import re
import sys
import time
from types import SimpleNamespace
from urllib.parse import parse_qs, urlsplit

import pytest

from conftest import ROOT, run_script, start_script
from proxy import GatedProxy

sys.path.insert(0, str(ROOT / "scripts"))
import manage_memories  # noqa: E402

PAGE = 5000
# What a failed --delete-all adds to its one line: the way to put back what went.
UNDO_HINT = r"\(undo what was done: uv run scripts/manage_memories\.py --base-url \S+ --undo [0-9a-f]{8}\)"


def fill(server, memories):
    """(memory_id, user_id, text) rows, all with one updated_at second: every sort key ties."""
    from agno.db.schemas import UserMemory

    stamp = int(time.time()) - 3600
    rows = [
        UserMemory(
            memory=text, memory_id=memory_id, user_id=user_id, topics=["bulk"], updated_at=stamp, created_at=stamp
        )
        for memory_id, user_id, text in memories
    ]
    database = server.database()
    for start in range(0, len(rows), 2000):
        database.upsert_memories(rows[start : start + 2000])


def heavy_and_light(heavy=6000, light_users=1500, each=3):
    rows = [(f"h-{n:06d}", "heavy", f"heavy fact {n}") for n in range(heavy)]
    rows += [
        (f"l-{u:05d}-{k}", f"light-{u:05d}", f"light fact {k} of {u}") for u in range(light_users) for k in range(each)
    ]
    return rows


@pytest.fixture(scope="module")
def crowded(tmp_path_factory, backend):
    """6,000 memories of one user and 4,500 of 1,500 others, every updated_at the same."""
    from conftest import start_server

    db_url = backend.create_database() if backend else None
    server = start_server(tmp_path_factory.mktemp("crowded"), db_url=db_url)
    fill(server, heavy_and_light())
    yield server
    server.stop()


def memory_gets(server, since=0):
    """Query parameters of each GET /memories the server answered."""
    pages = []
    for line in server.requests()[since:]:
        method, target, _status = line.split(" ")
        if method == "GET" and urlsplit(target).path == "/memories":
            pages.append({key: values[0] for key, values in parse_qs(urlsplit(target).query).items()})
    return pages


def exported_ids(path):
    return [json.loads(line)["memory_id"] for line in path.read_text().splitlines()]


def test_export_of_tied_memories_across_pages_is_exact_and_linear(crowded, tmp_path):
    before = len(crowded.requests())
    target = tmp_path / "all.jsonl"
    result = run_script("--base-url", crowded.url, "--export", target)
    assert result.code == 0, result.stderr
    ids = exported_ids(target)
    assert len(ids) == 10_500 and len(set(ids)) == 10_500
    pages = memory_gets(crowded, before)
    # Pages in memory_id order, a few of them, none asking for everything at once.
    assert {page["sort_by"] for page in pages} == {"memory_id"}
    assert 3 <= len(pages) <= 4 and max(int(page["limit"]) for page in pages) < 2 * PAGE


def test_export_of_the_heavy_user_holds_exactly_theirs(crowded, tmp_path):
    target = tmp_path / "heavy.jsonl"
    assert run_script("--base-url", crowded.url, "--user-id", "heavy", "--export", target).code == 0
    ids = exported_ids(target)
    assert sorted(ids) == [f"h-{n:06d}" for n in range(6000)]


def test_all_lists_every_memory_of_a_user_across_pages(crowded):
    body = run_script("--base-url", crowded.url, "--user-id", "heavy", "--all", "--json").json()
    assert body["meta"]["total_count"] == 6000 and len({m["memory_id"] for m in body["data"]}) == 6000


def test_a_filtered_listing_pages_through_tied_memories_in_memory_id_order(crowded):
    """Every memory here shares one updated_at, so the listing (kept in a temporary SQLite
    file to be sorted) falls back to memory_id order, either --order, page by page."""
    base = ["--base-url", crowded.url, "--user-id", "heavy", "--search", "heavy fact 1"]
    matching = sorted(f"h-{n:06d}" for n in range(6000) if str(n).startswith("1"))  # 1, 10-19, 100-199, ...
    for order in ("desc", "asc"):
        every = run_script(*base, "--order", order, "--all", "--json").json()
        assert [m["memory_id"] for m in every["data"]] == matching
        page = run_script(*base, "--order", order, "--page", "3", "--limit", "20", "--json").json()
        assert [m["memory_id"] for m in page["data"]] == matching[40:60]
        assert page["meta"] == {"page": 3, "limit": 20, "total_pages": 56, "total_count": 1111}
    shown = run_script(*base, "--page", "56", "--limit", "20").stdout.splitlines()
    assert shown[0] == (
        "11 of 1111 memories of user heavy containing 'heavy fact 1' (shown 1101-1111, newest first by updated_at)"
    )
    assert [line.split()[0] for line in shown if line.startswith("h-")] == matching[1100:]


def test_stats_sort_count_puts_the_heavy_user_first_among_many(crowded):
    body = run_script("--base-url", crowded.url, "--stats", "--sort", "count", "--limit", "3", "--json").json()
    assert body["data"][0] == {
        "user_id": "heavy",
        "total_memories": 6000,
        "last_memory_updated_at": body["data"][0]["last_memory_updated_at"],
    }
    assert body["meta"]["total_count"] == 1501


def test_find_across_every_user_reads_each_memory_once(crowded):
    before = len(crowded.requests())
    body = run_script("--base-url", crowded.url, "--find", "light fact 2 of 1499", "--limit", "1", "--json").json()
    assert body["meta"]["searched"] == 10_500
    assert body["data"][0]["memory_id"] == "l-01499-2"
    assert len(memory_gets(crowded, before)) <= 4


def test_an_import_into_a_far_larger_server_looks_ids_up_one_by_one(crowded, tmp_path):
    lines = [
        {"memory_id": "h-000007", "user_id": "heavy", "memory": "heavy fact 7", "topics": ["bulk"]},  # there
        {"memory_id": "l-00003-1", "user_id": "intruder", "memory": "overwrite?"},  # another user's id
        {"memory_id": "new-000001", "user_id": "heavy", "memory": "a new fact"},
    ]
    backup = tmp_path / "in.jsonl"
    backup.write_text("".join(json.dumps(line) + "\n" for line in lines))
    before = len(crowded.requests())
    result = run_script("--base-url", crowded.url, "--import", backup, "--json")
    assert result.code == 1  # the conflict
    summary = result.json()
    assert (summary["created"], summary["unchanged"], len(summary["conflicts"])) == (1, 1, 1)
    # Three GETs of one memory each, plus one page to count: not a walk of 10,500.
    assert sum(1 for page in memory_gets(crowded, before) if int(page["limit"]) > 1) == 0
    assert [m["memory"] for m in crowded.memories("light-00003") if m["memory_id"] == "l-00003-1"] == [
        "light fact 1 of 3"
    ]


def test_delete_all_of_the_heavy_user_leaves_the_light_ones(fresh_agentos):
    server = fresh_agentos()
    fill(server, heavy_and_light(heavy=6000, light_users=100))
    result = run_script("--base-url", server.url, "--user-id", "heavy", "--delete-all", "--yes", "--json")
    assert result.code == 0, result.stderr
    assert result.json()["count"] == 6000
    assert server.memories("heavy") == [] and len(server.memories()) == 300


def test_delete_all_sends_each_batch_a_number_of_ids_of_its_own(fresh_agentos):
    """agno's PostgreSQL backend runs a bulk DELETE as one statement whose text depends on
    the number of ids; from the eleventh of one number on a connection, PostgreSQL plans
    it once for any ids and tests every row of the user against every id (7 s a batch
    at 100,000 memories, measured: docs/performance.md, "Bulk work at scale"). So no number repeats in a run."""
    server = fresh_agentos()
    fill(server, heavy_and_light(heavy=12_000, light_users=100))
    with GatedProxy(server.url) as proxy:
        result = run_script("--base-url", proxy.url, "--user-id", "heavy", "--delete-all", "--yes", "--json")
    assert result.code == 0, result.stderr
    sizes = [len(body["memory_ids"]) for body in proxy.deletes]
    assert len(sizes) >= 3 and len(set(sizes)) == len(sizes) and max(sizes) <= PAGE, sizes
    assert {body["user_id"] for body in proxy.deletes} == {"heavy"}
    sent = sorted(memory_id for body in proxy.deletes for memory_id in body["memory_ids"])
    assert sent == [f"h-{n:06d}" for n in range(12_000)]
    assert server.memories("heavy") == [] and len(server.memories()) == 300


@pytest.mark.parametrize("concurrency", ["1", "8"])
def test_a_failed_delete_batch_says_how_many_went_and_a_second_run_finishes(fresh_agentos, concurrency):
    """From the second bulk DELETE on the proxy answers 500: the batches already sent
    finish, and the one line counts exactly what the server confirmed."""
    server = fresh_agentos()
    fill(server, heavy_and_light(heavy=12_000, light_users=10))
    with GatedProxy(server.url, fail_delete=2) as proxy:
        result = run_script(
            "--base-url", proxy.url, "--user-id", "heavy", "--delete-all", "--yes", "--concurrency", concurrency
        )
    assert result.code == 1 and result.stdout == ""
    said = re.fullmatch(
        r"error: server error 500: the database failed; (\d+) of the 12000 memories were deleted before it "
        r"stopped: run it again to delete the rest " + UNDO_HINT + r"\n",
        result.stderr,
    )
    assert said, result.stderr
    gone = {memory_id for body in proxy.deletes for memory_id in body["memory_ids"]}
    assert int(said[1]) == len(gone) and 0 < len(gone) < 12_000
    left = {memory["memory_id"] for memory in server.memories("heavy")}
    assert left == {f"h-{n:06d}" for n in range(12_000)} - gone
    again = run_script("--base-url", server.url, "--user-id", "heavy", "--delete-all", "--yes", "--json")
    assert again.code == 0 and again.json()["count"] == len(left)
    assert server.memories("heavy") == [] and len(server.memories()) == 30


def test_a_delete_whose_answer_never_came_is_counted_as_maybe_deleted(fresh_agentos):
    """From the third bulk DELETE on, the proxy forwards it and drops the connection: the
    server deleted those ids, but no answer says so. The one line counts what was
    confirmed and, apart, what may have gone; the server holds exactly the rest."""
    server = fresh_agentos()
    fill(server, heavy_and_light(heavy=12_000, light_users=10))
    with GatedProxy(server.url, drop_delete=3) as proxy:
        result = run_script("--base-url", proxy.url, "--user-id", "heavy", "--delete-all", "--yes", "--concurrency", 1)
    assert result.code == 3 and result.stdout == ""
    said = re.fullmatch(
        r"error: connection to .+; (\d+) of the 12000 memories were deleted before it stopped, and (\d+) more "
        r"may have been \(no answer came\): run it again to delete the rest " + UNDO_HINT + r"\n",
        result.stderr,
    )
    assert said, result.stderr
    confirmed = {memory_id for body in proxy.deletes[:2] for memory_id in body["memory_ids"]}
    unanswered = {memory_id for body in proxy.deletes[2:] for memory_id in body["memory_ids"]}
    assert (int(said[1]), int(said[2])) == (len(confirmed), len(unanswered)) and unanswered
    left = {memory["memory_id"] for memory in server.memories("heavy")}
    assert left == {f"h-{n:06d}" for n in range(12_000)} - confirmed - unanswered


def test_delete_all_deletes_between_pages_and_finds_its_place_after_each(fresh_agentos):
    """A deleting walk sends its deletes while it reads, so the rows ahead of it move
    back: each page is asked once the deletes sent are answered, that many rows earlier.
    Through a proxy that caps pages at 1,500 rows the walk takes eight pages and deletes
    between them; every memory goes once, the light users' never, and its own deletes
    are not reported as changes made by someone else."""
    server = fresh_agentos()
    fill(server, heavy_and_light(heavy=12_000, light_users=100))
    with GatedProxy(server.url, cap=1500) as proxy:
        result = run_script("--base-url", proxy.url, "--user-id", "heavy", "--delete-all", "--yes", "--json")
    assert result.code == 0 and result.stderr == "", result.stderr
    everyone = [f"h-{n:06d}" for n in range(12_000)]
    assert [memory["memory_id"] for memory in result.json()["deleted"]] == everyone
    assert sorted(memory_id for body in proxy.deletes for memory_id in body["memory_ids"]) == everyone
    after_first_delete = proxy.order[proxy.order.index("DELETE") :]
    assert after_first_delete.count("GET") >= 3, proxy.order  # pages still to read, and the final check
    assert server.memories("heavy") == [] and len(server.memories()) == 300


def test_writes_during_a_deleting_walk_never_skip_a_memory(fresh_agentos):
    """Held before its fifth page, when some of the user's memories are gone already:
    200 new ones land behind the walk (more than the overlap) and 10 ahead of it are
    deleted by someone else. Every other memory of the user is deleted, once."""
    server = fresh_agentos()
    fill(server, heavy_and_light(heavy=12_000, light_users=100))
    newcomers = [(f"h-000100-new-{n:03d}", "heavy", f"new fact {n}") for n in range(200)]
    taken = [f"h-{n:06d}" for n in range(11_000, 11_010)]
    with GatedProxy(server.url, hold=5, cap=1500) as proxy:
        deleting = start_script("--base-url", proxy.url, "--user-id", "heavy", "--delete-all", "--yes", "--json")
        assert proxy.held.wait(60), "the delete never asked for a fifth page"
        assert proxy.deletes, "nothing was deleted before the fifth page"
        fill(server, newcomers)
        with server.http() as http:
            http.request("DELETE", "/memories", json={"memory_ids": taken}).raise_for_status()
        proxy.released.set()
        stdout, stderr = deleting.communicate(timeout=120)
    assert deleting.returncode == 0, stderr
    sent = [memory_id for body in proxy.deletes for memory_id in body["memory_ids"]]
    assert len(sent) == len(set(sent)), "a memory was deleted twice"
    throughout = {f"h-{n:06d}" for n in range(12_000)} - set(taken)
    assert throughout <= set(sent), f"not deleted: {sorted(throughout - set(sent))[:5]}"
    assert set(sent) - throughout <= {memory_id for memory_id, _, _ in newcomers}
    assert {memory["memory_id"] for memory in json.loads(stdout)["deleted"]} == set(sent)
    assert {memory["memory_id"] for memory in server.memories("heavy")} <= {m for m, _, _ in newcomers}
    assert len(server.memories()) - len(server.memories("heavy")) == 300
    assert re.search(r"at least \d+ memories were created or deleted while this read them", stderr)


def test_a_deleting_walk_keeps_the_last_ids_it_read_until_the_end(monkeypatch):
    """The next page finds its place by the last ids the walk passed on, so those are
    not deleted before it is read. On a server the batch sizes are random and a batch
    that does not fill waits anyway, so this is tested here, with batches recorded
    instead of sent: exactly one batch's worth of ids read, and none of it goes until
    finish(); then every id goes once, in batches of numbers all different."""
    sent = []

    async def record(server, memory_ids, user_id):
        await asyncio.sleep(0)
        sent.append(list(memory_ids))

    monkeypatch.setattr(manage_memories, "delete_batch", record)

    async def delete(count):
        request = SimpleNamespace(concurrency=4, user_id="heavy", json=True)
        request.dry_run = False
        writer = manage_memories.Writer(SimpleNamespace(), request, manage_memories.NoJournal())
        deleter = manage_memories.BatchDeleter(writer, request)
        first = deleter.sizes[0]
        deleter.take([{"memory_id": f"m-{n:05d}"} for n in range(first)])
        deleter.resume()
        assert await deleter.pause() == 0 and sent == []  # a full batch, but the last 64 are held
        deleter.take([{"memory_id": f"m-{n:05d}"} for n in range(first, count)])
        deleter.resume()
        held = await deleter.pause()
        assert 0 < held <= count - manage_memories.WALK_OVERLAP
        await deleter.finish()
        return deleter.deleted

    assert asyncio.run(delete(12_345)) == 12_345
    ids = [memory_id for batch in sent for memory_id in batch]
    assert sorted(ids) == [f"m-{n:05d}" for n in range(12_345)]
    sizes = [len(batch) for batch in sent]
    assert len(set(sizes)) == len(sizes), sizes


def test_a_delete_all_report_larger_than_memory_keeps_lists_every_memory(fresh_agentos):
    """The deleted memories wait in a temporary file for the report once they pass 8 MB."""
    server = fresh_agentos()
    padding = "and so on " * 150
    fill(server, [(f"b-{n:05d}", "bulky", f"fact {n} {padding}") for n in range(6500)])  # about 10 MB
    listed = run_script("--base-url", server.url, "--user-id", "bulky", "--delete-all", "--dry-run")
    assert listed.code == 0 and listed.stdout.startswith(
        "would delete 6500 memories of user bulky (dry run: nothing was changed)\n"
    )
    assert all(listed.stdout.count(f"b-{n:05d}") == 1 for n in range(0, 6500, 97))
    result = run_script("--base-url", server.url, "--user-id", "bulky", "--delete-all", "--yes", "--json")
    assert result.code == 0, result.stderr
    report = result.json()
    assert report["count"] == 6500 and report["not_found"] == [] and report["dry_run"] is False
    assert [memory["memory_id"] for memory in report["deleted"]] == [f"b-{n:05d}" for n in range(6500)]
    assert report["deleted"][-1]["memory"] == f"fact 6499 {padding}"
    assert server.memories("bulky") == []


@pytest.mark.parametrize("deleted", [10, 200], ids=["within-the-overlap", "more-than-the-overlap"])
def test_writes_between_two_pages_never_drop_or_repeat_a_memory(fresh_agentos, tmp_path, deleted):
    """Deleting memories that sort before the walk's position shifts every later row
    back; creating some shifts them on. Held between the first and second page by a
    proxy, so the writes land mid-walk every time."""
    server = fresh_agentos()
    fill(server, [(f"m-{n:06d}", f"user-{n % 50}", f"fact {n}") for n in range(12_000)])
    gone = {f"m-{n:06d}" for n in range(deleted)}
    target = tmp_path / "all.jsonl"
    with GatedProxy(server.url, hold=2) as proxy:
        exporting = start_script("--base-url", proxy.url, "--export", target)
        assert proxy.held.wait(60), "the export never asked for a second page"
        with server.http() as http:
            http.request("DELETE", "/memories", json={"memory_ids": sorted(gone)}).raise_for_status()
        fill(server, [(f"a-{n:06d}", "newcomer", f"new fact {n}") for n in range(30)])
        proxy.released.set()
        _, stderr = exporting.communicate(timeout=120)
    assert exporting.returncode == 0, stderr
    ids = exported_ids(target)
    survivors = {f"m-{n:06d}" for n in range(deleted, 12_000)}
    assert len(ids) == len(set(ids)), "a memory was exported twice"
    assert survivors <= set(ids), f"missing: {sorted(survivors - set(ids))[:5]}"
    assert set(ids) - survivors <= gone | {f"a-{n:06d}" for n in range(30)}
    assert re.search(r"at least \d+ memories were created or deleted while this read them", stderr)


def test_a_long_export_shows_nothing_on_stderr_when_not_a_terminal(crowded, tmp_path):
    exporting = start_script("--base-url", crowded.url, "--export", tmp_path / "x.jsonl")
    _, stderr = exporting.communicate(timeout=120)
    assert exporting.returncode == 0 and stderr == ""


def test_import_reads_the_server_once_when_the_file_is_larger(fresh_agentos, tmp_path):
    server = fresh_agentos()
    fill(server, [(f"m-{n:06d}", "owner", f"fact {n}") for n in range(6000)])
    backup = tmp_path / "in.jsonl"
    backup.write_text("".join(json.dumps({"memory": f"new {n}", "user_id": "owner"}) + "\n" for n in range(400)))
    before = len(server.requests())
    result = run_script("--base-url", server.url, "--import", backup, "--json")
    assert result.code == 0, result.stderr
    assert result.json()["created"] == 400
    walked = [page for page in memory_gets(server, before) if int(page["limit"]) > 1]
    assert 1 <= len(walked) <= 3 and not [line for line in server.requests()[before:] if "GET /memories/" in line]


def test_a_larger_server_is_read_in_a_few_large_pages(fresh_agentos, tmp_path):
    # Past 4 x 5,000 memories the pages grow to about a quarter of the total: each page
    # makes the server skip every row before it, so fewer pages cost less.
    server = fresh_agentos()
    fill(server, [(f"g-{n:06d}", f"grown-{n % 700}", f"fact {n}") for n in range(60_000)])
    target = tmp_path / "all.jsonl"
    result = run_script("--base-url", server.url, "--export", target)
    assert result.code == 0, result.stderr
    ids = exported_ids(target)
    assert len(ids) == 60_000 and len(set(ids)) == 60_000
    pages = memory_gets(server)
    assert {page["sort_by"] for page in pages} == {"memory_id"}
    assert int(pages[0]["limit"]) == PAGE and len(pages) <= 7  # pages of 5,000 would take 13
    assert min(int(page["limit"]) for page in pages[1:-1]) >= 60_000 // 4 // 2
