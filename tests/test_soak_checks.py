"""The soak's verdict rules on hand-made records (soak/checks.py): each finds what it
is for and nothing else."""

from __future__ import annotations

from soak.checks import Verdict, opening_arrivals, order
from soak.records import Post

CHAT = 5013
FORGET_DONE = "Done. Everything I kept about you is del"


def post(text: str, *turns: int) -> Post:
    data = tuple(f"talk:opener:fits:{t:x}" for t in turns)
    return Post(CHAT, text, data, "sendMessage", 0, 0.0)


def test_a_question_of_an_earlier_turn_after_a_later_one_is_out_of_order() -> None:
    v = Verdict()
    order(v, {CHAT: [post("first", 2), post("second", 5), post("late", 3)]}, FORGET_DONE)
    assert v.violations == [f"[order] chat {CHAT}: a question of turn 3 arrived after turn 5"]


def test_after_forget_the_turns_start_again_even_where_the_words_repeat() -> None:
    # The fresh conversation's first question repeats the first one of the last,
    # turn and all, so it looks like a question asked again.
    first = post("I keep your place", 1)
    ps = [first, post("later", 2), post("much later", 32), post(FORGET_DONE + "eted."), first]
    v = Verdict()
    order(v, {CHAT: [*ps, post("the next", 2)]}, FORGET_DONE)
    assert v.violations == []


def test_an_opening_without_buttons_sent_twice_is_two_arrivals() -> None:
    # talk_reminder's opening carries no buttons: the same text each time it is sent
    # (the three-worker soak, seed 1, counted two as one).
    opener = post("Here's the opener you asked me to keep.")
    assert opening_arrivals([opener, post("other", 3), opener], "the opener", 2, 0) is None
    assert opening_arrivals([opener], "the opener", 2, 0) == (
        "2 follow-up(s) marked sent, 1 arrived"
    )
    # One more than sent: a duplicate only where a crash window or lost answer allows.
    assert opening_arrivals([opener, opener], "the opener", 1, 1) is None
    assert opening_arrivals([opener, opener], "the opener", 1, 0) is not None


def test_an_opening_with_buttons_counts_distinct_turns_exactly() -> None:
    asked, again, next_one = post("Checking in", 4), post("Checking in", 4), post("Checking in", 9)
    assert opening_arrivals([asked, again], "Checking in", 1, 0) is None
    assert opening_arrivals([asked, again, next_one], "Checking in", 1, 5) is not None
