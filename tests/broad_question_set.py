"""A broad-question set: questions that several memories answer together.

tests/ranking_set.py asks for one fact at a time ("is she vegetarian?"). An agent
more often asks a broad question before doing something for a user: "what should I
keep in mind when ordering food for Nadia?" needs her peanut allergy, her vegan diet,
her dessert and her caffeine rule, and --find should label all four matches, show
them among its first ten, and not label half her other memories matches too.

Four users with 23-24 memories each, written the way agents write them: some name the
user in every sentence ("Nadia ..."), some start "User ...", some say neither. Each
has distractors that share words with a question but not its meaning ("Nadia is based
in Nairobi (EAT timezone)" for "what can she eat"; "Nadia ordered a standing desk" for
"ordering food"; "Runs the family-medicine rotation" for "who is in his family").

Each question names its user (--find is run with --user-id) and the 2-5 memories it
needs: the ones an agent acting on the answer must not miss. Other memories may be
relevant too; they are not required, and a match on one counts against selectivity
only as any other match does.

The questions come in two parts, fixed here: TUNING, on which --find may be tuned,
and HELD_OUT, which nobody tunes on. All of this file (memories, questions, needed
memories and the split) was written before any question was run through --find, and
held-out questions are not edited after being measured: their figures are the honest
ones (tests/benchmarks/broad.py reports both parts apart).
"""

from dataclasses import dataclass

MEMORIES = {
    "nadia": {
        "peanuts": ("Nadia is severely allergic to peanuts and carries an EpiPen", ["health", "food"]),
        "vegan": ("Nadia has been vegan since 2021", ["food", "diet"]),
        "dessert": ("Nadia's favourite dessert is mango sorbet", ["food", "preferences"]),
        "caffeine": ("Nadia avoids caffeine after noon", ["health", "food"]),
        "timezone": ("Nadia is based in Nairobi (EAT timezone)", ["settings", "location"]),
        "sister": ("Nadia's sister Amina is getting married in June", ["family"]),
        "son": ("Nadia has a son, Idris, who is 7", ["family"]),
        "husband": ("Nadia's husband Karim works as a pilot", ["family"]),
        "short": ("Nadia prefers short, direct messages without small talk", ["communication"]),
        "languages": ("Nadia writes in English but also reads Swahili and French", ["languages", "communication"]),
        "whatsapp": ("Nadia reads email only in the morning; anything urgent goes by WhatsApp", ["communication"]),
        "migraine": ("Nadia gets migraines from bright screens, so she uses dark mode everywhere", ["health", "ui"]),
        "knee": ("Nadia is recovering from knee surgery and cannot climb stairs until March", ["health"]),
        "fridays": ("Nadia takes no meetings on Friday afternoons (Friday prayers)", ["schedule", "work"]),
        "pickup": ("Nadia picks Idris up from school at 3:30 pm on weekdays", ["schedule", "family"]),
        "achebe": ("Nadia collects first editions of Chinua Achebe's novels", ["hobbies", "books"]),
        "orchids": ("Nadia loves orchids and keeps a dozen of them at home", ["hobbies"]),
        "window": ("Nadia always asks for a window seat and flies Kenya Airways when she can", ["travel"]),
        "passport": ("Nadia's passport expires in May 2025 and the renewal is pending", ["travel", "documents"]),
        "seasick": ("Nadia gets seasick on boats", ["health", "travel"]),
        "job": ("Nadia leads the data team at a fintech in Nairobi", ["work"]),
        "desk": ("Nadia ordered a new standing desk for the office", ["work"]),
        "report": ("The Q3 report Nadia's team writes is due on 30 September", ["work"]),
        "cat": ("Nadia's cat is called Biscuit", ["pets"]),
    },
    "tomas": {
        "coeliac": ("Has coeliac disease: everything he eats must be strictly gluten-free", ["health", "food"]),
        "spicy": ("Cannot handle spicy food", ["food"]),
        "shellfish": ("Allergic to shellfish", ["health", "food"]),
        "rioja": ("Enjoys Rioja and other Spanish red wines", ["food", "drinks"]),
        "cortado": ("Drinks two cortados a day, never after lunch", ["food", "drinks"]),
        "daughter": ("Daughter Lucía is 12 and plays football", ["family"]),
        "wife": ("Married to Elena, a violinist in the city orchestra", ["family"]),
        "father": ("His father lives with them and uses a wheelchair", ["family", "health"]),
        "dog": ("Has a golden retriever called Paco", ["pets"]),
        "formal": ("Prefers formal emails that address him as Dr. Ruiz", ["communication"]),
        "spanish": (
            "Native Spanish speaker; wants anything legal or contractual in Spanish",
            ["languages", "communication"],
        ),
        "calls": ("Hates unscheduled phone calls; send a message first", ["communication"]),
        "back": ("Chronic back pain: cannot sit for more than an hour without a break", ["health"]),
        "hours": ("Starts work at 7 am and is offline after 4 pm", ["schedule", "work"]),
        "sundays": ("Sundays are for family: never schedule anything on a Sunday", ["schedule"]),
        "cycling": ("Road cyclist who rides about 200 km a week", ["hobbies", "sport"]),
        "vinyl": ("Collects jazz records on vinyl", ["hobbies", "music"]),
        "watch": ("Would love a mechanical watch but says they are too expensive", ["shopping", "preferences"]),
        "trains": ("Afraid of flying; takes the train for any journey under six hours", ["travel"]),
        "gym": ("Only books hotels that have a gym", ["travel"]),
        "job": ("Works as a haematologist at Hospital Clínic in Barcelona", ["work"]),
        "rotation": ("Runs the family-medicine rotation for the hospital's residents", ["work"]),
        "red": ("Published a paper on red blood cell disorders in 2019", ["work"]),
        "tripped": ("Tripped over a cable last year and broke his wrist; it has healed", ["health"]),
    },
    "mei": {
        "name": ("User's name is Mei Lin Tan; she goes by Mei", ["personal"]),
        "lactose": ("User is lactose intolerant", ["health", "food"]),
        "beef": ("User does not eat beef", ["food", "diet"]),
        "durian": ("User loves durian and anything flavoured with pandan", ["food", "preferences"]),
        "bubbletea": ("User drinks bubble tea with 25% sugar", ["food", "drinks"]),
        "prediabetic": ("User is prediabetic and watching her sugar intake", ["health"]),
        "parents": ("User's parents live in Penang", ["family"]),
        "brothers": ("User has twin younger brothers, Wei and Jun", ["family"]),
        "partner": ("User's partner Alex is a chef", ["family"]),
        "bullets": ("User wants replies in bullet points, not paragraphs", ["communication", "preferences"]),
        "slack": ("User prefers Slack over email for anything about work", ["communication"]),
        "mandarin": ("User is a native Mandarin speaker but prefers to write in English", ["languages"]),
        "rsi": ("User has RSI in her right wrist and dictates most of her typing", ["health", "accessibility"]),
        "altitude": ("User gets altitude sickness above about 3,000 m", ["health", "travel"]),
        "hours": ("User works 10am-7pm Singapore time", ["schedule", "work"]),
        "calligraphy": ("User takes a Chinese calligraphy class every Tuesday evening", ["hobbies", "schedule"]),
        "ghibli": ("User collects Studio Ghibli figurines", ["hobbies"]),
        "keyboard": ("User has been wanting a mechanical keyboard with quiet switches", ["shopping", "tools"]),
        "airline": ("User only flies Singapore Airlines, for the miles", ["travel"]),
        "cat": ("User's cat Mochi is on a special renal diet food", ["pets"]),
        "giftcards": ("User's company sells gift cards through its app", ["work"]),
        "book": ("User is writing a book about Singapore's hawker centres", ["hobbies", "writing"]),
        "job": ("User is a product manager at a payments startup", ["work"]),
    },
    "olu": {
        "diabetic": ("Olu has type 1 diabetes and carries insulin with him", ["health"]),
        "halal": ("Olu is Muslim and eats only halal food: no pork, no alcohol", ["food", "religion"]),
        "ramadan": ("Olu fasts during Ramadan", ["religion", "schedule"]),
        "jollof": ("Olu's favourite dish is jollof rice, the spicier the better", ["food"]),
        "chapman": ("Olu's go-to drink is a Chapman", ["food", "drinks"]),
        "wife": ("Olu's wife Funmi is a paediatrician", ["family"]),
        "daughters": ("Olu has three daughters, all under ten", ["family"]),
        "mother": ("Olu's mother moved in with the family last year", ["family"]),
        "voicenotes": ("Olu prefers voice notes to long texts", ["communication"]),
        "invites": ("Olu wants a calendar invite for anything longer than 15 minutes", ["communication", "schedule"]),
        "dyslexic": ("Olu is dyslexic and prefers plain, simple wording", ["accessibility", "communication"]),
        "asthma": ("Olu has asthma; avoid dusty or smoky venues", ["health"]),
        "night": ("Olu does not drive after dark because of night blindness", ["health", "transport"]),
        "schoolrun": ("Olu does the school run every morning and is unavailable until 9", ["schedule", "family"]),
        "lagos": ("Olu spends one week a month in Lagos and the rest in London", ["travel", "location"]),
        "arsenal": ("Olu supports Arsenal and never misses a match", ["sport", "hobbies"]),
        "drum": ("Olu is learning to play the talking drum", ["music", "hobbies"]),
        "headphones": ("Olu wants noise-cancelling headphones for his commute", ["shopping"]),
        "luggage": ("Olu always travels with hand luggage only", ["travel"]),
        "fridge": ("Olu needs a fridge in his hotel room to keep his insulin cold", ["travel", "health"]),
        "job": ("Olu is the CTO of a payments startup", ["work"]),
        "lunch": ("The daughters' school serves a free lunch on Fridays", ["family"]),
        "styleguide": ("Olu wrote his company's style guide for letters to customers", ["work"]),
    },
}


@dataclass(frozen=True)
class Question:
    user: str
    query: str
    needs: tuple  # keys of the user's memories an answer must include (2-5)
    kind: str  # food, avoid, drinks, family, writing, contact, health, schedule, gift, trip, free time, work


TUNING = [
    Question(
        "nadia",
        "What should I keep in mind when ordering food for Nadia?",
        ("peanuts", "vegan", "dessert", "caffeine"),
        "food",
    ),
    Question("nadia", "Who is in Nadia's family?", ("sister", "son", "husband"), "family"),
    Question("nadia", "What health problems limit Nadia?", ("peanuts", "migraine", "knee", "seasick"), "health"),
    Question("nadia", "What could I buy Nadia as a gift?", ("achebe", "orchids"), "gift"),
    Question(
        "nadia",
        "What should I know before booking a restaurant dinner with Nadia?",
        ("peanuts", "vegan", "knee"),
        "food",
    ),
    Question("nadia", "What does Nadia do in her free time?", ("achebe", "orchids"), "free time"),
    Question("tomas", "What should I avoid serving Tomás at dinner?", ("coeliac", "spicy", "shellfish"), "avoid"),
    Question("tomas", "How should I write to Tomás?", ("formal", "spanish"), "writing"),
    Question("tomas", "When can I schedule a meeting with Tomás?", ("hours", "sundays"), "schedule"),
    Question(
        "tomas", "How should we plan a trip with Tomás and his family?", ("trains", "gym", "father", "back"), "trip"
    ),
    Question("tomas", "What does he do for fun?", ("cycling", "vinyl"), "free time"),
    Question("tomas", "What does Tomás like to drink?", ("rioja", "cortado"), "drinks"),
    Question("tomas", "What should I keep in mind for a long meeting with him?", ("back", "hours"), "schedule"),
    Question("mei", "What are Mei's food restrictions?", ("lactose", "beef", "prediabetic"), "avoid"),
    Question("mei", "Who are Mei's relatives?", ("parents", "brothers", "partner"), "family"),
    Question(
        "mei",
        "What health conditions should I keep in mind for Mei?",
        ("lactose", "prediabetic", "rsi", "altitude"),
        "health",
    ),
    Question("mei", "Gift ideas for Mei's birthday?", ("ghibli", "keyboard", "calligraphy"), "gift"),
    Question("mei", "What tools or setup does Mei need at work?", ("rsi", "keyboard", "slack"), "work"),
    Question(
        "mei", "What should I know before ordering drinks for Mei?", ("bubbletea", "lactose", "prediabetic"), "drinks"
    ),
    Question("olu", "What should I avoid serving Olu?", ("halal", "diabetic"), "avoid"),
    Question("olu", "How should I write to Olu?", ("voicenotes", "dyslexic"), "writing"),
    Question("olu", "When is Olu busy or unavailable?", ("schoolrun", "arsenal"), "schedule"),
    Question("olu", "How do I plan a business trip with Olu?", ("luggage", "fridge", "night"), "trip"),
    Question("olu", "What are Olu's hobbies?", ("arsenal", "drum"), "free time"),
    Question("olu", "What time zone is Olu in and when can I call him?", ("lagos", "schoolrun"), "contact"),
]

HELD_OUT = [
    Question("nadia", "What can she eat or drink?", ("peanuts", "vegan", "caffeine"), "food"),
    Question("nadia", "What should I avoid serving Nadia?", ("peanuts", "vegan", "caffeine"), "avoid"),
    Question("nadia", "How should I write to Nadia?", ("short", "languages", "whatsapp"), "writing"),
    Question("nadia", "When is Nadia not available?", ("fridays", "pickup"), "schedule"),
    Question("nadia", "How do I plan a trip with Nadia?", ("window", "passport", "seasick", "knee"), "trip"),
    Question("nadia", "How do I reach Nadia if something is urgent?", ("whatsapp", "timezone"), "contact"),
    Question(
        "nadia",
        "What should I know about scheduling a meeting with Nadia?",
        ("fridays", "pickup", "timezone"),
        "schedule",
    ),
    Question("tomas", "What should I cook for Tomás?", ("coeliac", "spicy", "shellfish"), "food"),
    Question("tomas", "Who is in Tomás's family?", ("daughter", "wife", "father"), "family"),
    Question("tomas", "Should I call Tomás or send him a message?", ("calls", "formal"), "contact"),
    Question(
        "tomas", "Does he have any health problems I should know about?", ("coeliac", "shellfish", "back"), "health"
    ),
    Question("tomas", "What would be a good birthday present for him?", ("vinyl", "watch", "cycling"), "gift"),
    Question("tomas", "What sport and exercise does Tomás do?", ("cycling", "gym"), "free time"),
    Question("mei", "What snacks does Mei like?", ("durian", "bubbletea"), "food"),
    Question("mei", "How should I write to Mei?", ("bullets", "slack", "mandarin"), "writing"),
    Question("mei", "When is Mei available for calls?", ("hours", "calligraphy"), "schedule"),
    Question("mei", "Planning a hiking trip to Nepal with Mei: what matters?", ("altitude", "airline"), "trip"),
    Question("mei", "What does Mei do outside work?", ("calligraphy", "ghibli", "book"), "free time"),
    Question("mei", "What should I bring to a potluck with Mei?", ("lactose", "beef", "prediabetic"), "food"),
    Question("olu", "What should I know before hosting Olu for dinner?", ("halal", "diabetic", "ramadan"), "food"),
    Question("olu", "What are Olu's favourite things to eat and drink?", ("jollof", "chapman"), "drinks"),
    Question("olu", "Who lives in Olu's household?", ("wife", "daughters", "mother"), "family"),
    Question("olu", "What health conditions does Olu have?", ("diabetic", "asthma", "night"), "health"),
    Question("olu", "What gift would Olu appreciate?", ("arsenal", "drum", "headphones"), "gift"),
    Question("olu", "Where should we hold a team event with Olu?", ("asthma", "halal"), "work"),
    Question("olu", "How should I set up a meeting with Olu?", ("invites", "schoolrun", "lagos"), "schedule"),
]

QUESTIONS = TUNING + HELD_OUT
