"""Same fact or not, and may it contradict: a judgement of two memories of one user,
measured on the labelled pairs of tests/fact_pairs.py. In-process, no server: the
script's own Embedder gives the cosine, its words()/content_words() give the words.

    uv run python tests/benchmarks/pairs.py            # the table, the tuning part's errors listed
    uv run python tests/benchmarks/pairs.py --tune     # how the thresholds were chosen (TUNING only)
    uv run python tests/benchmarks/pairs.py --errors   # every error, the held-out parts' too

The judgement measured is the script's own, in its "same fact" section: same_fact()
for --duplicates/--dedupe --by meaning and --create, may_contradict() for --conflicts,
--create's may_replace and --find's "older". Each memory is embedded as the script
embeds it (fact_text: without "the user", or the user's name it starts with).
"""

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT / "scripts"), str(ROOT / "tests")]

import manage_memories
from fact_pairs import CONTRADICTING, DIFFERENT, FRESH, HELD_OUT, LABELS, TUNING, pairs
from fact_pairs_independent import INDEPENDENT
from fact_pairs_independent_2 import INDEPENDENT_2
from fact_pairs_tuning_2 import TUNING_2
from manage_memories import Fact, fact_text, may_contradict, names_in, same_fact

# === measuring ================================================================


def named(rows):
    """The pairs as memories that start with the user's name: 'Ken is vegan'."""

    def with_name(text):
        if text.startswith(("His ", "Her ", "The ", "User", "Ken")) or names_in(text)[0]:
            return text
        return f"Ken {text[0].lower()}{text[1:]}"

    return [(with_name(first), with_name(second), label) for first, second, label in rows]


def embed_pairs(embedder, rows, stem):
    """Each pair as two Facts and their cosine, and the seconds one pair took to embed."""
    started = time.perf_counter()
    facts = [(Fact.of(first, stem), Fact.of(second, stem)) for first, second, _ in rows]
    # The name both start with is the user's, as own_name() finds it among a user's memories.
    names = [first.subject if first.subject == second.subject else None for first, second in facts]
    firsts = embedder.embed([fact_text(first, name) for (first, _), name in zip(facts, names, strict=True)])
    seconds = embedder.embed([fact_text(second, name) for (_, second), name in zip(facts, names, strict=True)])
    took = (time.perf_counter() - started) / len(rows)
    return facts, [float(cosine) for cosine in (firsts * seconds).sum(axis=1)], took


def judged(rows, facts, cosines):
    """(first, second, label, cosine, same, contradiction reason) for each pair."""
    return [
        (first, second, label, cosine, same_fact(*pair, cosine), may_contradict(*pair, cosine))
        for (first, second, label), pair, cosine in zip(rows, facts, cosines, strict=True)
    ]


def share(items, holds):
    items = list(items)
    return (sum(1 for item in items if holds(item)), len(items))


def figures(results):
    """The four figures the requirement names, each (count, out of)."""
    return {
        "same found": share((r for r in results if r[2] == "same"), lambda r: r[4]),
        "different merged": share((r for r in results if r[2] in DIFFERENT), lambda r: r[4]),
        "contradiction found": share((r for r in results if r[2] in CONTRADICTING), lambda r: r[5]),
        "false alarm": share((r for r in results if r[2] in ("same", "unrelated", "other_person")), lambda r: r[5]),
    }


def errors(results):
    """The pairs judged wrongly: a same fact not found, a different one merged, a
    contradiction missed, a false alarm."""
    wrong = []
    for first, second, label, cosine, same, why in results:
        if (label == "same") != same:
            wrong.append(("missed same" if label == "same" else f"merged {label}", cosine, first, second, why))
        elif label in CONTRADICTING and not why:
            wrong.append((f"no warning, {label}", cosine, first, second, why))
        elif label in ("same", "unrelated", "other_person") and why:
            wrong.append((f"false alarm, {label}", cosine, first, second, why))
    return wrong


def sweep(rows, facts, cosines):
    """Each threshold from 0 to 0.95, the others as set: the tuning part's figures, so
    that a value is chosen inside the range where they are best, not on its edge."""
    for name in ("SAME_COSINE", "CONTRADICT_COSINE", "UPDATE_COSINE"):
        chosen = getattr(manage_memories, name)
        for step in range(20):
            setattr(manage_memories, name, step / 20)
            found = figures(judged(rows, facts, cosines))
            mark = " <- chosen" if abs(step / 20 - chosen) < 1e-9 else ""
            print(
                f"{name} {step / 20:.2f}: "
                + ", ".join(f"{key} {percent(value)}" for key, value in found.items())
                + mark
            )
        setattr(manage_memories, name, chosen)


def percent(pair):
    count, total = pair
    return f"{count}/{total} = {count / total:.1%}" if total else "-"


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--tune", action="store_true", help="each threshold swept on the tuning part (held out not shown)"
    )
    parser.add_argument("--errors", action="store_true", help="list the held-out parts' errors too")
    args = parser.parse_args()
    import Stemmer

    stem = Stemmer.Stemmer("english").stemWord
    folder = manage_memories.MODEL_FOLDER
    started = time.perf_counter()
    embedder = manage_memories.Embedder(folder, manage_memories.model_name(folder))
    load_seconds = time.perf_counter() - started
    parts = {
        "tuning": pairs(TUNING),
        "tuning 2": pairs(TUNING_2),
        "held out": pairs(HELD_OUT),
        "fresh": pairs(FRESH),
        "independent": pairs(INDEPENDENT),
        "independent 2": pairs(INDEPENDENT_2),
    }
    parts |= {f"{part}, named": named(rows) for part, rows in parts.items()}
    facts, cosines, embed_seconds = {}, {}, []
    for part, rows in parts.items():
        facts[part], cosines[part], took = embed_pairs(embedder, rows, stem)
        embed_seconds.append(took)
    if args.tune:
        tuning = ("tuning", "tuning, named", "tuning 2", "tuning 2, named")
        sweep(*(sum((table[part] for part in tuning), []) for table in (parts, facts, cosines)))
        return
    results = {}
    for part, rows in parts.items():
        started = time.perf_counter()
        results[part] = judged(rows, facts[part], cosines[part])
        rule_seconds = (time.perf_counter() - started) / len(rows)
    print(
        f"model loaded in {load_seconds:.2f} s; a pair: {sum(embed_seconds) / 2 * 1000:.2f} ms to embed both, "
        f"{rule_seconds * 1000:.3f} ms for the rules"
    )
    print(
        "thresholds: "
        + ", ".join(
            f"{name} {getattr(manage_memories, name)}" for name in ("SAME_COSINE", "CONTRADICT_COSINE", "UPDATE_COSINE")
        )
    )
    print("| part | pairs | same found (>= 90%) | different merged (<= 2%) | contradiction found | false alarm |")
    print("|---|---|---|---|---|---|")
    # The held-out parts together: what the targets are measured on.
    held_out = ("held out", "fresh", "independent", "independent 2")
    results["held out, all"] = [row for part in held_out for row in results[part]]
    parts["held out, all"] = [row for part in held_out for row in parts[part]]
    for part, found in ((part, figures(results[part])) for part in parts):
        print(f"| {part} | {len(parts[part])} | " + " | ".join(percent(value) for value in found.values()) + " |")
    for part in ("held out", "fresh", "independent", "independent 2"):
        print(f"\nby label ({part}): judged same / warned as contradicting")
        for label in LABELS:
            rows = [r for r in results[part] if r[2] == label]
            print(
                f"  {label:20} {percent(share(rows, lambda r: r[4])):>16}   {percent(share(rows, lambda r: r[5])):>16}"
            )
    # The held-out parts' errors only when asked: read while rules are written, they tune them.
    tuning = ("tuning", "tuning, named", "tuning 2", "tuning 2, named")
    for part in [part for part in parts if part != "held out, all"] if args.errors else tuning:
        print(f"\nerrors, {part}:")
        for what, cosine, first, second, why in sorted(errors(results[part])):
            print(f"  {what:32} {cosine:.2f}  {first!r} / {second!r}" + (f"  ({why})" if why else ""))


if __name__ == "__main__":
    main()
