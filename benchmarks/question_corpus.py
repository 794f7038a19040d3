"""A generated corpus of distinct, varied questions for the semantic scale benchmark, and
perturbed wordings of some of them (what a cache is asked again), deterministic from a seed.

Questions come from templates x vocabularies in several families (how-to, what-is, compare,
code, units, places, cooking, why-questions, finance); :func:`questions` draws ``n`` distinct
ones uniformly over the families. :func:`perturbed` rewrites a question the way a user asking it
again would: a typo (two letters swapped or one dropped), a synonym (a phrase swapped for one of
the same meaning) or a reordered clause (a trailing "in X" / "with X" moved to the front, or a
lead-in added). :func:`embedded` embeds them once with the offline model and keeps the vectors
under the benchmark's cache folder, so the HNSW figures are measured on what a cache holds
instead of on uniformly random vectors (the worst case for HNSW).

Used by ``benchmarks/semantic_latency.py --data questions``.
"""

from __future__ import annotations

import random
import re
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["KINDS", "embedded", "perturbed", "questions"]

KINDS = ("typo", "synonym", "reorder")

_ACTIONS = (
    "reset the password of", "export", "back up", "share", "delete", "rename", "encrypt",
    "restore", "sync", "print", "compress", "merge", "split", "password-protect", "archive",
    "duplicate", "recover", "move", "convert", "schedule", "automate", "undo changes to",
    "find the size of", "change the owner of", "set a reminder for", "translate", "sort",
    "filter", "search inside", "lock", "sign", "scan", "upload", "download", "mirror",
)  # fmt: skip
_OBJECTS = (
    "my account", "a spreadsheet", "a folder", "my photos", "a PDF", "my contacts", "an email",
    "a calendar event", "a presentation", "my notes", "a zip file", "a video", "my browser history",
    "a shared drive", "a database table", "my playlists", "a voice memo", "a chat history",
    "a form", "a large file", "my bookmarks", "a document", "a code repository", "an invoice",
    "a text message", "my passwords", "a backup", "a profile picture", "a spreadsheet column",
)  # fmt: skip
_TOOLS = (
    "Windows 11", "macOS", "Linux", "Excel", "Google Sheets", "Google Drive", "Dropbox", "iOS",
    "Android", "Outlook", "Gmail", "Word", "Notion", "Slack", "Teams", "Chrome", "Firefox",
    "OneDrive", "iCloud", "Ubuntu", "PowerPoint", "Keynote", "GitHub", "WhatsApp", "Zoom",
)  # fmt: skip
_HOWTO = (
    "how do I {a} {o} in {t}?", "what's the easiest way to {a} {o} with {t}?",
    "steps to {a} {o} on {t}", "can you explain how to {a} {o} using {t}?",
    "is there a shortcut to {a} {o} in {t}?", "I need to {a} {o} in {t}, how?",
)  # fmt: skip

_CONCEPTS = (
    "inflation", "a hash table", "photosynthesis", "compound interest", "a black hole",
    "machine learning", "the placebo effect", "a mortgage", "opportunity cost", "entropy",
    "a recession", "dark matter", "an API", "a neural network", "supply and demand",
    "a blockchain", "the greenhouse effect", "a vaccine", "quantum entanglement", "a bond yield",
    "cognitive dissonance", "a compiler", "the Doppler effect", "an index fund", "plate tectonics",
    "a derivative", "natural selection", "a firewall", "a sonnet", "the Pythagorean theorem",
    "a virtual machine", "the stock market", "gross domestic product", "a cache", "a mutex",
    "recursion", "the immune system", "a credit score", "impressionism", "a monad",
    "the Renaissance", "a leap year", "an eclipse", "a microservice", "a p-value",
    "stoicism", "a watershed", "a haiku", "a tariff", "a semiconductor",
)  # fmt: skip
_FIELDS = (
    "economics", "computer science", "biology", "physics", "finance", "psychology", "law",
    "chemistry", "statistics", "philosophy", "medicine", "art history", "geology", "music",
)  # fmt: skip
_WHATIS = (
    "what is {c}?", "what does {c} mean in {f}?", "explain {c} to a beginner",
    "give me a short definition of {c}", "why does {c} matter in {f}?",
    "can you describe {c} in simple terms?", "what is an everyday example of {c}?",
)  # fmt: skip

_ITEMS = (
    "Python", "JavaScript", "Rust", "Go", "PostgreSQL", "MySQL", "SQLite", "MongoDB", "Redis",
    "an iPhone", "an Android phone", "a laptop", "a tablet", "a Kindle", "a desktop PC",
    "renting", "buying a house", "a credit card", "a debit card", "index funds", "stocks",
    "bonds", "gold", "a road bike", "a mountain bike", "an electric car", "a hybrid car",
    "the train", "flying", "coffee", "green tea", "running", "swimming", "yoga", "cycling",
    "React", "Vue", "Angular", "Docker", "Kubernetes", "AWS", "Azure", "Google Cloud",
)  # fmt: skip
_PURPOSES = (
    "a beginner", "a small business", "a student", "long trips", "saving money", "a family",
    "data analysis", "web development", "losing weight", "retirement", "a startup",
    "building muscle", "working from home", "a first job", "travelling in Europe",
    "a weekend project", "high traffic", "machine learning", "commuting", "an older person",
)  # fmt: skip
_COMPARE = (
    "{a} or {b}: which is better for {p}?", "what is the difference between {a} and {b}?",
    "should I choose {a} or {b} for {p}?", "compare {a} with {b} for {p}",
    "pros and cons of {a} versus {b}",
)  # fmt: skip

_LANGUAGES = (
    "Python", "JavaScript", "TypeScript", "Java", "C#", "C++", "Go", "Rust", "Ruby", "PHP",
    "Kotlin", "Swift", "SQL", "Bash", "R",
)  # fmt: skip
_TASKS = (
    "reverses a string", "reads a CSV file", "sorts a list of dictionaries by a key",
    "removes duplicates from a list", "checks if a number is prime", "parses a date",
    "sends an HTTP request", "merges two sorted arrays", "counts word frequencies",
    "validates an email address", "flattens a nested list", "computes a factorial",
    "reads a JSON file", "writes to a text file", "finds the largest element",
    "generates a random password", "converts Celsius to Fahrenheit", "retries on failure",
    "measures how long a call takes", "downloads a file", "splits a string on commas",
    "calculates the average of a list", "checks whether a file exists", "zips two lists",
    "connects to a database", "paginates results", "compresses a folder", "hashes a password",
    "finds the intersection of two sets", "formats a number as currency", "deep copies an object",
    "runs tasks in parallel", "logs errors to a file", "truncates a long string",
    "converts a list to a dictionary", "checks for a palindrome", "rounds to two decimals",
)  # fmt: skip
_CODE = (
    "write a {l} function that {k}", "{l}: a snippet that {k}, with an example",
    "show me {l} code that {k}", "my {l} code that {k} is slow, how do I speed it up?",
    "what is the idiomatic {l} way to write something that {k}?",
)  # fmt: skip

_UNITS = (
    ("kilometres", "miles"), ("miles", "kilometres"), ("pounds", "kilograms"),
    ("kilograms", "pounds"), ("litres", "gallons"), ("gallons", "litres"),
    ("inches", "centimetres"),
    ("centimetres", "inches"), ("feet", "metres"), ("metres", "feet"), ("ounces", "grams"),
    ("grams", "ounces"), ("cups", "millilitres"), ("tablespoons", "teaspoons"),
    ("acres", "hectares"), ("hectares", "acres"), ("megabytes", "gigabytes"),
    ("hours", "minutes"), ("days", "weeks"), ("knots", "kilometres per hour"),
    ("calories", "kilojoules"), ("square feet", "square metres"), ("yards", "metres"),
)  # fmt: skip
_UNIT_TEMPLATES = (
    "convert {n} {u} to {w}", "how many {w} are in {n} {u}?", "what is {n} {u} in {w}?",
    "{n} {u} equals how many {w}?",
)  # fmt: skip

_PLACES = (
    "Lisbon", "Kyoto", "Reykjavik", "Cape Town", "Buenos Aires", "Marrakesh", "Vancouver",
    "Istanbul", "Hanoi", "Prague", "Edinburgh", "Seville", "Bali", "Oaxaca", "Tasmania",
    "Dubrovnik", "Cusco", "Queenstown", "Tbilisi", "Montreal", "Naples", "Krakow", "Chiang Mai",
    "Santorini", "Copenhagen", "Nairobi", "Sydney", "Havana", "Bruges", "Zanzibar", "Oslo",
    "Porto", "Seoul", "Bergen", "Valencia", "Mumbai", "Lima", "Budapest", "Tallinn", "Dublin",
)  # fmt: skip
_MONTHS = (
    "January", "February", "March", "April", "May", "June", "July", "August", "September",
    "October", "November", "December",
)  # fmt: skip
_MODES = ("train", "bus", "car", "ferry", "plane", "bike")
_PLACE_TEMPLATES = (
    "what is the best time of year to visit {p}?", "how do I get from {p} to {q} by {m}?",
    "what should I eat in {p}?", "is {p} worth visiting in {mo}?",
    "what is the weather like in {p} in {mo}?", "how many days do I need in {p}?",
    "cheap places to stay in {p} in {mo}", "what to pack for {p} in {mo}?",
)  # fmt: skip

_FOODS = (
    "chicken breast", "salmon", "brown rice", "quinoa", "a hard-boiled egg", "pork ribs",
    "broccoli", "sweet potatoes", "a steak", "lentils", "tofu", "shrimp", "pasta", "a whole turkey",
    "bread dough", "chickpeas", "mushrooms", "a meatloaf", "corn on the cob", "oatmeal",
)  # fmt: skip
_COOKS = ("bake", "boil", "grill", "roast", "steam", "fry", "microwave", "slow-cook", "air-fry")
_COOK_TEMPLATES = (
    "how long should I {k} {f}?", "at what temperature do I {k} {f}?",
    "can I {k} {f} from frozen?", "how do I know when {f} is done if I {k} it?",
    "is it safe to eat {f} {n} days after cooking?",
)  # fmt: skip

_WHY = (
    "the sky blue", "bread rise", "ice float", "the ocean salty", "my cat purr", "rain smell",
    "my laptop overheat", "my phone battery drain fast", "my knee hurt after running",
    "coffee keep me awake", "leaves change colour", "the moon look bigger near the horizon",
    "my sourdough collapse", "my wifi drop at night", "my plant turn yellow",
    "my car battery die in winter", "my dog eat grass", "metal feel colder than wood",
    "soap remove grease", "my code run slower in Docker",
)  # fmt: skip
_WHY_TEMPLATES = (
    "why does {w}?",
    "what makes {w}?",
    "is there a reason {w}?",
    "explain why {w}",
)

_AMOUNTS = ("500", "1,000", "2,500", "5,000", "10,000", "20,000", "50,000", "100,000")
_FIN = (
    "how much will {a} dollars grow in {y} years at {r} percent interest?",
    "is it better to invest {a} dollars or pay off a loan of {a} dollars?",
    "how do I budget {a} dollars a month for {y} years?",
    "what is the monthly payment on a {a} dollar loan over {y} years at {r} percent?",
)  # fmt: skip


def _draw(rng: random.Random) -> str:
    family = rng.randrange(9)
    c = rng.choice
    if family == 0:
        return c(_HOWTO).format(a=c(_ACTIONS), o=c(_OBJECTS), t=c(_TOOLS))
    if family == 1:
        return c(_WHATIS).format(c=c(_CONCEPTS), f=c(_FIELDS))
    if family == 2:
        a, b = rng.sample(_ITEMS, 2)
        return c(_COMPARE).format(a=a, b=b, p=c(_PURPOSES))
    if family == 3:
        return c(_CODE).format(l=c(_LANGUAGES), k=c(_TASKS))
    if family == 4:
        u, w = c(_UNITS)
        n = rng.choice((rng.randint(1, 100), rng.randint(100, 5000), round(rng.uniform(0, 10), 1)))
        return c(_UNIT_TEMPLATES).format(n=n, u=u, w=w)
    if family == 5:
        p, q = rng.sample(_PLACES, 2)
        return c(_PLACE_TEMPLATES).format(p=p, q=q, m=c(_MODES), mo=c(_MONTHS))
    if family == 6:
        return c(_COOK_TEMPLATES).format(k=c(_COOKS), f=c(_FOODS), n=rng.randint(2, 9))
    if family == 7:
        return c(_WHY_TEMPLATES).format(w=c(_WHY))
    return c(_FIN).format(a=c(_AMOUNTS), y=rng.randint(2, 40), r=rng.choice((2, 3, 4, 5, 6, 7)))


def questions(n: int, seed: int = 0) -> list[str]:
    """``n`` distinct questions, drawn uniformly over the families (deterministic)."""
    rng = random.Random(seed)
    seen: dict[str, None] = {}
    for _ in range(n * 50):
        text = _draw(rng)
        seen.setdefault(text[0].upper() + text[1:], None)
        if len(seen) == n:
            return list(seen)
    raise ValueError(f"the templates cannot give {n:,} distinct questions")


_SYNONYMS = (
    ("how do I", "how can I"), ("what's the easiest way", "what is the simplest way"),
    ("explain", "describe"), ("what is the difference between", "how do they differ:"),
    ("should I choose", "should I go with"), ("write a", "create a"), ("show me", "give me"),
    ("best time of year", "ideal season"), ("how many days do I need", "how long should I stay"),
    ("what should I eat", "what food should I try"), ("is it safe", "is it okay"),
    ("how long should I", "for how long do I"), ("convert", "change"),
    ("what makes", "what causes"),
    ("cheap places to stay", "budget hotels"), ("pros and cons", "advantages and disadvantages"),
    ("is there a shortcut", "is there a quick way"),
    ("give me a short definition", "define briefly"),
    ("can you explain", "could you tell me"), ("I need to", "I want to"), ("steps to", "how to"),
    ("what to pack", "what should I bring"), ("my code", "my program"), ("a snippet", "some code"),
    ("compare", "contrast"), ("is there a reason", "how come"), ("at what temperature", "how hot"),
)  # fmt: skip
_TRAILING = re.compile(r"^(?P<head>.+?) (?P<tail>(?:in|with|using|on|for|by) [^?,]+)(?P<q>\??)$")


def perturbed(question: str, kind: str, rng: random.Random) -> str:
    """``question`` reworded the way a user asking it again might: ``kind`` is one of
    :data:`KINDS` (meaning kept: a typo, a synonym, a reordered clause)."""
    if kind == "typo":
        words = question.split(" ")
        long = [i for i, w in enumerate(words) if len(w) >= 5 and w.isalpha()]
        if not long:
            return question.rstrip("?") + "??"
        i = rng.choice(long)
        word = words[i]
        j = rng.randrange(1, len(word) - 2)
        if rng.random() < 0.5:
            word = word[:j] + word[j + 1] + word[j] + word[j + 2 :]  # swap two letters
        else:
            word = word[:j] + word[j + 1 :]  # drop one
        words[i] = word
        return " ".join(words)
    if kind == "synonym":
        lower = question[0].lower() + question[1:]
        options = [(a, b) for a, b in _SYNONYMS if a in lower]
        if options:
            a, b = rng.choice(options)
            changed = lower.replace(a, b, 1)
            return changed[0].upper() + changed[1:]
        return "hey, " + lower
    match = _TRAILING.match(question)
    if match and len(match["head"].split()) >= 3:
        head, tail = match["head"], match["tail"]
        return f"{tail[0].upper()}{tail[1:]}, {head[0].lower()}{head[1:]}{match['q']}"
    return "quick question: " + question[0].lower() + question[1:]


def embedded(
    cache: Path, texts: Sequence[str], label: str, embed: Callable[[list[str]], Any] | None = None
) -> np.ndarray:
    """The float32 unit vectors of ``texts`` by the offline model, computed once and kept in
    ``cache/<label>.npy`` (a run with the same texts reuses them; ``label`` names the corpus)."""
    path = cache / f"{label}.npy"
    if path.exists():
        vectors = np.load(path)
        if len(vectors) == len(texts):
            return vectors
    if embed is None:
        from llm_memo.backends.semantic.embedders import LocalEmbedder

        embed = LocalEmbedder()
    out = np.empty((len(texts), 384), dtype=np.float32)
    started = time.perf_counter()
    for start in range(0, len(texts), 64):
        out[start : start + 64] = np.asarray(embed(list(texts[start : start + 64])))
        if start % 5120 == 0 and start:
            rate = start / (time.perf_counter() - started)
            print(f"  embedded {start:,} / {len(texts):,} ({rate:.0f} texts/s)", flush=True)
    out /= np.linalg.norm(out, axis=1, keepdims=True)
    cache.mkdir(parents=True, exist_ok=True)
    np.save(path, out)
    return out


#: Stored questions embedded (the 10k cell uses the first 10,000, the 100k cell all of them plus
#: mixtures), held-out questions (never stored: a realistic miss) and perturbed queries per kind
#: (their targets among the first 10,000, so every cell holds them).
STORED, FRESH, NEAR_PER_KIND = 20_000, 200, 200


class Questions:
    """The embedded question set of the scale benchmark (see :data:`STORED`)."""

    def __init__(self, cache: Path, seed: int = 0) -> None:
        texts = questions(STORED + FRESH, seed)
        rng = random.Random(seed + 1)
        self.targets = np.array(
            [rng.randrange(10_000) for _ in range(NEAR_PER_KIND * len(KINDS))], dtype=np.int64
        )
        self.kinds = [KINDS[i // NEAR_PER_KIND] for i in range(len(self.targets))]
        near = [perturbed(texts[t], k, rng) for t, k in zip(self.targets, self.kinds, strict=True)]
        self.texts = texts[:STORED]
        self.fresh_texts = texts[STORED:]
        self.near_texts = near
        vectors = embedded(cache, texts + near, f"questions-v1-s{seed}-{len(texts) + len(near)}")
        self.stored = vectors[:STORED]
        self.fresh = vectors[STORED : STORED + FRESH]
        self.near = vectors[STORED + FRESH :]
