"""Same fact or not, and may it contradict: a judgement of two memories of one user,
measured on the labelled pairs of tests/fact_pairs.py. In-process, no server: the
script's own Embedder gives the cosine, its words()/content_words() give the words.

    uv run python tests/benchmarks/pairs.py            # the table, held-out errors listed
    uv run python tests/benchmarks/pairs.py --tune     # how the thresholds were chosen (TUNING only)
    uv run python tests/benchmarks/pairs.py --errors   # every error, tuning part too

The judgement is the functions between the two banners below, pure and small, meant
to be pasted into the script's "meaning" section: same_fact() for --duplicates and
--create ("a reworded same fact stores nothing"), may_contradict() for --create's
warning. Cosine alone cannot tell: on the tuning part a negation scores 0.72-0.95 and
another number up to 0.96, the band where most rewordings lie (0.55-0.92). So cosine
says "about the same thing", and cheap rules say what makes two such facts differ.
"""

import argparse
import re
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT / "scripts"), str(ROOT / "tests")]

import manage_memories
from fact_pairs import CONTRADICTING, DIFFERENT, HELD_OUT, LABELS, TUNING, pairs
from manage_memories import QUESTION_WORDS, content_words, words

# === the judgement ============================================================
# Two memories state the same fact when the model finds them close (SAME_COSINE) and
# no rule finds what would make them differ: a negation in one only, another number,
# another name or place, another person, or one word swapped for another in the same
# frame ("prefers tea"/"prefers coffee": what the model scores as close as a
# rewording). They may contradict when they are about one subject (CONTRADICT_COSINE)
# of one person and one of those rules, or a word of change ("moved", "now"), holds.

SAME_COSINE = 0.5  # tuning: every same fact the rules let through scores 0.56 or more, every other fact 0.44 or less
# tuning: contradictions by a rule score 0.47 or more, unrelated pairs 0.16 or less (0.40
# when both start with one name: the "named" row), so 0.4 holds either way
CONTRADICT_COSINE = 0.4
# tuning: an update says so ("moved to Madrid") yet scores as low as 0.19 against what it
# replaces ("lives in Lyon" 0.44, "his manager is Priya"/"reports to Daniel now" 0.19)
UPDATE_COSINE = 0.15

# Words that deny what follows them (words() drops the apostrophe: "doesnt").
NEGATIONS = frozenset(
    [
        "not",
        "no",
        "never",
        "none",
        "nothing",
        "nobody",
        "neither",
        "nor",
        "cannot",
        "cant",
        "dont",
        "doesnt",
        "didnt",
        "isnt",
        "arent",
        "wasnt",
        "werent",
        "hasnt",
        "havent",
        "hadnt",
        "wont",
        "wouldnt",
        "shouldnt",
        "couldnt",
        "avoid",
        "avoids",
        "avoided",
        "stopped",
        "stop",
        "stops",
        "quit",
        "quits",
        "dislike",
        "dislikes",
        "disliked",
        "hate",
        "hates",
        "hated",
    ]
)
NEGATING_PREFIXES = ("un", "dis", "non", "in", "im")  # "unavailable" denies "available"
# Words of change: a new memory holding one updates the old fact it is close to.
CHANGES = frozenset(
    [
        "now",
        "moved",
        "move",
        "moving",
        "switched",
        "switch",
        "changed",
        "change",
        "started",
        "start",
        "stopped",
        "quit",
        "left",
        "leaving",
        "new",
        "newly",
        "broke",
        "relocated",
        "transferred",
        "promoted",
        "sold",
        "bought",
        "became",
        "become",
        "got",
        "gave",
        "longer",
        "anymore",
        "joined",
        "graduated",
        "postponed",
        "cancelled",
        "canceled",
        "retired",
        "replaced",
    ]
)
# Who a fact is about, when not the user; the same relation in other words is one word.
PERSONS = {
    "son": "son", "sons": "son", "daughter": "daughter", "daughters": "daughter",
    "child": "child", "children": "child", "kid": "child", "kids": "child",
    "wife": "wife", "husband": "husband", "partner": "partner", "girlfriend": "girlfriend",
    "boyfriend": "boyfriend", "fiance": "fiance", "fiancee": "fiance",
    "mother": "mother", "mom": "mother", "mum": "mother", "father": "father", "dad": "father",
    "parents": "parents", "brother": "brother", "brothers": "brother", "sister": "sister",
    "sisters": "sister", "sibling": "sibling", "siblings": "sibling", "grandmother": "grandmother",
    "grandma": "grandmother", "grandfather": "grandfather", "grandpa": "grandfather",
    "aunt": "aunt", "uncle": "uncle", "cousin": "cousin", "niece": "niece", "nephew": "nephew",
    "friend": "friend", "colleague": "colleague", "roommate": "roommate",
}  # fmt: skip
NUMBER_WORDS = {
    "zero": 0, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7,
    "eight": 8, "nine": 9, "ten": 10, "eleven": 11, "twelve": 12, "twenty": 20, "thirty": 30,
    "once": 1, "twice": 2, "noon": 12, "midnight": 0, "dozen": 12, "half": 0.5,
    "first": 1, "second": 2, "third": 3, "fourth": 4, "fifth": 5,
}  # fmt: skip
# Words that frame a fact rather than state it: a swap between them is a rewording.
FRAME_WORDS = frozenset(
    [
        "name",
        "named",
        "called",
        "call",
        "every",
        "each",
        "always",
        "usually",
        "often",
        "currently",
        "mostly",
        "really",
        "also",
        "like",
        "likes",
        "liked",
        "prefer",
        "prefers",
        "preferred",
        "love",
        "loves",
        "enjoy",
        "enjoys",
        "want",
        "wants",
        "rather",
        "instead",
        "over",
        "than",
        "whenever",
        "possible",
    ]
)
UNITS = frozenset(["am", "pm", "km", "kg", "cm", "mg", "ml", "mi", "lb", "lbs", "h", "min", "k"])
NUMBER_PATTERN = re.compile(r"(\d[\d,]*(?:\.\d+)?)(?::(\d\d))?")


def fact_texts(first, second):
    """What is embedded for the judgement: both memories without the name they both
    start with, and without 'the user'. Memories that all start with the user's name
    ('Ken drinks green tea', 'Ken drinks orange juice') score 0.2-0.3 closer for the
    name alone; whom a fact is about is the rules' business (names, persons)."""
    first_subject, _ = names(first)
    second_subject, _ = names(second)
    texts = [first, second]
    if first_subject and first_subject == second_subject and not persons(first_subject):
        texts = [re.sub(r"^\s*\w+(?:['’]s)?\s+", "", text) for text in texts]
    return [re.sub(r"^\s*(?:the\s+)?users?(?:['’]s)?\s+", "", text, flags=re.IGNORECASE) for text in texts]


def numbers(text):
    """The numbers a memory states, digits or words: '6:00' and '6 am' are both 6, '5k' is 5."""
    found = set()
    for whole, minutes in NUMBER_PATTERN.findall(text):
        value = float(whole.replace(",", ""))
        found.add(value if not minutes or minutes == "00" else value + int(minutes) / 100)
    found.update(NUMBER_WORDS[word] for word in words(text) if word in NUMBER_WORDS)
    return found


def names(text):
    """(whom the memory is about if it starts with a name, its names and places): capitalized
    words after the first, and the first when it is someone's ('Ken's', 'Anna plays',
    'Maria is'), not a verb ('Plays tennis') or a common word ('The user's')."""
    tokens = re.findall(r"[^\W\d_][\w'’-]*", text)
    found = {token for token in tokens[1:] if token[0].isupper()}
    subject = None
    first_word = tokens[0].lower() if tokens else ""
    if (
        len(tokens) > 1
        and tokens[0][0].isupper()
        and first_word not in QUESTION_WORDS
        and not first_word.endswith("ly")
    ):
        first, after = tokens[0], tokens[1]
        if (
            re.search(r"['’]s$", first)
            or after.lower() in ("is", "was")
            or (not first.lower().endswith("s") and after.lower().endswith("s") and after.islower())
        ):
            subject = possessor(first).lower()
    found = {possessor(name).lower() for name in found}
    return subject, found | {subject} - {None}


def possessor(word):
    """'Ken's' is Ken; 'wifes' (words() drops the apostrophe) is wife when wife is known."""
    return re.sub(r"['’]s$", "", word)


def acronyms(text):
    """What runs of capitalized words stand for: 'Visual Studio Code' gives vsc, vs and sc."""
    found = set()
    for run in re.findall(r"(?:\b[A-Z][\w]*\s+)+[A-Z][\w]*", text):
        initials = "".join(word[0] for word in run.split()).lower()
        found.update(
            initials[start:end] for start in range(len(initials)) for end in range(start + 2, len(initials) + 1)
        )
    return found


def persons(text):
    """Who, besides the user, the memory names by relation: 'mom and dad' are the parents."""
    found = set()
    for word in words(text):
        if word in PERSONS or (word.endswith("s") and word[:-1] in PERSONS):
            found.add(PERSONS.get(word) or PERSONS[word[:-1]])
    if {"mother", "father"} <= found:
        found = found - {"mother", "father"} | {"parents"}
    return found


def stems(text, stem):
    """The stems of a memory's content words, in order."""
    return [stem(word) for word in content_words(text)]


def matches(word, others):
    """One stem among others, or one is the start of another ('allerg', 'allergi')."""
    return any(
        word == other or (min(len(word), len(other)) >= 5 and (other.startswith(word) or word.startswith(other)))
        for other in others
    )


def denied(text, stem):
    """(stems denied, stems stated): 'doesn't eat meat' denies eat and meat; a word with a
    negating prefix denies its root ('unavailable', 'dislikes'); 'gluten-free' denies gluten."""
    no, yes = set(), set()
    for clause in re.split(r"[,;.]|\bbut\b", text):
        negated = False
        for word in words(clause):
            if word in NEGATIONS:
                negated = True
                if word.startswith("dis"):
                    no.add(stem(word[3:]))
                continue
            (no if negated else yes).add(stem(word))
    for word in re.findall(r"([^\W\d_]+)-free\b", text.lower()):
        no.add(stem(word))
        yes -= {stem(word), stem(word + "free"), "free"}
    for word in list(yes):
        for prefix in NEGATING_PREFIXES:
            if word.startswith(prefix) and len(word) - len(prefix) >= 4:
                no.add(word[len(prefix) :])
    return no, yes


def differences(first, second, stem):
    """Why two memories close in meaning state different facts: [] when no rule finds why."""
    why = []
    first_no, first_yes = denied(first, stem)
    second_no, second_yes = denied(second, stem)
    if any(matches(word, second_yes) for word in first_no) or any(matches(word, first_yes) for word in second_no):
        why.append("negation")
    first_numbers, second_numbers = numbers(first), numbers(second)
    if first_numbers and second_numbers and first_numbers != second_numbers:
        why.append("number")
    first_subject, first_names = names(first)
    second_subject, second_names = names(second)
    first_words, second_words = {stem(word) for word in words(first)}, {stem(word) for word in words(second)}
    first_names = {name for name in first_names if not matches(stem(name), second_words)} - acronyms(second)
    second_names = {name for name in second_names if not matches(stem(name), first_words)} - acronyms(first)
    if persons(first) != persons(second) or (first_subject and second_subject and first_subject != second_subject):
        why.append("person")
    elif first_names and second_names:
        why.append("name")
    if swapped(first, second, stem):
        why.append("value")
    if CHANGES.intersection(words(first)) ^ CHANGES.intersection(words(second)):
        why.append("change")
    return why


def predicate_and_rest(text, stem):
    """(the first word saying what is stated, the words after it that may hold a value):
    names and persons are not the predicate; numbers, units and framing words are no value."""
    _, found = names(text)
    kept = [
        word
        for word in content_words(text)
        if word not in UNITS and word not in NUMBER_WORDS and not any(char.isdigit() for char in word)
    ]
    predicate = next((word for word in kept if word not in found and not persons(word)), None)
    rest = [stem(PERSONS.get(word, word)) for word in kept if word != predicate and word not in FRAME_WORDS]
    return (stem(predicate) if predicate else None), rest


def swapped(first, second, stem):
    """One frame, another value: all words shared but one on each side, besides the
    predicate ('prefers dark mode'/'prefers light mode', 'wants invoices'/'wants reports')."""
    first_predicate, first_rest = predicate_and_rest(first, stem)
    second_predicate, second_rest = predicate_and_rest(second, stem)
    first_only = [word for word in first_rest if not matches(word, second_rest + [second_predicate or ""])]
    second_only = [word for word in second_rest if not matches(word, first_rest + [first_predicate or ""])]
    return len(first_only) == 1 and len(second_only) == 1 and first_predicate == second_predicate


def same_fact(first, second, cosine, stem):
    """The same fact in other words: the second need not be stored."""
    return cosine >= SAME_COSINE and not differences(first, second, stem)


def may_contradict(first, second, cosine, stem):
    """Why the second may contradict the first (None if it does not seem to): about the
    same subject and person, and denied, another value, or a word of change."""
    if same_fact(first, second, cosine, stem):
        return None
    why = differences(first, second, stem)
    if "person" in why:
        return None
    if cosine >= UPDATE_COSINE and "change" in why:
        return "change"
    if cosine >= CONTRADICT_COSINE and why:
        return why[0]
    return None


# === measuring ================================================================


def named(rows):
    """The pairs as memories that start with the user's name: 'Ken is vegan'."""

    def with_name(text):
        if text.startswith(("His ", "Her ", "The ", "User", "Ken")) or names(text)[0]:
            return text
        return f"Ken {text[0].lower()}{text[1:]}"

    return [(with_name(first), with_name(second), label) for first, second, label in rows]


def embed_pairs(embedder, rows):
    """The cosine of each pair, and the seconds one pair took to embed."""
    started = time.perf_counter()
    texts = [fact_texts(first, second) for first, second, _ in rows]
    firsts = embedder.embed([first for first, _ in texts])
    seconds = embedder.embed([second for _, second in texts])
    took = (time.perf_counter() - started) / len(rows)
    return [float(cosine) for cosine in (firsts * seconds).sum(axis=1)], took


def judged(rows, cosines, stem):
    """(first, second, label, cosine, same, contradiction reason) for each pair."""
    return [
        (
            first,
            second,
            label,
            cosine,
            same_fact(first, second, cosine, stem),
            may_contradict(first, second, cosine, stem),
        )
        for (first, second, label), cosine in zip(rows, cosines, strict=True)
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


def sweep(rows, cosines, stem):
    """Each threshold from 0 to 0.95, the others as set: the tuning part's figures, so
    that a value is chosen inside the range where they are best, not on its edge."""
    for name in ("SAME_COSINE", "CONTRADICT_COSINE", "UPDATE_COSINE"):
        chosen = globals()[name]
        for step in range(20):
            globals()[name] = step / 20
            found = figures(judged(rows, cosines, stem))
            mark = " <- chosen" if abs(step / 20 - chosen) < 1e-9 else ""
            print(
                f"{name} {step / 20:.2f}: "
                + ", ".join(f"{key} {percent(value)}" for key, value in found.items())
                + mark
            )
        globals()[name] = chosen


def percent(pair):
    count, total = pair
    return f"{count}/{total} = {count / total:.1%}" if total else "-"


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--tune", action="store_true", help="each threshold swept on the tuning part (held out not shown)"
    )
    parser.add_argument("--errors", action="store_true", help="list the tuning part's errors too")
    args = parser.parse_args()
    import Stemmer

    stem = Stemmer.Stemmer("english").stemWord
    folder = manage_memories.MODEL_FOLDER
    started = time.perf_counter()
    embedder = manage_memories.Embedder(folder, manage_memories.model_name(folder))
    load_seconds = time.perf_counter() - started
    parts = {"tuning": pairs(TUNING), "held out": pairs(HELD_OUT)}
    parts |= {f"{part}, named": named(rows) for part, rows in parts.items()}
    cosines, embed_seconds = {}, []
    for part, rows in parts.items():
        cosines[part], took = embed_pairs(embedder, rows)
        embed_seconds.append(took)
    if args.tune:
        sweep(parts["tuning"] + parts["tuning, named"], cosines["tuning"] + cosines["tuning, named"], stem)
        return
    results = {}
    for part, rows in parts.items():
        started = time.perf_counter()
        results[part] = judged(rows, cosines[part], stem)
        rule_seconds = (time.perf_counter() - started) / len(rows)
    print(
        f"model loaded in {load_seconds:.2f} s; a pair: {sum(embed_seconds) / 2 * 1000:.2f} ms to embed both, "
        f"{rule_seconds * 1000:.3f} ms for the rules"
    )
    print(
        f"thresholds: SAME_COSINE {SAME_COSINE}, CONTRADICT_COSINE {CONTRADICT_COSINE}, UPDATE_COSINE {UPDATE_COSINE}"
    )
    print("| part | pairs | same found (>= 90%) | different merged (<= 2%) | contradiction found | false alarm |")
    print("|---|---|---|---|---|---|")
    for part, found in ((part, figures(results[part])) for part in parts):
        print(f"| {part} | {len(parts[part])} | " + " | ".join(percent(value) for value in found.values()) + " |")
    print("\nby label (held out): judged same / warned as contradicting")
    for label in LABELS:
        rows = [r for r in results["held out"] if r[2] == label]
        print(f"  {label:20} {percent(share(rows, lambda r: r[4])):>16}   {percent(share(rows, lambda r: r[5])):>16}")
    for part in list(parts) if args.errors else ("held out", "held out, named"):
        print(f"\nerrors, {part}:")
        for what, cosine, first, second, why in sorted(errors(results[part])):
            print(f"  {what:32} {cosine:.2f}  {first!r} / {second!r}" + (f"  ({why})" if why else ""))


if __name__ == "__main__":
    main()
