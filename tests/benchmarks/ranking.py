"""Recall of --find on the ranking set (tests/ranking_set.py), by words only, by meaning
only and by both fused, for the tuning part and the held-out part apart; and what each
model costs. In-process, no server: the script's own Ranking and Embedder.

    uv run python tests/benchmarks/ranking.py
    uv run python tests/benchmarks/ranking.py --onnx /tmp/model-fp32.onnx   # another export
    uv run --with model2vec python tests/benchmarks/ranking.py --model2vec /tmp/m2v-minilm

recall@k: the share of questions whose answer is among the first k results.
"""

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT / "scripts"), str(ROOT / "tests")]

import manage_memories  # noqa: E402
from ranking_set import HELD_OUT, MEMORIES, TUNING  # noqa: E402

TOPICS = "topics"  # vectors[TOPICS, key]: the vector of a memory's topics


def load_model(args):
    """(name, embed(texts) -> unit vectors, load seconds)."""
    started = time.perf_counter()
    if args.model2vec:
        from model2vec import StaticModel

        model = StaticModel.from_pretrained(args.model2vec)
        return (
            f"model2vec {Path(args.model2vec).name}",
            lambda texts: model.encode(texts),
            time.perf_counter() - started,
        )
    folder = manage_memories.MODEL_FOLDER
    if args.onnx:
        import shutil
        import tempfile

        folder = Path(tempfile.mkdtemp()) / "model"
        folder.mkdir()
        shutil.copy(args.onnx, folder / "model.onnx")
        shutil.copy(manage_memories.MODEL_FOLDER / "tokenizer.json", folder / "tokenizer.json")
    embedder = manage_memories.Embedder(folder, "benchmark")
    return f"onnx {args.onnx or 'models/all-minilm-l6-v2'}", embedder.embed, time.perf_counter() - started


def ranked(case, texts, vectors, query_vector, mode):
    """(the memory keys in the order --find gives them, for one mode; those that score as matches).
    As --find does: the question without the user's name, each memory's topics beside its sentence."""
    import Stemmer

    stem = Stemmer.Stemmer("english").stemWord
    keys = [key for key in texts if case.user is None or key[0] == case.user]
    subject = manage_memories.subject_words(case.user)
    ranking = manage_memories.Ranking(manage_memories.Query.parse(case.query, stem, subject), stem, limit=len(keys))
    closeness = {
        key: manage_memories.closeness(float(vectors[key] @ query_vector), float(vectors[TOPICS, key] @ query_vector))
        for key in keys
    }
    for number, key in enumerate(keys):
        cosine = 0.0 if mode == "words" else closeness[key]
        memory = {"memory_id": f"{key[0]}/{key[1]}", "memory": texts[key], "topics": MEMORIES[key[0]][key[1]][1]}
        ranking.add(dict(memory, updated_at=f"{number:06}"), cosine)
    if mode == "meaning":
        return sorted(keys, key=closeness.get, reverse=True)[:5], None
    best, _, _ = ranking.best()
    order = [tuple(memory["memory_id"].split("/")) for memory in best]
    return order[:5], {key for key, memory in zip(order, best, strict=True) if memory["score"] >= 0.5}


def question(case):
    """The question as --find embeds it."""
    return manage_memories.meaning_query(case.query, manage_memories.subject_words(case.user))


def recall(cases, texts, vectors, embed, mode):
    """(recall@1, recall@5, share of answers scored a match, other matches a query)."""
    first, five, answer_matches, other_matches = 0, 0, 0, 0
    for case in cases:
        order, matches = ranked(case, texts, vectors, embed([question(case)])[0], mode)
        first += order[:1] == [case.answer]
        five += case.answer in order[:5]
        if matches is not None:
            answer_matches += case.answer in matches
            other_matches += len(matches - {case.answer})
    return first / len(cases), five / len(cases), answer_matches / len(cases), other_matches / len(cases)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--onnx", help="another ONNX export of the model, with the same tokenizer")
    parser.add_argument("--model2vec", help="a model2vec static model folder, for comparison")
    parser.add_argument("--misses", action="store_true", help="list the questions whose answer is not first")
    args = parser.parse_args()
    name, embed, load_seconds = load_model(args)
    texts = {(user, key): text for user, memories in MEMORIES.items() for key, (text, _) in memories.items()}
    started = time.perf_counter()
    matrix = embed(list(texts.values()))
    per_memory = (time.perf_counter() - started) / len(texts)
    vectors = dict(zip(texts, matrix, strict=True))
    topics = {key: manage_memories.topics_text(MEMORIES[key[0]][key[1]][1]) for key in texts}
    vectors.update(zip([(TOPICS, key) for key in topics], embed(list(topics.values())), strict=True))
    print(f"{name}: loaded in {load_seconds:.2f} s, {per_memory * 1000:.1f} ms a memory ({len(texts)} memories)")
    print("| part | queries | mode | recall@1 | recall@5 | answer scored a match | other matches a query |")
    print("|---|---|---|---|---|---|---|")
    for part, cases in (("tuning", TUNING), ("held out", HELD_OUT)):
        for mode in ("words", "meaning", "hybrid"):
            at_one, at_five, answer, others = recall(cases, texts, vectors, embed, mode)
            calibration = "| - | - |" if mode == "meaning" else f"| {answer:.0%} | {others:.1f} |"
            print(f"| {part} | {len(cases)} | {mode} | {at_one:.0%} | {at_five:.0%} {calibration}")
    if args.misses:
        for case in TUNING + HELD_OUT:
            order, _ = ranked(case, texts, vectors, embed([question(case)])[0], "hybrid")
            if order[:1] != [case.answer]:
                print(f"  {case.query!r}: answer {case.answer}, got {order[:3]}")


if __name__ == "__main__":
    main()
