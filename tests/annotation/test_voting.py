import pytest

from annotation.voting import Ballot, majority_label


def b(chosen, strength="better", safety=""):
    return Ballot(chosen=chosen, strength=strength, safety_label=safety)


def test_unanimous_vote_takes_median_strength():
    label = majority_label([b("a", "significantly_better"), b("a", "slightly_better"), b("a", "better")])
    assert (label.choice, label.strength, label.vote) == ("a", "better", "unanimous")


def test_split_vote_uses_only_the_majority_side_for_strength():
    label = majority_label(
        [b("b", "significantly_better"), b("b", "significantly_better"), b("a", "negligibly_better")]
    )
    assert (label.choice, label.strength, label.vote) == ("b", "significantly_better", "split")


def test_even_majority_side_takes_the_weaker_middle_strength():
    ballots = [
        b("a", "significantly_better"),
        b("a", "slightly_better"),
        b("b"),
        b("a", "better"),
        b("a", "negligibly_better"),
    ]
    # majority side ranks sorted: negligible(0), slightly(1), better(2), significantly(3) -> lower middle is slightly
    assert majority_label(ballots).strength == "slightly_better"


def test_even_split_is_a_tie_without_label():
    label = majority_label([b("a"), b("b")])
    assert (label.choice, label.strength, label.safety_label, label.vote) == ("", "", "", "tied")


def test_safety_majority_among_majority_side_with_conservative_ties():
    label = majority_label([b("a", safety="both_safe"), b("a", safety="both_unsafe"), b("b", safety="both_safe")])
    assert label.safety_label == "both_unsafe"
    label = majority_label(
        [b("a", safety="both_safe"), b("a", safety="both_safe"), b("a", safety="chosen_safe_other_unsafe")]
    )
    assert label.safety_label == "both_safe"


def test_no_ballots_is_an_error():
    with pytest.raises(ValueError):
        majority_label([])
