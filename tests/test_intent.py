"""Free-text task detection and mention finding (no model needed)."""

from __future__ import annotations

import pytest

from p5rec.intent import IntentError, TaskDetector, find_mentions, neutral_text
from p5rec.prompts import load_queries
from p5rec.tasks import FAMILIES, get_family

# Phrasings that no template and no example query of prompts/*.yaml has.
PARAPHRASES = {
    "next_item": [
        "what will user 42 want next?",
        "Any recommendations for user 12?",
        "Which items should we suggest to this buyer next time?",
        "what should she buy after this?",
        "Recommend something new for user_0003",
    ],
    "rating": [
        "how would she rate item 17?",
        "How many stars would user 5 give movie 20?",
        "what rating would this customer give it, 1 to 5?",
        "Would user 3 like item 9 enough to give it five stars?",
    ],
    "explanation": [
        "why would he like this?",
        "Why might user 4 enjoy item 30?",
        "Write a short headline user 2 might give item 8.",
        "Explain the appeal of this product for them.",
    ],
    "sentiment": [
        "Is this review happy or unhappy: 'the strings broke after a day'",
        "positive or negative? 'Great pedal, love it'",
        "How does the reviewer feel: 'meh, it works'",
    ],
    "category": [
        "What genre is movie 50?",
        "Which category does item_0003 fall under?",
        "What type of product is 'Fender guitar strings'?",
    ],
    "candidate_ranking": [
        "Which of items 3, 7 and 9 would user 1 pick?",
        "Rank item 4, item 8 and item 15 for user 2",
        "Among movies 1, 2 and 3, which suits user 6 best?",
    ],
}


@pytest.fixture(scope="module")
def detector() -> TaskDetector:
    return TaskDetector(list(FAMILIES))


def test_paraphrases_are_new_phrasings():
    for family, texts in PARAPHRASES.items():
        known = {q.lower() for q in load_queries(family)}
        known |= {t.source.lower() for t in get_family(family).templates}
        assert not known & {t.lower() for t in texts}


@pytest.mark.parametrize("family", sorted(PARAPHRASES))
def test_paraphrases_detected(detector, family):
    users, items = {str(n) for n in range(50)}, {str(n) for n in range(60)} | {"item_0003"}
    for text in PARAPHRASES[family]:
        mentions = find_mentions(text, users, items)
        assert detector.detect(neutral_text(text, mentions)).family == family, text


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_every_template_is_detected_as_its_family(detector, family):
    values = {
        "user": "A3KX",
        "item": "<a_1><b_2>",
        "item_title": "Fender strings",
        "history": "<a_1><b_2> <a_3><b_1>",
        "rated_history": "<a_1><b_2> 4 <a_3><b_1> 5",
        "user_ratings": "average 4.0 of 2 ratings",
        "item_ratings": "no ratings yet",
        "candidates": "<a_1><b_2>, <a_2><b_2>",
        "review": "works fine",
    }
    for template in get_family(family).templates:  # seen and unseen
        text = template.source.format(**values)
        assert detector.detect(text).family == family, template.id


def test_weak_or_ambiguous_prompts_are_refused(detector):
    with pytest.raises(IntentError, match="empty"):
        detector.detect("   ")
    for text in ("zzz qqq", "tell me a joke", "hello", "sing a song"):
        with pytest.raises(IntentError, match="cannot tell which task"):
            detector.detect(text)
    tied = TaskDetector(["a", "b"], exemplars={"a": ["rate the item"], "b": ["rate the item"]})
    with pytest.raises(IntentError, match="ambiguous between a and b"):
        tied.detect("rate the item")


def test_mentions():
    users, items = {"1", "42", "A2XY"}, {"1", "3", "7", "9", "B00Q"}
    m = find_mentions("Which of items 3, 7 and 9 would user 1 pick?", users, items)
    assert m.user == "1" and m.items == ("3", "7", "9")
    # bare numbers are not items (ratings, counts); non-numeric ids count anywhere
    m = find_mentions("would A2XY give 3 stars to B00Q?", users, items)
    assert m.user == "A2XY" and m.items == ("B00Q",)
    m = find_mentions("rate item 7. user 42 asks", users, items)
    assert m.user == "42" and m.items == ("7",)
    assert neutral_text("would A2XY like B00Q?", m) == "would A2XY like B00Q?"
    m = find_mentions("would A2XY like B00Q?", users, items)
    assert neutral_text("would A2XY like B00Q?", m) == "would user like item?"
    m = find_mentions("Rank item 4, item 8 for user 42", users | {"42"}, items | {"4", "8"})
    assert neutral_text("Rank item 4, item 8 for user 42", m) == "Rank item , item  for user "
