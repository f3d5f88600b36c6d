"""A ranking test set: memories of three users and natural questions about them.

Each query names the user it asks about (None: every user) and the memory that
answers it. Queries marked `known_miss` need a meaning the words do not carry
("vegetarian" for "eats no meat or fish"): --find is a word search, and the
set keeps such queries to report that honestly, not to hide it.
"""

from dataclasses import dataclass

MEMORIES = {
    "alice": {
        "dark": ("Prefers dark mode in every editor", ["preferences", "ui"]),
        "birthday": ("Birthday is on March 3rd", ["personal"]),
        "cafe": ("Works from a café in Lisbon with good Wi-Fi", ["work"]),
        "runs": ("Runs every morning before work", ["health"]),
        "peanuts": ("Allergic to peanuts", ["health"]),
        "coffee": ("Drinks coffee black, no sugar", ["food"]),
        "meat": ("Eats no meat or fish", ["food"]),
        "cats": ("Has two cats named Miso and Tofu", ["pets"]),
        "japanese": ("Is learning Japanese on weekends", ["learning"]),
        "tokyo": ("Flying to Tokyo in December for a conference", ["travel"]),
        "neovim": ("Uses Neovim with the Gruvbox theme", ["tools", "ui"]),
        "manager": ("Manager is Priya; weekly one-on-one on Tuesdays", ["work"]),
        "email": ("Prefers email over phone calls", ["communication"]),
        "daughter": ("Daughter started school in September", ["family"]),
        "books": ("Reads science fiction, favourite author Ursula K. Le Guin", ["books"]),
        "timezone": ("Timezone is Europe/Lisbon (UTC+0, UTC+1 in summer)", ["settings"]),
    },
    "bob": {
        "light": ("Prefers light mode", ["preferences", "ui"]),
        "birthday": ("Birthday is July 14", ["personal"]),
        "lactose": ("Lactose intolerant: no milk in coffee", ["health", "food"]),
        "guitar": ("Plays the guitar in a jazz band", ["music"]),
        "car": ("Drives an electric car", ["transport"]),
        "fridays": ("Deploys on Fridays are forbidden in his team", ["work"]),
        "languages": ("Speaks Portuguese and Spanish", ["languages"]),
        "cycling": ("Cycling to the office when it is not raining", ["health"]),
        "invoices": ("Wants invoices in PDF, not paper", ["billing"]),
        "wifi": ("Home Wi-Fi drops in the evening; the router is old", ["support"]),
        "dish": ("Favourite dish is bacalhau", ["food"]),
        "passwords": ("Password resets must go through the security team", ["security"]),
    },
    "carla": {
        "vegetarian": ("Vegetarian since 2019", ["food"]),
        "mornings": ("Prefers meetings before noon", ["work"]),
        "marathon": ("Running a marathon in April", ["health"]),
        "porto": ("Works remotely from Porto", ["work"]),
        "colour": ("Color-blind: avoid red/green charts", ["accessibility"]),
        "wednesday": ("Has a meeting-free Wednesday", ["work"]),
        "hiking": ("Loves hiking in the mountains", ["hobbies"]),
        "son": ("Her son's name is Tomás", ["family"]),
    },
}


@dataclass(frozen=True)
class Case:
    user: str | None  # None: ask across every user
    query: str
    answer: tuple  # (user, key) of the memory that answers it
    kind: str  # paraphrase, word form, typo, question, accents, hyphen, synonym
    known_miss: bool = False


CASES = [
    Case("alice", "dark theme", ("alice", "dark"), "paraphrase"),
    Case("alice", "when is her birthdy?", ("alice", "birthday"), "typo"),
    Case("alice", "wifi cafe", ("alice", "cafe"), "hyphen, accents"),
    Case("alice", "does she run?", ("alice", "runs"), "word form"),
    Case("alice", "peanut allergy", ("alice", "peanuts"), "word form"),
    Case("alice", "how does she take her coffee", ("alice", "coffee"), "question"),
    Case("alice", "names of the cats", ("alice", "cats"), "word form"),
    Case("alice", "what language is she learning", ("alice", "japanese"), "question"),
    Case("alice", "trip to tokyo", ("alice", "tokyo"), "paraphrase"),
    Case("alice", "which editor does she use", ("alice", "neovim"), "question"),
    Case("alice", "who is her manager", ("alice", "manager"), "question"),
    Case("alice", "email or phone?", ("alice", "email"), "question"),
    Case("alice", "favorite author", ("alice", "books"), "spelling"),
    Case("alice", "time zone", ("alice", "timezone"), "compound"),
    Case("alice", "vegetarian", ("alice", "meat"), "synonym", known_miss=True),
    Case("bob", "milk allergy", ("bob", "lactose"), "paraphrase"),
    Case("bob", "what instrument does he play", ("bob", "guitar"), "question"),
    Case("bob", "electric vehicle", ("bob", "car"), "paraphrase"),
    Case("bob", "Portugese", ("bob", "languages"), "typo"),
    Case("bob", "internet connection problems", ("bob", "wifi"), "synonym", known_miss=True),
    Case("bob", "invoice format", ("bob", "invoices"), "word form"),
    Case("carla", "vegetarian", ("carla", "vegetarian"), "literal"),
    Case("carla", "marathon training", ("carla", "marathon"), "paraphrase"),
    Case("carla", "colour blind", ("carla", "colour"), "spelling, hyphen"),
    Case("carla", "tomas", ("carla", "son"), "accents"),
    Case("carla", "meetings in the morning", ("carla", "mornings"), "word form"),
    Case(None, "who plays jazz", ("bob", "guitar"), "all users"),
    Case(None, "hiking", ("carla", "hiking"), "all users, word form"),
]
