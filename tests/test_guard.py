"""The lexical guard's later rules: units, symbols and options, swapped roles, names written in
lowercase, and records of the first lex1 format (the earlier rules are tested in
tests/backends/test_embedders.py::TestLexicalGuard)."""

from __future__ import annotations

import orjson
import pytest

from llm_memo.backends.semantic import LexicalGuard


@pytest.fixture
def guard() -> LexicalGuard:
    return LexicalGuard()


def allows(guard: LexicalGuard, a: str, b: str) -> bool:
    """Both directions agree (the rules are symmetric); return the verdict."""
    forward = guard.allows(guard.features(a), guard.features(b))
    assert guard.allows(guard.features(b), guard.features(a)) is forward
    return forward


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("What is 5 kilometers in miles?", "What is 5 miles in kilometers?"),
        ("How many grams are in a pound?", "How many grams are in an ounce?"),
        ("Is 2 mg of melatonin a safe dose?", "Is 2 g of melatonin a safe dose?"),
        ("What time is it in Tokyo at 9am?", "What time is it in Tokyo at 9pm?"),
        ("How many weeks pregnant is 5 months?", "How many months pregnant is 5 weeks?"),
        ("Set a 30 second timeout.", "Set a 30-millisecond timeout."),
    ],
)
def test_units_must_match(guard: LexicalGuard, a: str, b: str) -> None:
    """A number is compared with its unit, and the units a text names must be the same."""
    assert not allows(guard, a, b)


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("Convert 10 kilograms to pounds.", "What is 10 kg in lbs?"),
        ("How many centimeters are in an inch?", "How many cm are in one inch?"),
        ("What's 25 degrees Celsius in Fahrenheit?", "Convert 25 °C to °F."),
        ("How many ounces are in a pound?", "How many oz make up one pound?"),
    ],
)
def test_unit_spellings_are_one_unit(guard: LexicalGuard, a: str, b: str) -> None:
    """kg = kilograms, °C = degrees Celsius; a unit is not a name (GB, Celsius)."""
    assert allows(guard, a, b)


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("What does x == y do in JavaScript?", "What does x === y do in JavaScript?"),
        ("What does i++ do in C?", "What does ++i do in C?"),
        (r"What does the regex ^\d+$ match?", r"What does the regex ^\d*$ match?"),
        ("What does the regex [a-z]+ match?", "What does the regex [^a-z]+ match?"),
        ("What does the regex colou?r match?", "What does the regex colou*r match?"),
        ("Rows WHERE age > 30?", "Rows WHERE age >= 30?"),
        ("What does [1, 2, 3][1:] give?", "What does [1, 2, 3][:1] give?"),
        ("What does git reset --hard do?", "What does git reset --soft do?"),
        ("What does ls -la show?", "What does ls -lh show?"),
        ("What does git branch -d do?", "What does git branch -D do?"),
        ("What does grep -v error log.txt print?", "What does grep error log.txt print?"),
    ],
)
def test_code_symbols_and_options_must_match(guard: LexicalGuard, a: str, b: str) -> None:
    """One operator, bracket, regex sign or command-line option apart: another answer."""
    assert not allows(guard, a, b)


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("How do I reset my password?", "ugh, how do I reset my password?!"),
        (
            "Which is better (for beginners): Go or Rust?",
            "For beginners, which is better, Go or Rust?",
        ),
        ("Is sci-fi popular?", "Is science fiction popular?"),
        ("Translate 'good morning' into Spanish.", 'Translate "good morning" into Spanish'),
        ("What does chmod +x do?", "What does chmod +x do to a file?"),
        ("Why is 0.1 + 0.2 not 0.3?", "Why isn't 0.1 + 0.2 equal to 0.3?"),
    ],
)
def test_prose_punctuation_is_not_a_symbol(guard: LexicalGuard, a: str, b: str) -> None:
    """Sentence punctuation, quotes, parentheses, hyphens and decimal points do not count."""
    assert allows(guard, a, b)


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("Can a tenant sue a landlord for mold?", "Can a landlord sue a tenant for mold?"),
        ("Why do cats chase mice?", "Why do mice chase cats?"),
        ("How do I copy files from my laptop to the server?",
         "How do I copy files from the server to my laptop?"),
        ("How do I convert a list of tuples to a dictionary?",
         "How do I convert a dictionary to a list of tuples?"),
        ("What is 2 to the power of 10?", "What is 10 to the power of 2?"),
        ("Can a dog eat a cat's food?", "Can a cat eat a dog's food?"),
    ],
)  # fmt: skip
def test_swapped_roles_are_refused(guard: LexicalGuard, a: str, b: str) -> None:
    """The same words in another order around the same connectives: roles swapped."""
    assert not allows(guard, a, b)


def test_a_moved_phrase_is_not_a_swap(guard: LexicalGuard) -> None:
    """A phrase that moves with its preposition keeps the meaning."""
    assert allows(guard, "What happened on the Moon in 1969?", "What happened in 1969 on the Moon?")


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("What is the capital of France?", "yo what's france's capital"),
        ("How do I install Python on Windows?", "how to install python on windows"),
    ],
)
def test_a_name_in_lowercase_is_the_same_name(guard: LexicalGuard, a: str, b: str) -> None:
    """Casual lowercase writing names the same entities."""
    assert allows(guard, a, b)


def test_another_name_in_lowercase_is_still_refused(guard: LexicalGuard) -> None:
    assert not allows(guard, "What is the capital of Australia?", "what is the capital of austria")


def test_possessive_time_words(guard: LexicalGuard) -> None:
    """ "today's" is a time word like "today"."""
    assert allows(guard, "What is the weather today?", "What's today's weather?")
    assert not allows(guard, "What is the weather today?", "What's tomorrow's weather?")


def first_format(features: str) -> str:
    """``features`` as the first lex1 release stored them (the first 7 fields)."""
    head, _, body = features.partition(":")
    return f"{head}:{orjson.dumps(orjson.loads(body)[:7]).decode()}"


def test_first_format_records_are_read_with_the_earlier_rules(guard: LexicalGuard) -> None:
    """A record stored before the later rules (7 fields) is still served where the earlier
    rules allow it, and refused where they refuse; the later rules need both records."""
    query = guard.features("What's the way to reset my password?")
    assert guard.allows(query, first_format(guard.features("How do I reset my password?")))
    assert not guard.allows(query, first_format(guard.features("How do I reset my PIN?")))
    swapped = guard.features("Why do mice chase cats?")
    stored = guard.features("Why do cats chase mice?")
    assert not guard.allows(swapped, stored)
    assert guard.allows(swapped, first_format(stored))


def test_first_format_numbers_without_units_miss(guard: LexicalGuard) -> None:
    """A number now carries its unit, so an old record with a number is not served (a miss,
    never a wrong answer)."""
    old = 'lex1:["en",false,["5"],[],[],[],false]'  # "What is 5 kilometers in miles?" then
    assert not guard.allows(guard.features("What is 5 kilometers in miles?"), old)
    assert guard.allows(old, old)  # two old records: the earlier rules


def test_features_stay_short_and_hide_the_words(guard: LexicalGuard) -> None:
    text = "My neighbour Alice asked how to enable 2 factor login on her laptop"
    features = guard.features(text)
    for word in ("neighbour", "asked", "factor", "laptop"):
        assert word not in features
    # about two characters per character of text and a fixed part of digests (~160): far
    # below the 1.5 KB of the vector stored with it
    assert len(features) < 2 * len(text) + 160


@pytest.mark.parametrize(
    ("a", "b"),
    [
        (
            "How much does the visa cost for two years?",
            "How much does the visa cost for two months?",
        ),
        ("What did I spend last week?", "What did I spend last month?"),
        ("Should I water the plant every week?", "Should I water the plant every other week?"),
    ],
)
def test_number_words_carry_their_units(guard: LexicalGuard, a: str, b: str) -> None:
    """A number word is compared with its unit as a number is ("two years" is not "two months"),
    and "every other" is a number of its own."""
    assert not allows(guard, a, b)


def test_a_number_word_and_its_digits_with_one_unit_agree(guard: LexicalGuard) -> None:
    assert allows(guard, "Is a warranty of five years normal?", "Is a 5 years warranty normal?")
    assert allows(guard, "Water it every other day.", "Water it every other day, please.")


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("What time is checkout at the hotel?", "What time is check-in at the hotel?"),
        ("Make the function recursive.", "Make the function iterative."),
        ("How do I get the current date in Python?", "How do I get the current time in Python?"),
    ],
)
def test_more_opposites_and_hyphenated_compounds(guard: LexicalGuard, a: str, b: str) -> None:
    """A hyphenated compound is also read as the joined word (check-in / checkout)."""
    assert not allows(guard, a, b)


def test_a_hyphenated_compound_matches_its_joined_spelling(guard: LexicalGuard) -> None:
    assert allows(guard, "When is check-in at the hotel?", "What time is checkin at the hotel?")


@pytest.mark.parametrize(
    ("earlier", "a", "b"),
    [
        ("How do I center a div with flexbox?", "And vertically?", "And with grid?"),
        ("What are the side effects of ibuprofen?", "And for children?", "And for pregnant women?"),
    ],
)
def test_another_follow_up_in_the_same_conversation_is_refused(
    guard: LexicalGuard, earlier: str, a: str, b: str
) -> None:
    """After the same earlier turns, last turns that share no word but fillers ask for other
    things."""
    assert not allows(guard, f"{earlier}\n{a}", f"{earlier}\n{b}")


@pytest.mark.parametrize(
    ("earlier", "a", "b"),
    [
        ("What's the capital of Australia?", "And of Canada?", "What about Canada?"),
        (
            "How do I center a div with flexbox?",
            "And vertically?",
            "How do I center it vertically?",
        ),
        ("Explain recursion.", "Give me an example in Python.", "Can you show a Python example?"),
    ],
)
def test_the_same_follow_up_in_other_words_is_allowed(
    guard: LexicalGuard, earlier: str, a: str, b: str
) -> None:
    assert allows(guard, f"{earlier}\n{a}", f"{earlier}\n{b}")


def test_records_without_the_follow_up_field_skip_that_rule(guard: LexicalGuard) -> None:
    """A record of the 11-field format (before the follow-up rule) is read with the rules it
    has."""
    a = guard.features("How do I center a div with flexbox?\nAnd vertically?")
    b = guard.features("How do I center a div with flexbox?\nAnd with grid?")
    eleven = "lex1:" + orjson.dumps(orjson.loads(b.partition(":")[2])[:11]).decode()
    assert not guard.allows(a, b)
    assert guard.allows(a, eleven)


# -- symmetric relations, aliases, one of a unit, verbs that are time words, who/whom -----------


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("What's the difference between a crocodile and an alligator?",
         "What's the difference between an alligator and a crocodile?"),
        ("Which is healthier, rice or pasta?", "Which is healthier, pasta or rice?"),
        ("What happens if I mix bleach with vinegar?",
         "What happens if I mix vinegar with bleach?"),
        ("Compare the United States and Canada.", "Compare Canada and the United States."),
        ("Should I learn Go or Rust first?", "Should I learn Rust or Go first?"),
        ("What is the distance between Paris and Rome?",
         "What is the distance between Rome and Paris?"),
    ],
)  # fmt: skip
def test_the_sides_of_a_symmetric_relation_may_swap(guard: LexicalGuard, a: str, b: str) -> None:
    """ "X or Y" always, and "X and/with Y" next to a symmetric word (difference, between,
    compare, mix...), ask the same question in either order."""
    assert allows(guard, a, b)


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("Can a tenant sue a landlord and win?", "Can a landlord sue a tenant and win?"),
        ("Is Python faster than JavaScript or Go?", "Is JavaScript faster than Python or Go?"),
        ("How do I convert Celsius to Fahrenheit or Kelvin?",
         "How do I convert Fahrenheit to Celsius or Kelvin?"),
        ("Should I pay off my car loan before my student loan?",
         "Should I pay off my student loan before my car loan?"),
        ("Why do cats chase mice and birds?", "Why do mice chase cats and birds?"),
        ("What's the difference between moving from Paris to Rome and back?",
         "What's the difference between moving from Rome to Paris and back?"),
    ],
)  # fmt: skip
def test_roles_swapped_outside_the_symmetric_relation_are_refused(
    guard: LexicalGuard, a: str, b: str
) -> None:
    """Only the two sides of "or" / "and" may swap: a swap elsewhere in the text (around
    "than", "to", "before", a verb) is still a swap, and "and" without a symmetric word is not
    symmetric."""
    assert not allows(guard, a, b)


def test_and_without_a_symmetric_word_keeps_its_order(guard: LexicalGuard) -> None:
    """ "X and Y" is read as a set only next to a symmetric word (difference, compare...)."""
    assert not allows(guard, "How do I wash and dry wool?", "How do I dry and wash wool?")
    assert allows(guard, "Compare washing and drying wool.", "Compare drying and washing wool.")


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("What year did World War II end?", "When did WWII end?"),
        ("When did the Second World War start?", "When did WW2 start?"),
        ("What is the population of the United States?", "What is the population of the US?"),
        ("How do I undo my last git commit?", "how to undo the most recent commit in git"),
        ("What is the tallest mountain in the world?", "Which mountain is the highest on Earth?"),
    ],
)
def test_aliases_name_the_same_thing(guard: LexicalGuard, a: str, b: str) -> None:
    """Spellings of one name or phrase (World War II / WWII, United States / US, most recent /
    last, Earth / the world) are one."""
    assert allows(guard, a, b)


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("What year did World War I end?", "When did WWII end?"),
        ("What is the population of the United States?", "What is the population of the UK?"),
        ("How do I undo my last git commit?", "How do I undo my first git commit?"),
        ("Who won the most recent World Cup?", "Who won the first World Cup?"),
        ("Can you help us move?", "Can you help USA move?"),
    ],
)
def test_other_names_stay_other_names(guard: LexicalGuard, a: str, b: str) -> None:
    """Aliases join spellings, not neighbours: WWI is not WWII, "last" is not "first", and the
    pronoun "us" is not the US (single-word spellings match as written)."""
    assert not allows(guard, a, b)


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("What is 1 GB in MB?", "How many megabytes are in one gigabyte?"),
        ("How many seconds are in 1 day?", "How many seconds are in a day?"),
        ("Is an hour of exercise enough?", "Is one hour of exercise enough?"),
    ],
)
def test_one_of_a_unit_is_the_unit(guard: LexicalGuard, a: str, b: str) -> None:
    """ "1 GB", "one gigabyte" and "a gigabyte" ask the same."""
    assert allows(guard, a, b)


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("What is 1 GB in MB?", "What is 2 GB in MB?"),
        ("How many seconds are in one day?", "How many seconds are in one week?"),
        ("Is the shop open at 1 pm?", "Is the shop open at 1 am?"),
        ("Is the shop open at one pm?", "Is the shop open at two pm?"),
    ],
)
def test_other_amounts_and_clock_times_still_differ(guard: LexicalGuard, a: str, b: str) -> None:
    assert not allows(guard, a, b)


def test_a_unit_misspelt_by_one_letter_is_the_unit(guard: LexicalGuard) -> None:
    """A letter left out or added in a long unit word ("calries", "kilogramms") still names the
    unit, and another unit misspelt is still another unit."""
    assert allows(
        guard, "How many calories should I eat per day?", "how many calries shuold i eat per day"
    )
    assert allows(guard, "What is 5 kilograms in pounds?", "what is 5 kilogramms in pounds")
    assert not allows(
        guard, "How many calories are in a banana?", "how many kilojoules in a banana"
    )
    assert not allows(guard, "What is 5 kilograms in pounds?", "what is 5 kilometrs in pounds")


def test_a_time_word_used_as_a_verb_is_not_a_time(guard: LexicalGuard) -> None:
    """ "fall" after an auxiliary or before "on" is the verb; the season stays a time."""
    assert allows(
        guard, "When is Thanksgiving in 2025?", "What date does Thanksgiving fall on in 2025?"
    )
    assert not allows(guard, "Is Paris nice in the fall?", "Is Paris nice in the spring?")
    assert not allows(guard, "Is Paris nice in the fall?", "Is Paris nice in summer?")


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("Who taught Aristotle?", "Who did Aristotle teach?"),
        ("Who did Marie Curie marry?", "Who married Marie Curie?"),
        ("Whom did Caesar defeat?", "Who defeated Caesar?"),
    ],
)
def test_who_asks_for_the_subject_or_the_object(guard: LexicalGuard, a: str, b: str) -> None:
    """ "Who taught X" asks for X's teacher, "Who did X teach" for X's pupil."""
    assert not allows(guard, a, b)


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("Who painted the Mona Lisa?", "Who was the painter of the Mona Lisa?"),
        ("Who did the Mona Lisa?", "Who painted the Mona Lisa?"),
        ("Who did Aristotle teach?", "Whom did Aristotle teach?"),
    ],
)
def test_the_same_who_question_in_other_words_is_allowed(
    guard: LexicalGuard, a: str, b: str
) -> None:
    """ "did" followed by an article is the main verb ("Who did the Mona Lisa?")."""
    assert allows(guard, a, b)


def test_records_without_the_later_fields_skip_those_rules(guard: LexicalGuard) -> None:
    """A record without the symmetric digest is read as having no symmetric relation (the swap
    is a miss), and one without the question form skips the who rule."""
    a = guard.features("Which is healthier, rice or pasta?")
    b = guard.features("Which is healthier, pasta or rice?")
    body = orjson.loads(b.partition(":")[2])
    assert len(body[9]) > 4  # bag, order, core, phrases, and the symmetric readings
    body[9] = body[9][:4]
    assert guard.allows(a, b)
    assert not guard.allows(a, "lex1:" + orjson.dumps(body).decode())
    who = guard.features("Who taught Aristotle?")
    whom = guard.features("Who did Aristotle teach?")
    twelve = "lex1:" + orjson.dumps(orjson.loads(whom.partition(":")[2])[:12]).decode()
    assert not guard.allows(who, whom)
    assert guard.allows(who, twelve)


# -- one word substituted, phrasal opposites, synonyms ------------------------------------------


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("How do I bake bread at home?", "How do I bake cookies at home?"),
        ("What are the symptoms of a cold?", "What are the symptoms of the flu?"),
        ("How do I sort a dictionary by value in Python?",
         "How do I sort a dictionary by key in Python?"),
        ("How long does it take to drive from Boston to New York?",
         "How long does it take to fly from Boston to New York?"),
        ("What does git stash pop do?", "What does git stash apply do?"),
        ("How do I boil an egg?\nAnd how long for hard-boiled?",
         "How do I boil an egg?\nAnd how long for soft-boiled?"),
    ],
)  # fmt: skip
def test_one_word_replaced_in_place_is_another_question(
    guard: LexicalGuard, a: str, b: str
) -> None:
    """The same question with one slot filled with another word asks for another answer."""
    assert not allows(guard, a, b)


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("How do I reverse a list in JavaScript?", "How can I reverse an array in JavaScript?"),
        ("How do I unclog a drain?", "how do i unclog a drian"),
        ("Can dogs eat grapes?", "can dogs eat graps?"),
        ("What vegetables can I grow indoors?", "what vegtables can i grow indoors"),
        ("How do I make my plants grow faster?", "How do I make my plants grow quicker?"),
        ("How do I fix a leaking faucet?", "How do I repair a leaking faucet?"),
        ("How do I clean my oven?", "How can I clean my oven?"),
        ("Explain how photosynthesis works.", "Can you explain the process of photosynthesis?"),
    ],
)
def test_typos_synonyms_function_words_and_rewordings_are_not_substitutions(
    guard: LexicalGuard, a: str, b: str
) -> None:
    """Not a substitution: a misspelling (the same consonant skeleton), a synonym of the table,
    a function word (do / can), or a paraphrase that rewords more than one place."""
    assert allows(guard, a, b)


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("How do I turn on Bluetooth on my iPhone?", "How do I turn off Bluetooth on my iPhone?"),
        ("How do I zoom in on a Mac?", "How do I zoom out on a Mac?"),
        ("How do I read a CSV file with pandas?", "How can I write CSV files using pandas?"),
        ("How do I freeze fresh bread?", "How do I thaw frozen bread?"),
        ("How do I delete a local git branch?", "How can I remove a remote branch in git?"),
        ("Which foods are rich in iron?", "Which foods lack iron?"),
        ("What can I eat with diabetes?", "What should I avoid eating with diabetes?"),
    ],
)
def test_phrasal_opposites_and_negative_verbs(guard: LexicalGuard, a: str, b: str) -> None:
    """Two words read as one (turn on / turn off, zoom in / zoom out), more everyday opposites
    (read / write, freeze / thaw, local / remote) and verbs that negate (lack, avoid)."""
    assert not allows(guard, a, b)


def test_a_word_next_to_a_particle_is_not_read_as_a_phrase(guard: LexicalGuard) -> None:
    """ "on" alone is not "turn on": both texts have it, so nothing is opposite."""
    assert allows(guard, "How do I turn on Bluetooth?", "How can I switch Bluetooth on?")
    assert allows(guard, "What is on TV tonight?", "What's on television tonight?")


def test_synonyms_name_the_same_thing(guard: LexicalGuard) -> None:
    """A synonym of the table is the same word for the names rule too (PC / computer)."""
    assert allows(
        guard, "How do I remove a virus from my computer?", "How can I delete a virus on my PC?"
    )


def test_records_without_the_substitution_fields_skip_that_rule(guard: LexicalGuard) -> None:
    a = guard.features("How do I bake bread at home?")
    b = guard.features("How do I bake cookies at home?")
    twelve = "lex1:" + orjson.dumps(orjson.loads(b.partition(":")[2])[:12]).decode()
    assert not guard.allows(a, b)
    assert guard.allows(a, twelve)
