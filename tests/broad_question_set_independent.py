"""A second held-out part of the broad-question set (tests/broad_question_set.py has
the first two parts and says what the questions are for): four more users, 98
memories, 24 questions needing 2-5 memories each.

Written on 2026-12-06 by a helper session as an independent author, from a short
description of the task alone: without seeing the ranking code, the other sets or any
of the project's files, and before anything (model, search, ranking) was run on it.
Nothing here is tuned on; tests/benchmarks/broad.py reports it as its own part.
"""

from dataclasses import dataclass

MEMORIES = {
    # Style: names the user in every sentence.
    "ingrid": {
        "celiac": (
            "Ingrid has celiac disease and must avoid all gluten, including cross-contamination from shared fryers.",
            ["health", "food"],
        ),
        "coffee": ("Ingrid drinks her coffee black and switches to decaf after 2 pm.", ["food", "preferences"]),
        "noalcohol": ("Ingrid doesn't drink alcohol at all.", ["food", "preferences"]),
        "sister": (
            "Ingrid's younger sister Maren lives in Bergen and is expecting her first baby in March.",
            ["family"],
        ),
        "partner": ("Ingrid's partner Tobias is her emergency contact and handles the household budget.", ["family"]),
        "familyday": ("Ingrid ran the Family Day booth at the hospital fundraiser last spring.", ["work", "family"]),
        "texts": ("Ingrid prefers texts over phone calls and dislikes voice messages.", ["communication"]),
        "bullets": (
            "Ingrid likes written updates as bullet points with the decision needed at the top.",
            ["communication", "work"],
        ),
        "language": (
            "Ingrid reads English fine but wants anything official written in Norwegian.",
            ["communication", "preferences"],
        ),
        "nightshift": ("Ingrid works night shifts at the hospital Sunday through Wednesday.", ["work", "schedule"]),
        "sleep": (
            "Ingrid sleeps from 9 am to 4 pm after a night shift and silences her phone then.",
            ["schedule", "health"],
        ),
        "pager": (
            "Ingrid can't check personal messages during shifts; anything urgent has to go through the ward desk.",
            ["work", "communication"],
        ),
        "ward": ("Ingrid is a nurse on the cardiology ward at Ullevål.", ["work", "location"]),
        "knee": ("Ingrid had ACL surgery on her left knee last year and avoids running downhill.", ["health"]),
        "aisle": (
            "Ingrid always picks an aisle seat on flights so she can stretch her left knee.",
            ["travel", "health"],
        ),
        "passport": ("Ingrid's passport expires in February 2027.", ["travel"]),
        "eurobonus": ("Ingrid collects SAS EuroBonus points and wants them added to every booking.", ["travel"]),
        "oslo": ("Ingrid lives in Oslo and bikes to work year-round.", ["location"]),
        "climbing": ("Ingrid goes bouldering at the indoor gym on Thursday evenings.", ["hobbies"]),
        "ceramics": ("Ingrid is learning wheel-throwing ceramics and dreams of owning a kick wheel.", ["hobbies"]),
        "chanterelles": ("Ingrid forages chanterelles in the forest every autumn.", ["hobbies", "food"]),
        "cat": ("Ingrid has a cat named Pepper who is fed at 6 pm.", ["home"]),
        "noclutter": ("Ingrid dislikes clutter and prefers experiences or consumables as gifts.", ["preferences"]),
        "birthday": ("Ingrid's birthday is October 14.", ["personal"]),
        "green": ("Ingrid's favorite color is forest green.", ["preferences"]),
    },
    # Style: "User ..."
    "kwame": {
        "lactose": ("User is lactose intolerant but can have small amounts of hard cheese.", ["health", "food"]),
        "halal": ("User keeps halal and does not eat pork.", ["food", "preferences"]),
        "jollof": ("User's favorite food is jollof rice with grilled tilapia.", ["food", "preferences"]),
        "grapefruit": (
            "User takes blood pressure medication and has been told to avoid grapefruit.",
            ["health", "food"],
        ),
        "esi": ("User's daughter Esi is 7 and has a tree-nut allergy.", ["family", "health"]),
        "kofi": ("User's son Kofi started university in Leeds this autumn.", ["family"]),
        "mother": ("User's mother lives with the family and uses a wheelchair.", ["family", "health"]),
        "abena": ("User's wife Abena is a pharmacist and is his emergency contact.", ["family"]),
        "mrsmensah": (
            "User asks that anything addressed to his mother use 'Mrs. Mensah'.",
            ["family", "communication"],
        ),
        "engineer": ("User is a structural engineer at a firm in Manchester.", ["work"]),
        "hybrid": (
            "User works from home Monday and Friday and from the office Tuesday to Thursday.",
            ["work", "schedule"],
        ),
        "desk": (
            "User's home setup is a standing desk with two monitors and a split ergonomic keyboard.",
            ["work", "settings"],
        ),
        "rsi": ("User has RSI in his right wrist and uses a vertical mouse.", ["health", "work"]),
        "officedesk": ("User sits by the window on the third floor of the office.", ["work", "location"]),
        "nairobi": (
            "User has a standing call with the Nairobi team at 10 am EAT every Wednesday.",
            ["work", "schedule"],
        ),
        "oncall": ("User forwards site emergencies to the firm's on-call engineer, Daniel Osei.", ["work"]),
        "football": ("User plays five-a-side football on Sunday mornings.", ["hobbies", "schedule"]),
        "city": ("User is a Manchester City season ticket holder.", ["hobbies"]),
        "kora": ("User is learning to play the kora.", ["hobbies"]),
        "rankin": ("User reads crime novels, especially Ian Rankin.", ["hobbies"]),
        "urgentphone": ("User wants a phone call for anything urgent; texts can wait.", ["communication"]),
        "email": ("User prefers email for non-urgent matters, kept short and without emojis.", ["communication"]),
        "fridaydinner": (
            "User doesn't check messages on Friday evenings during family dinner.",
            ["schedule", "family"],
        ),
        "flying": ("User is afraid of flying and prefers trains for trips under five hours.", ["travel", "health"]),
        "minivan": ("User drives a seven-seat van with a wheelchair ramp.", ["travel"]),
    },
    # Style: no subject ("Prefers ...").
    "lucia": {
        "vegetarian": ("Vegetarian for twelve years; eats eggs and dairy but no fish.", ["food"]),
        "spicy": ("Loves very spicy food, the hotter the better.", ["food", "preferences"]),
        "cilantro": ("Hates cilantro and says it tastes like soap.", ["food", "preferences"]),
        "migraine": ("Gets migraines triggered by red wine and strong perfume.", ["health"]),
        "asthma": ("Has exercise-induced asthma and carries an inhaler on hikes.", ["health"]),
        "freelance": ("Works freelance as a UX designer, mostly for clients in Berlin.", ["work"]),
        "hours": ("Does deep work from 8 to 12 and takes no calls before noon.", ["schedule", "work"]),
        "classes": ("Teaches a Spanish conversation class on Tuesday and Thursday evenings.", ["schedule", "hobbies"]),
        "valencia": ("Lives in Valencia.", ["location"]),
        "rosario": (
            "Grandmother Rosario turns 90 in May; the family is planning a party for her in Seville.",
            ["family"],
        ),
        "pablo": ("Younger brother Pablo is a chef in Madrid.", ["family"]),
        "familyapp": ("Designed the onboarding flow for a family-budgeting app last year.", ["work"]),
        "iker": ("Lives with partner Iker, who is the emergency contact.", ["family", "health"]),
        "voicenotes": ("Prefers voice notes over long texts.", ["communication"]),
        "tone": ("Likes a warm, informal tone and finds formal emails cold.", ["communication"]),
        "languages": ("Writes in Spanish with family and in English for work.", ["communication"]),
        "photography": ("Shoots film photography on an old Pentax K1000.", ["hobbies"]),
        "hiking": ("Hikes in the Sierra de Espadán most Sunday mornings.", ["hobbies", "schedule"]),
        "pins": ("Collects enamel pins from every city visited.", ["hobbies"]),
        "laptop": (
            "Works on a 14-inch MacBook and needs an external monitor with USB-C power delivery.",
            ["work", "settings"],
        ),
        "darkmode": ("Uses dark mode everywhere with large font sizes.", ["settings", "preferences"]),
        "train": ("Prefers the train over flying within Spain.", ["travel"]),
        "carryon": ("Packs carry-on only and never checks a bag.", ["travel", "preferences"]),
        "luna": ("Has a greyhound named Luna who needs a sitter whenever traveling.", ["home", "travel"]),
    },
    # Style: mixed, as accumulated over time ("Rafael ...", "User ...", bare).
    "rafael": {
        "diabetes": ("Rafael has type 2 diabetes and watches his sugar intake.", ["health", "food"]),
        "lowsodium": ("On a low-sodium diet since his heart stent in 2024.", ["health", "food"]),
        "anticoag": ("User takes a blood thinner (apixaban) every morning.", ["health"]),
        "hearing": (
            "Rafael is hard of hearing and prefers written messages to phone calls.",
            ["health", "communication"],
        ),
        "largefont": ("Needs large font in messages; reads everything on his tablet.", ["communication", "settings"]),
        "formal": ("Likes to be addressed as 'Senhor Rafael' in writing.", ["communication"]),
        "ines": ("Rafael's daughter Inês lives in Toronto with her husband and son.", ["family"]),
        "sundaycall": ("Inês video-calls him every Sunday at 6 pm Lisbon time.", ["family", "schedule"]),
        "tiago": ("Grandson Tiago is 10 and loves Lego and football.", ["family"]),
        "helena": (
            "User's wife Helena passed away in 2022; nothing should be scheduled on March 3, their wedding anniversary.",
            ["family", "schedule"],
        ),
        "secondfamily": ("Calls his old school's teachers' choir his second family.", ["hobbies"]),
        "fatima": ("Neighbor Dona Fátima has a spare key and is his local emergency contact.", ["home", "location"]),
        "hospital": ("Inês wants to be told immediately about any hospital visit.", ["family", "health"]),
        "nap": ("User naps from 2 to 4 pm every day.", ["schedule", "health"]),
        "mass": ("Rafael attends Mass on Saturday evenings at 7.", ["schedule"]),
        "chess": ("Plays chess at the café on Tuesday and Friday mornings.", ["hobbies", "schedule"]),
        "allotment": ("Rafael grows tomatoes and figs on his allotment.", ["hobbies"]),
        "fado": ("Loves fado; Amália Rodrigues is his favorite singer.", ["hobbies", "preferences"]),
        "history": ("Reads history books about the Age of Discovery.", ["hobbies"]),
        "longflight": (
            "Rafael needs an aisle seat and compression socks on any flight over four hours.",
            ["travel", "health"],
        ),
        "cane": ("Walks with a cane and avoids stairs.", ["health"]),
        "tablet": ("User uses a Samsung tablet and has no computer.", ["settings"]),
        "teacher": ("Taught secondary school mathematics for 35 years before retiring.", ["work"]),
        "watch": ("Wears the watch his last class gave him as a retirement gift.", ["preferences"]),
    },
}


@dataclass(frozen=True)
class Question:
    user: str
    query: str
    needs: tuple  # keys of the user's memories an answer must include (2-5)
    kind: str


INDEPENDENT = [
    # ingrid
    Question(
        "ingrid",
        "What should I keep in mind when picking a restaurant for dinner with Ingrid?",
        ("celiac", "noalcohol"),
        "food",
    ),
    Question(
        "ingrid", "Who are the people closest to Ingrid that I should know about?", ("sister", "partner"), "family"
    ),
    Question(
        "ingrid", "How does she like to be contacted and written to?", ("texts", "bullets", "language"), "communication"
    ),
    Question(
        "ingrid", "When is a good time to reach Ingrid during the week?", ("nightshift", "sleep", "pager"), "schedule"
    ),
    Question(
        "ingrid",
        "I'm booking Ingrid a flight to Lisbon for spring 2027 - anything I shouldn't miss?",
        ("aisle", "passport", "eurobonus", "celiac"),
        "travel",
    ),
    Question("ingrid", "Any gift ideas for Ingrid?", ("noclutter", "ceramics", "climbing"), "gifts"),
    # kwame
    Question(
        "kwame",
        "I'm ordering a takeaway for Kwame's whole family - what do I need to watch out for?",
        ("lactose", "halal", "esi"),
        "food",
    ),
    Question(
        "kwame",
        "What should I know before planning a weekend away for Kwame and his family?",
        ("flying", "mother", "minivan"),
        "travel",
    ),
    Question("kwame", "When can I schedule a call with him?", ("nairobi", "fridaydinner", "football"), "schedule"),
    Question(
        "kwame",
        "How should I write to Kwame about a non-urgent project update?",
        ("email", "urgentphone"),
        "communication",
    ),
    Question("kwame", "What does Kwame need to work comfortably at home?", ("desk", "rsi", "hybrid"), "work"),
    Question(
        "kwame",
        "Who should be contacted if something urgent comes up and Kwame doesn't answer?",
        ("abena", "urgentphone"),
        "urgent",
    ),
    # lucia
    Question(
        "lucia",
        "Planning a dinner party - what should I avoid serving her?",
        ("vegetarian", "cilantro", "migraine"),
        "food",
    ),
    Question(
        "lucia",
        "What should I know to plan Lucia's trip to Seville for her grandmother's birthday?",
        ("rosario", "train", "carryon", "luna"),
        "travel",
    ),
    Question("lucia", "Any health issues I should be aware of for Lucia?", ("migraine", "asthma"), "health"),
    Question(
        "lucia",
        "What's the best way and time to get hold of Lucia for a quick question?",
        ("voicenotes", "hours", "classes"),
        "schedule",
    ),
    Question(
        "lucia",
        "Lucia has a free weekend - what does she like doing in her spare time?",
        ("photography", "hiking", "pins"),
        "free time",
    ),
    Question("lucia", "I'm setting up a new workstation for her - what does she need?", ("laptop", "darkmode"), "work"),
    # rafael
    Question("rafael", "What should I keep in mind when cooking lunch for him?", ("diabetes", "lowsodium"), "food"),
    Question("rafael", "Who in Rafael's family should I know about?", ("ines", "tiago", "helena"), "family"),
    Question(
        "rafael", "How should messages to Rafael be written?", ("hearing", "largefont", "formal"), "communication"
    ),
    Question(
        "rafael",
        "We'd like to take Rafael to visit his daughter - what does the trip planning need to account for?",
        ("ines", "longflight", "cane"),
        "travel",
    ),
    Question(
        "rafael",
        "If Rafael has a fall or a medical emergency, who needs to be contacted and what should they know?",
        ("fatima", "hospital", "anticoag"),
        "urgent",
    ),
    Question(
        "rafael", "When is a good time to visit Rafael?", ("nap", "chess", "mass", "sundaycall", "helena"), "schedule"
    ),
]
