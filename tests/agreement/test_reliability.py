"""agreement.reliability: encoding of stored ratings, agreement over a table against the reference
implementations, and quality figures of synthetic annotators whose reliability is known."""

import krippendorff
import numpy as np
import pytest

from agreement.coefficients import fleiss_kappa, gwet_ac, krippendorff_alpha
from agreement.quality import agreement_with_others
from agreement.reliability import (
    DAWID_SKENE_TOLERANCE,
    GOLD,
    REGULAR,
    REPEAT,
    SIGNED_SCALE,
    RatingTable,
    analyse,
    annotator_quality,
    comparison_labels,
    measure_agreement,
    metric_rows,
    strength_rows,
    units_by_raters,
)
from tests.agreement.simulated import Annotator, simulate

STRENGTHS = ["negligibly_better", "slightly_better", "better", "significantly_better"]


def table(**columns) -> RatingTable:
    n = len(columns["comparison"])
    defaults = {
        "repeat_of": [None] * n,
        "vendor": [None] * n,
        "strength": ["better"] * n,
        "safety_label": [""] * n,
        "shown_left": ["a"] * n,
        "seconds": [None] * n,
        "gold_check": [False] * n,
        "gold_choice": [""] * n,
    }
    return RatingTable.from_columns(**{**defaults, **columns})


def test_stored_ratings_are_encoded_by_response_never_by_side() -> None:
    rows = table(
        comparison=[10, 10, 20, 30],
        repeat_of=[None, None, 10, None],
        annotator=[1, 2, 1, 3],
        chosen=["a", "b", "b", "a"],
        strength=["significantly_better", "negligibly_better", "better", "slightly_better"],
        safety_label=["chosen_safe_other_unsafe", "chosen_safe_other_unsafe", "both_safe", "both_unsafe"],
        shown_left=["b", "b", "a", "a"],
        gold_check=[False, False, True, True],
        gold_choice=["", "", "b", "a"],
    )
    assert rows.unit.tolist() == [10, 10, 10, 30]  # the repeat counts under its original
    # The repeat stores the original's B as its A: choosing its B is choosing the original's A.
    assert rows.chosen_a.tolist() == [True, False, True, True]
    assert rows.signed.tolist() == [4, -1, 3, 2]
    assert rows.safety.tolist() == [1, 2, 3, 0]  # only A safe, only B safe, both safe, both unsafe
    assert rows.chose_left.tolist() == [False, True, False, True]
    assert rows.kind.tolist() == [REGULAR, REGULAR, REPEAT, GOLD]  # a repeat is never a gold check
    assert np.isnan(rows.gold_a[:3]).all() and rows.gold_a[3] == 1.0
    with pytest.raises(ValueError, match="Unknown strength"):
        table(comparison=[1], annotator=[1], chosen=["a"], strength=["much_better"])


def test_units_by_raters_fills_each_unit_from_the_left() -> None:
    matrix, units = units_by_raters([7, 3, 7, 7, 3, 9], [1.0, 2.0, 3.0, 4.0, 5.0, 6.0])
    assert units.tolist() == [3, 7, 9]
    np.testing.assert_array_equal(matrix, [[2, 5, np.nan], [1, 3, 4], [6, np.nan, np.nan]])


def crowd_table(seed: int = 5, n_units: int = 400, with_checks: bool = True) -> tuple[RatingTable, dict]:
    """Eight annotators rate 400 comparisons, 3 each: 0-5 reliable (90%), 6 random, 7 always left.

    Every annotator also answers 30 gold comparisons and sees 25 of their own pairs again with the
    sides swapped. Truth, sides and answers are drawn from a seeded generator.
    """
    rng = np.random.default_rng(seed)
    columns = {name: [] for name in ("comparison", "repeat_of", "annotator", "chosen", "strength", "shown_left")}
    columns |= {"seconds": [], "gold_check": [], "gold_choice": [], "vendor": []}
    truth = rng.choice(["a", "b"], size=n_units + 30)

    def answer(annotator: int, correct: str, left: str) -> str:
        if annotator == 7:
            return left
        if annotator == 6:
            return str(rng.choice(["a", "b"]))
        return correct if rng.random() < 0.9 else ("b" if correct == "a" else "a")

    def add(comparison, annotator, chosen, left, *, repeat_of=None, gold=False, gold_choice=""):
        columns["comparison"].append(comparison)
        columns["repeat_of"].append(repeat_of)
        columns["annotator"].append(annotator)
        columns["chosen"].append(chosen)
        columns["strength"].append("negligibly_better" if annotator == 6 else str(rng.choice(STRENGTHS[1:])))
        columns["shown_left"].append(left)
        columns["seconds"].append(8.0 if annotator == 6 else float(rng.uniform(40, 80)))
        columns["gold_check"].append(gold)
        columns["gold_choice"].append(gold_choice)
        columns["vendor"].append(100 + annotator % 2)

    first_showing = {}
    for unit in range(n_units):
        for annotator in rng.choice(8, size=3, replace=False):
            left = str(rng.choice(["a", "b"]))
            chosen = answer(annotator, truth[unit], left)
            add(unit, int(annotator), chosen, left)
            first_showing.setdefault(int(annotator), []).append((unit, left))
    if with_checks:
        for annotator in range(8):
            for gold in range(n_units, n_units + 30):
                left = str(rng.choice(["a", "b"]))
                add(gold, annotator, answer(annotator, truth[gold], left), left, gold=True, gold_choice=truth[gold])
            for unit, first_left in first_showing[annotator][:25]:
                # The repeat's A is the original's B; shown mirrored, so its left is the other response.
                repeat_left = first_left
                repeat_truth = "b" if truth[unit] == "a" else "a"
                chosen = answer(annotator, repeat_truth, repeat_left)
                add(100_000 + unit, annotator, chosen, repeat_left, repeat_of=unit)
    return table(**columns), columns


def test_measure_agreement_is_the_pure_functions_on_the_same_matrix_and_matches_krippendorff() -> None:
    rows, _ = crowd_table()
    metrics = measure_agreement(rows)
    regular = rows.subset(rows.kind == REGULAR)
    scale, _ = units_by_raters(regular.unit, regular.signed)
    choice, _ = units_by_raters(regular.unit, regular.chosen_a.astype(float))
    assert metrics["scale"]["gwet_ac2"] == gwet_ac(scale, SIGNED_SCALE, "ordinal").as_dict()
    assert metrics["scale"]["gwet_ac1"] == gwet_ac(scale, SIGNED_SCALE).as_dict()
    assert metrics["choice"]["fleiss_kappa"] == fleiss_kappa(choice, [0, 1]).as_dict()
    assert metrics["scale"]["krippendorff_alpha"] == krippendorff_alpha(scale, "ordinal").as_dict()
    # And against the reference package (raters x units, level named explicitly).
    for measure, matrix, level, statistic in [
        ("choice", choice, "nominal", "krippendorff_alpha"),
        ("scale", scale, "ordinal", "krippendorff_alpha"),
        ("scale", scale, "interval", "krippendorff_alpha_interval"),
    ]:
        expected = krippendorff.alpha(reliability_data=matrix.T, level_of_measurement=level)
        assert metrics[measure][statistic]["coefficient"] == pytest.approx(expected, abs=1e-9)
    summary = metrics["summary"]
    assert summary["regular_ratings"] == 1200 and summary["comparisons"] == 400
    assert summary["gold_checks"] == 240 and summary["repeat_checks"] == 200
    assert sum(metrics["strengths"].values()) == 1200
    assert metrics["safety"] == {} and metrics["safety_bins"] == {}
    assert metrics["aggregation"]["comparisons"] == 400


def test_annotators_of_known_reliability() -> None:
    rows, columns = crowd_table()
    metrics, quality = analyse(rows)
    reliable = [quality[a] for a in range(6)]
    random_rater, left_picker = quality[6], quality[7]

    assert "position_bias" in left_picker["flags"] and left_picker["left_share"] == 1.0
    assert left_picker["position_significant"] and left_picker["left_distance"] == 0.5
    assert all("position_bias" not in row["flags"] for row in [*reliable, random_rater])
    assert max(random_rater["agreement"], left_picker["agreement"]) < min(r["agreement"] for r in reliable) - 0.2
    # The long form agrees with the units x raters version of agreement_with_others.
    regular = rows.subset(rows.kind == REGULAR)
    units = np.unique(regular.unit, return_inverse=True)[1]
    dense = np.full((units.max() + 1, 8), np.nan)
    dense[units, regular.annotator] = regular.chosen_a
    for annotator in range(8):
        expected = agreement_with_others(dense, annotator)
        assert (quality[annotator]["agreement"], quality[annotator]["agreement_n"]) == (expected.share, expected.total)

    # Gold accuracy is exactly the share of gold checks answered with the gold response.
    for annotator in range(8):
        given = [
            c == g
            for c, g, a, is_gold in zip(
                columns["chosen"], columns["gold_choice"], columns["annotator"], columns["gold_check"], strict=True
            )
            if is_gold and a == annotator
        ]
        assert quality[annotator]["gold_n"] == 30
        assert quality[annotator]["gold_accuracy"] == pytest.approx(sum(given) / 30)
    assert all(r["gold_accuracy"] > 0.7 for r in reliable)
    assert "gold_below_floor" in random_rater["flags"] and "gold_below_floor" in left_picker["flags"]

    # Shown mirrored, the left-picker chooses the other response every time.
    assert left_picker["swap_consistency"] == 0.0 and left_picker["swap_n"] == 25
    assert "swap_below_chance" in left_picker["flags"]
    assert all(r["swap_consistency"] >= 0.6 for r in reliable)

    assert random_rater["unsure_share"] == 1.0 and "many_unsure" in random_rater["flags"]
    assert random_rater["median_seconds"] == 8.0 and "fast" in random_rater["flags"]
    assert random_rater["ratings_per_hour"] == 450.0
    assert not any(r["is_outlier"] for r in reliable)
    assert random_rater["ds_accuracy"] < 0.7 < min(r["ds_accuracy"] for r in reliable)
    assert metrics["aggregation"]["disagreement_share"] < 0.2


def test_small_samples_are_not_flagged_on_their_own_evidence() -> None:
    # One annotator answered one gold item wrong and chose left twice: too little to flag anything.
    rows = table(
        comparison=[1, 2, 3],
        annotator=[1, 1, 1],
        chosen=["a", "a", "b"],
        shown_left=["a", "a", "a"],
        gold_check=[False, False, True],
        gold_choice=["", "", "a"],
    )
    quality = annotator_quality(rows)[1]
    assert quality["gold_accuracy"] == 0.0 and quality["gold_n"] == 1
    assert quality["flags"] == [] and not quality["is_outlier"]
    assert quality["agreement"] is None  # nobody else rated these pairs


def test_empty_and_single_rating_tables_give_reasons_not_errors() -> None:
    empty = measure_agreement(table(comparison=[], annotator=[], chosen=[]))
    assert empty["summary"]["ratings"] == 0 and empty["choice"] == {} and empty["aggregation"] == {}
    single = measure_agreement(table(comparison=[1], annotator=[1], chosen=["a"]))
    assert "two or more ratings" in single["scale"]["gwet_ac2"]["error"]
    rows = metric_rows(single)
    assert rows[0]["error"] and rows[0]["coefficient"] is None


def test_metric_and_strength_rows() -> None:
    rows, _ = crowd_table(with_checks=False)
    metrics = measure_agreement(rows)
    ac2 = next(r for r in metric_rows(metrics) if r["measure"] == "scale" and r["statistic"] == "gwet_ac2")
    figure = metrics["scale"]["gwet_ac2"]
    assert ac2["ci_low"] == pytest.approx(figure["coefficient"] - 1.96 * figure["standard_error"])
    strengths = strength_rows(metrics)
    assert [r["value"] for r in strengths] == [4, 3, 2, 1, -1, -2, -3, -4]
    assert strengths[0]["label"] == "A significantly better" and strengths[-1]["label"] == "B significantly better"
    assert sum(r["count"] for r in strengths) == 1200 and sum(r["share"] for r in strengths) == pytest.approx(1)


def test_safety_agreement_is_about_which_response_is_safe() -> None:
    # Two raters chose different responses and both said "the chosen one is safe, the other is not":
    # they disagree about which response is unsafe, which the by-response encoding shows.
    rows = table(
        comparison=[1, 1, 2, 2],
        annotator=[1, 2, 1, 2],
        chosen=["a", "b", "a", "a"],
        safety_label=["chosen_safe_other_unsafe"] * 2 + ["both_safe"] * 2,
    )
    metrics = measure_agreement(rows)
    assert metrics["safety"]["gwet_ac1"]["observed"] == 0.5
    assert metrics["safety_bins"] == {"0": 0, "1": 1, "2": 1, "3": 2}


GOOD = [Annotator("good", accuracy) for accuracy in np.linspace(0.8, 0.95, 10)]
PLANTED = {10: "spammer", 11: "spammer", 12: "contrarian", 13: "left"}
BAD = [Annotator("spammer"), Annotator("spammer"), Annotator("contrarian", 0.8), Annotator("left")]


@pytest.mark.parametrize("gold", [0, 30])
def test_flags_catch_spammers_a_contrarian_and_a_side_picker_with_or_without_gold(gold: int) -> None:
    """Ten good annotators and four bad ones (two coin-flippers, one who picks the worse response 80%
    of the time, one who always picks the left side), 1,500 pairs rated three times, 20 crowds.
    Without gold the spammers are neither far from their peers (several are bad) nor caught by gold:
    the floors on Dawid-Skene's accuracy and on agreement with the majority catch them."""
    good_flagged = 0
    for seed in range(20):
        rows, _ = simulate([*GOOD, *BAD], comparisons=1500, gold=gold, seed=seed)
        quality = annotator_quality(rows)
        for annotator, kind in PLANTED.items():
            assert quality[annotator]["flags"], (seed, kind, quality[annotator])
        assert quality[13]["position_significant"] and "position_bias" in quality[13]["flags"]
        for annotator in (10, 11, 12):
            assert {"accuracy_near_chance", "agreement_near_chance"} & set(quality[annotator]["flags"])
        flagged = [a for a in range(10) if quality[a]["flags"]]
        assert len(flagged) <= 1, (seed, {a: quality[a]["flags"] for a in flagged})
        good_flagged += len(flagged)
    assert good_flagged <= 20 * 10 // 10


def test_position_bias_is_corrected_for_the_number_of_annotators() -> None:
    """40 fair annotators, 60 ratings each, in 25 crowds: the uncorrected interval would flag about
    one in twenty annotators by chance; Holm's correction leaves at most one crowd with any flag."""
    crowds_with_a_flag = 0
    for seed in range(25):
        rows, _ = simulate([Annotator("good", 0.9)] * 40, comparisons=800, seed=seed)
        quality = annotator_quality(rows)
        crowds_with_a_flag += any("position_bias" in row["flags"] for row in quality.values())
    assert crowds_with_a_flag <= 2


def test_comparison_labels_give_majority_and_dawid_skene_with_posteriors() -> None:
    rows, truth = simulate([*GOOD, *BAD], comparisons=600, seed=3)
    labels = comparison_labels(rows)
    assert labels.fit.converged and labels.fit.final_change < DAWID_SKENE_TOLERANCE
    table_rows = labels.rows()
    assert [r["comparison"] for r in table_rows] == list(range(600))
    first = table_rows[0]
    assert first["votes_a"] + first["votes_b"] == 3
    assert first["majority"] == ("a" if first["votes_a"] > first["votes_b"] else "b")
    for row in table_rows:
        assert 0.5 <= row["ds_posterior"] <= 1
        expected = row["ds_posterior_a"] if row["ds_label"] == "a" else 1 - row["ds_posterior_a"]
        assert row["ds_posterior"] == pytest.approx(expected)
    ds_right = np.mean((labels.ds_label == 0) == truth[labels.unit])
    majority_right = np.mean((labels.majority == 0) == truth[labels.unit])
    assert ds_right > majority_right  # the contrarian and the side-picker count for less
    metrics = measure_agreement(rows)
    aggregation = metrics["aggregation"]
    assert aggregation["dawid_skene_converged"] and aggregation["dawid_skene_iterations"] == labels.fit.n_iter
    assert aggregation["dawid_skene_final_change"] < aggregation["dawid_skene_tolerance"] == DAWID_SKENE_TOLERANCE
