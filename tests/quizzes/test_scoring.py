"""Scoring of every question kind and of the pass rules (pure, no database)."""

import itertools

import pytest
from scipy.stats import kendalltau

from quizzes import scoring
from quizzes.scoring import Criterion, SectionTally, Shortfall, evaluate

MC = {"options": ["a", "b", "c"]}
LABELS = {"prompt": "p", "response": "r", "labels": ["1", "2", "3", "4", "5"]}
GRADE = {"prompt": "p", "response": "r", "scale": [1, 5]}
RANK4 = {"prompt": "p", "responses": ["w", "x", "y", "z"]}
COMPARE = {"prompt": "p", "responses": ["first", "second"]}
WRITING = {"prompts": ["one", "two", "three"], "min_choices": 2, "max_choices": None}


def test_multiple_choice_agrees_on_the_key_only():
    assert scoring.agrees("multiple_choice", MC, 1, {}, {"choice": 1})
    assert not scoring.agrees("multiple_choice", MC, 1, {}, {"choice": 2})
    assert not scoring.agrees("multiple_choice", MC, 1, {}, None)


@pytest.mark.parametrize(
    ("given", "tolerance", "agreed"), [("4", 0, True), ("3", 0, False), ("3", 1, True), ("2", 1, False)]
)
def test_label_tolerance_counts_steps_on_the_ordered_scale(given, tolerance, agreed):
    assert scoring.agrees("label", LABELS, "4", {"tolerance": tolerance}, {"label": given}) is agreed


@pytest.mark.parametrize(("given", "agreed"), [(4, True), (5, True), (3, True), (2, False)])
def test_grade_agrees_within_one_point_by_default(given, agreed):
    assert scoring.agrees("grade", GRADE, 4, {}, {"grade": given}) is agreed
    assert scoring.agrees("grade", GRADE, 4, {"tolerance": 0}, {"grade": given}) is (given == 4)


def test_kendall_tau_matches_scipy_for_every_ranking_of_four():
    reference = [2, 0, 3, 1]
    for order in itertools.permutations(range(4)):
        # scipy compares two score vectors: the rank each item gets from each ordering.
        ours = scoring.kendall_tau(list(order), reference)
        theirs = kendalltau([order.index(i) for i in range(4)], [reference.index(i) for i in range(4)]).statistic
        assert ours == pytest.approx(theirs)


def test_rank_agreement_uses_the_tau_threshold_and_needs_a_full_order():
    key = [0, 1, 2, 3]
    one_swap = [1, 0, 2, 3]  # 1 discordant pair of 6: tau = 2/3
    two_swaps = [1, 0, 3, 2]  # tau = 1/3
    assert scoring.agrees("rank", RANK4, key, {}, {"order": key})
    assert scoring.agrees("rank", RANK4, key, {"min_tau": 0.6}, {"order": one_swap})
    assert not scoring.agrees("rank", RANK4, key, {"min_tau": 0.6}, {"order": two_swaps})
    assert not scoring.agrees("rank", RANK4, key, {"min_tau": 1.0}, {"order": one_swap})
    assert not scoring.agrees("rank", RANK4, key, {}, {"order": [0, 1, 2]})  # partly ranked


def test_the_rank_rule_says_how_many_pairs_may_differ():
    assert scoring.max_discordant_pairs(4, 0.6) == 1
    assert scoring.max_discordant_pairs(3, 0.6) == 0
    assert scoring.max_discordant_pairs(5, 0.6) == 2
    rule = scoring.agreement_rule("rank", RANK4, [3, 1, 0, 2], {"min_tau": 0.6})
    assert "Kendall's tau" in rule and "D > B > A > C" in rule and "at most 1 of the 6 pairs" in rule
    exact = scoring.agreement_rule("rank", {"prompt": "p", "responses": ["a", "b", "c"]}, [0, 1, 2], {})
    assert "only the exact reference order agrees" in exact


@pytest.mark.parametrize(
    ("answer", "agreed"),
    [
        ({"choice": "b", "strength": "better"}, True),
        ({"choice": "b", "strength": "significantly_better"}, True),  # one level off
        ({"choice": "b", "strength": "negligibly_better"}, False),  # two levels off
        ({"choice": "a", "strength": "better"}, False),  # the other side
        ({"choice": "b"}, False),  # no strength yet
    ],
)
def test_compare_needs_the_side_and_a_strength_within_one_level(answer, agreed):
    assert scoring.agrees("compare", COMPARE, {"choice": "b", "strength": "better"}, {}, answer) is agreed


def test_an_unsure_reference_accepts_either_side_at_a_low_strength():
    key = {"choice": "a", "strength": "negligibly_better"}
    assert scoring.agrees("compare", COMPARE, key, {}, {"choice": "b", "strength": "slightly_better"})
    assert not scoring.agrees("compare", COMPARE, key, {}, {"choice": "b", "strength": "better"})
    assert "either response" in scoring.agreement_rule("compare", COMPARE, key, {})


def test_free_writing_answers_are_checked_and_trimmed_of_empty_responses():
    cleaned = scoring.clean_answer("free_writing", WRITING, {"responses": {"0": "Hello", "2": "  "}})
    assert cleaned == {"responses": {"0": "Hello"}}
    assert scoring.clean_answer("free_writing", WRITING, {"responses": {"1": " "}}) is None
    with pytest.raises(scoring.AnswerError, match="not a prompt"):
        scoring.clean_answer("free_writing", WRITING, {"responses": {"7": "x"}})
    with pytest.raises(scoring.AnswerError, match="at most 1"):
        scoring.clean_answer("free_writing", {**WRITING, "max_choices": 1}, {"responses": {"0": "a", "1": "b"}})
    with pytest.raises(ValueError, match="not scored automatically"):
        scoring.agrees("free_writing", WRITING, None, {}, cleaned)


@pytest.mark.parametrize(
    ("kind", "content", "value", "message"),
    [
        ("multiple_choice", MC, {"choice": 5}, "between 0 and 2"),
        ("multiple_choice", MC, {"choice": True}, "whole number"),
        ("label", LABELS, {"label": "6"}, "one of"),
        ("grade", GRADE, {"grade": 9}, "between 1 and 5"),
        ("rank", RANK4, {"order": [0, 0]}, "distinct"),
        ("compare", COMPARE, {"choice": "c"}, "'a' or 'b'"),
        ("compare", COMPARE, {"strength": "huge"}, "strength"),
        ("label", LABELS, "4", "JSON object"),
        ("compare", COMPARE, {"nonsense": 1}, "Unknown field 'nonsense'"),
        ("multiple_choice", MC, {"choice": 1, "label": "x"}, "Unknown field 'label'"),
    ],
)
def test_malformed_answers_are_refused_with_a_message(kind, content, value, message):
    with pytest.raises(scoring.AnswerError, match=message):
        scoring.clean_answer(kind, content, value)


def test_display_order_round_trips_for_rankings_and_comparisons():
    permutation = [2, 0, 3, 1]  # display position i shows the author's answer permutation[i]
    canonical = {"order": [3, 1, 0, 2]}
    shown = scoring.to_display("rank", permutation, canonical)
    assert scoring.from_display("rank", permutation, shown) == canonical
    assert shown == {"order": [2, 3, 1, 0]}
    swapped = [1, 0]
    assert scoring.from_display("compare", swapped, {"choice": "a", "strength": "better"}) == {
        "choice": "b",
        "strength": "better",
    }
    assert scoring.to_display("compare", swapped, {"choice": "b"}) == {"choice": "a"}


# ------------------------------------------------------------------ pass rules


def tally(key, *, agreed=0, total=0, grades=(), pending=0, closed=True):
    return SectionTally(key, closed, total, agreed, tuple(grades), pending)


def test_more_than_26_of_31_means_27():
    rule = Criterion("Quality", ("q",), "count_agreed", "gt", 26)
    assert evaluate([rule], {"q": tally("q", agreed=27, total=31)}).passed is True
    assert evaluate([rule], {"q": tally("q", agreed=26, total=31)}).passed is False
    assert "more than 26 of 31" in rule.describe(31)


def test_ninety_percent_is_at_least_ninety():
    rule = Criterion("Part I", ("p1",), "percent_agreed", "gte", 90)
    assert evaluate([rule], {"p1": tally("p1", agreed=9, total=10)}).passed is True
    assert evaluate([rule], {"p1": tally("p1", agreed=8, total=10)}).passed is False


def test_average_grade_across_sections_and_strictly_above_four():
    ii_iii = Criterion("II-III", ("p2", "p3"), "average_grade", "gte", 4)
    tallies = {"p2": tally("p2", grades=(5, 3)), "p3": tally("p3", grades=(4,))}
    assert evaluate([ii_iii], tallies).passed is True  # (5 + 3 + 4) / 3 = 4
    above = Criterion("Writing", ("w",), "average_grade", "gt", 4)
    assert evaluate([above], {"w": tally("w", grades=(4, 4, 4, 4, 4, 4))}).passed is False
    assert evaluate([above], {"w": tally("w", grades=(5, 4, 4, 4, 4, 4))}).passed is True


def test_a_verdict_waits_for_grades_unless_it_already_failed():
    auto = Criterion("Auto", ("a",), "percent_agreed", "gte", 80)
    written = Criterion("Written", ("w",), "average_grade", "gte", 4)
    waiting = {"a": tally("a", agreed=9, total=10), "w": tally("w", grades=(5,), pending=1)}
    assert evaluate([auto, written], waiting).passed is None
    failed = {"a": tally("a", agreed=5, total=10), "w": tally("w", grades=(5,), pending=1)}
    verdict = evaluate([auto, written], failed)
    assert verdict.passed is False and "Auto" in verdict.reasons[0] and "50%" in verdict.reasons[0]


def test_a_failed_gate_is_reported_and_open_sections_leave_the_rest_undecided():
    gate = Criterion("Part I", ("p1",), "percent_agreed", "gte", 90, gate=True)
    later = Criterion("Later", ("p2",), "average_grade", "gte", 4)
    verdict = evaluate([gate, later], {"p1": tally("p1", agreed=8, total=10), "p2": tally("p2", closed=False)})
    assert verdict.passed is False and verdict.gate_failed
    assert verdict.criteria[1].passed is None


def test_nothing_written_fails_and_a_shortfall_fails():
    written = Criterion("Writing", ("w",), "average_grade", "gt", 4)
    assert evaluate([written], {"w": tally("w")}).passed is False
    verdict = evaluate([written], {"w": tally("w", grades=(5, 5, 5))}, [Shortfall("Answer writing", 3, 6)])
    assert verdict.passed is False
    assert "wrote 3 of the required 6" in verdict.reasons[0]
