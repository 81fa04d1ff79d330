"""The dataset rules, alone: margins, exclusions, splits, mixes and row formats (no database)."""

import json
import math
import statistics

import pytest

from preference_data import rules
from preference_data.external import hh_turns
from preference_data.rules import Exclusion, LabelRules, RatingVote, decide

# --- margins (Llama 2, Table 27) ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("table", "expected"),
    [
        ("none", [0, 0, 0, 0]),
        ("small", [1, 2 / 3, 1 / 3, 0]),
        ("large", [3, 2, 1, 0]),
    ],
)
def test_margin_per_level_and_table(table, expected):
    levels = ["significantly_better", "better", "slightly_better", "negligibly_better"]
    assert [rules.margin_for(level, table) for level in levels] == pytest.approx(expected, abs=1e-12)


def test_margins_fall_with_strength_and_unknown_strength_has_none():
    for table in ("small", "large"):
        margins = [rules.margin_for(level, table) for level in rules.STRENGTHS]
        assert margins == sorted(margins, reverse=True) and margins[-1] == 0
        assert rules.margin_for("", table) == 0.0
    with pytest.raises(ValueError, match="margin table"):
        rules.margin_for("better", "huge")
    with pytest.raises(ValueError, match="strength"):
        rules.margin_for("much_better", "small")


# --- which comparisons become pairs -----------------------------------------------------------


def votes(*specs, vendor=1):
    """("a", "better", "both_safe") triples -> votes by annotators 1, 2, 3, ..."""
    return [RatingVote(i + 1, c, s, safety, vendor) for i, (c, s, safety) in enumerate(specs)]


ALL = LabelRules()


def test_majority_label_with_strength_and_agreement():
    decision = decide(votes(("a", "better", ""), ("a", "slightly_better", ""), ("b", "better", "")), ALL, complete=True)
    label = decision.label
    assert (label.choice, label.strength, label.n_ratings) == ("a", "slightly_better", 3)
    assert label.agreement == pytest.approx(2 / 3)
    assert decision.exclusion is None


def test_repeat_and_incomplete_are_excluded_before_anything_else():
    unanimous = votes(("a", "better", ""), ("a", "better", ""), ("a", "better", ""))
    assert decide(unanimous, ALL, complete=True, is_repeat=True).exclusion is Exclusion.REPEAT
    assert decide(unanimous[:2], ALL, complete=False).exclusion is Exclusion.INCOMPLETE


def test_tied_votes_are_excluded():
    tied = votes(("a", "better", ""), ("b", "better", ""))
    assert decide(tied, ALL, complete=True).exclusion is Exclusion.TIED


def test_minimum_agreement_uses_the_share_agreeing_with_the_majority():
    two_of_three = votes(("a", "better", ""), ("a", "better", ""), ("b", "better", ""))
    assert decide(two_of_three, LabelRules(min_agreement=0.66), complete=True).label is not None
    assert decide(two_of_three, LabelRules(min_agreement=0.667), complete=True).label is not None  # "2/3" typed
    assert (
        decide(two_of_three, LabelRules(min_agreement=0.75), complete=True).exclusion is Exclusion.BELOW_MIN_AGREEMENT
    )
    assert decide(two_of_three, LabelRules(unanimous_only=True), complete=True).exclusion is Exclusion.NOT_UNANIMOUS
    three_of_three = votes(("b", "better", ""), ("b", "slightly_better", ""), ("b", "better", ""))
    assert decide(three_of_three, LabelRules(unanimous_only=True, min_agreement=1.0), complete=True).label.choice == "b"


def test_flagged_annotators_and_vendors_are_left_out_of_the_vote():
    ratings = [
        RatingVote(1, "a", "significantly_better", "", vendor_id=10),
        RatingVote(2, "b", "better", "", vendor_id=20),
        RatingVote(3, "b", "slightly_better", "", vendor_id=20),
    ]
    assert decide(ratings, ALL, complete=True).label.choice == "b"
    # Without the two flagged raters, the one left decides alone, unanimously.
    flagged = decide(ratings, LabelRules(exclude_annotators=frozenset({2, 3})), complete=True)
    assert (flagged.label.choice, flagged.label.agreement, flagged.dropped_ratings) == ("a", 1.0, 2)
    # Two raters left who disagree: tied.
    assert decide(ratings, LabelRules(exclude_annotators=frozenset({3})), complete=True).exclusion is Exclusion.TIED
    by_vendor = decide(ratings, LabelRules(vendors=frozenset({20})), complete=True)
    assert (by_vendor.label.choice, by_vendor.label.strength) == ("b", "slightly_better")
    nobody = decide(ratings, LabelRules(vendors=frozenset({30})), complete=True)
    assert (nobody.exclusion, nobody.dropped_ratings) == (Exclusion.NO_ELIGIBLE_RATINGS, 3)


def test_chosen_unsafe_other_safe_is_excluded():
    forbidden = votes(
        ("a", "better", "chosen_unsafe_other_safe"),
        ("a", "better", "chosen_unsafe_other_safe"),
        ("a", "better", "both_unsafe"),
    )
    assert decide(forbidden, ALL, complete=True).exclusion is Exclusion.CHOSEN_UNSAFE_OTHER_SAFE
    # A tie between the forbidden label and another bin is decided against the pair.
    tie = votes(("a", "better", "chosen_unsafe_other_safe"), ("a", "better", "both_safe"))
    assert decide(tie, ALL, complete=True).exclusion is Exclusion.CHOSEN_UNSAFE_OTHER_SAFE
    # The minority's labels do not count: the label is the majority's.
    safe = votes(
        ("a", "better", "both_safe"), ("a", "better", "both_safe"), ("b", "better", "chosen_unsafe_other_safe")
    )
    assert decide(safe, ALL, complete=True).label.safety_label == "both_safe"


def test_majority_safety_matches_annotation_voting_on_the_three_bins():
    assert rules.majority_safety(["both_safe", "both_unsafe"]) == "both_unsafe"
    assert rules.majority_safety(["both_safe", "chosen_safe_other_unsafe"]) == "chosen_safe_other_unsafe"
    assert rules.majority_safety(["both_safe", "both_safe", "both_unsafe"]) == "both_safe"
    assert rules.majority_safety(["", ""]) == ""


# --- held-out test sets -----------------------------------------------------------------------


def test_unit_hash_is_fixed_by_seed_and_key_and_uniform():
    assert rules.unit_hash(1, "dialogue:5") == rules.unit_hash(1, "dialogue:5")
    assert rules.unit_hash(1, "dialogue:5") != rules.unit_hash(2, "dialogue:5")
    values = [rules.unit_hash(7, f"dialogue:{i}") for i in range(20_000)]
    assert all(0 <= v < 1 for v in values)
    assert statistics.fmean(values) == pytest.approx(0.5, abs=0.01)
    assert sum(v < 0.1 for v in values) / len(values) == pytest.approx(0.1, abs=0.01)


def test_fraction_split_keeps_every_dialogue_on_its_side_as_the_batch_grows():
    seed = 3
    first = {d: rules.split_for(rules.unit_hash(seed, rules.split_key(d)), 0.1) for d in range(1, 1_001)}
    grown = {d: rules.split_for(rules.unit_hash(seed, rules.split_key(d)), 0.1) for d in range(1, 5_001)}
    assert all(grown[d] == side for d, side in first.items())
    assert sum(side == "test" for side in grown.values()) == pytest.approx(500, abs=60)


def test_count_threshold_takes_the_count_smallest_and_respects_the_cap():
    hashes = [rules.unit_hash(0, f"dialogue:{i}") for i in range(10_000)]
    threshold = rules.count_threshold(hashes, 1_000, max_fraction=0.5)
    assert sum(h < threshold for h in hashes) == 1_000
    assert rules.count_threshold(hashes, 1_000, max_fraction=0.05) == 0.05
    # Fewer comparisons than the count: the cap keeps a small batch from being all test.
    assert rules.count_threshold(hashes[:50], 1_000, max_fraction=0.1) == 0.1
    # A frozen threshold applied to the grown batch: the first 10,000 keep their sides.
    grown = hashes + [rules.unit_hash(0, f"dialogue:{i}") for i in range(10_000, 30_000)]
    assert [h < threshold for h in grown[:10_000]] == [h < threshold for h in hashes]


# --- mixes ------------------------------------------------------------------------------------


def test_helpfulness_mix_adds_an_equal_amount_of_other_data():
    plan = rules.mix_plan(
        "helpfulness", {"helpfulness": 900, "safety": 500, "external_helpfulness": 300, "external_safety": 400}
    )
    assert plan.keep == ("helpfulness",)
    assert set(plan.sample_from) == {"safety", "external_helpfulness", "external_safety"}
    assert (plan.target, plan.available, plan.sample_size, plan.shortfall) == (900, 1_200, 900, 0)
    short = rules.mix_plan("helpfulness", {"helpfulness": 900, "safety": 100})
    assert (short.sample_size, short.shortfall) == (100, 800)
    half = rules.mix_plan("helpfulness", {"helpfulness": 900, "safety": 5_000}, rules.MixRatios(0.5, 0.9))
    assert half.target == 450


def test_safety_mix_is_ninety_ten():
    plan = rules.mix_plan(
        "safety", {"safety": 700, "external_safety": 200, "helpfulness": 5_000, "external_helpfulness": 50}
    )
    assert set(plan.keep) == {"safety", "external_safety"}
    assert set(plan.sample_from) == {"helpfulness", "external_helpfulness"}
    assert plan.target == 100
    assert 900 / (900 + plan.sample_size) == pytest.approx(0.9)
    assert rules.mix_plan("safety", {"safety": 700}, rules.MixRatios(1.0, 0.8)).target == 175
    assert rules.mix_plan("none", {"safety": 700}).sample_from == ()
    with pytest.raises(ValueError, match="unknown mix"):
        rules.mix_plan("both", {})


def test_uniform_sample_is_deterministic_and_unbiased():
    keys = [f"comparison:{i}" for i in range(3_000)]
    sample = rules.uniform_sample(keys, 1_000, seed=11)
    assert sample == rules.uniform_sample(list(reversed(keys)), 1_000, seed=11)  # order does not matter
    assert len(set(sample)) == 1_000 and set(sample) <= set(keys)
    assert sample != rules.uniform_sample(keys, 1_000, seed=12)
    # Drawn uniformly: each third of the keys gets about a third of the sample.
    thirds = [sum(int(k.split(":")[1]) // 1_000 == t for k in sample) for t in range(3)]
    assert all(abs(n - 333) < 60 for n in thirds)


# --- rows -------------------------------------------------------------------------------------

ROW = rules.ExportRow(
    id="comparison:7",
    split="train",
    context=[
        {"role": "user", "content": 'Say "hi"\nplease'},
        {"role": "assistant", "content": "Hi!"},
        {"role": "user", "content": "Again, in French — with ünïcode."},
    ],
    chosen="Salut !",
    rejected="Hello",
    margin=2 / 3,
    strength="better",
    safety_label="both_safe",
    focus="safety",
    batch="Week 1",
    comparison_id=7,
    chosen_response_id=13,
    rejected_response_id=14,
)


def test_trl_row_is_conversational_with_an_explicit_prompt():
    row = rules.trl_row(ROW)
    assert list(row) == list(rules.TRL_COLUMNS)
    assert row["prompt"][-1] == {"role": "user", "content": "Again, in French — with ünïcode."}
    assert row["chosen"] == [{"role": "assistant", "content": "Salut !"}]
    assert row["rejected"] == [{"role": "assistant", "content": "Hello"}]
    assert row["margin"] == 2 / 3


def test_fast_json_line_equals_json_dumps_of_the_row():
    line = rules.trl_json_line(ROW)
    assert line.endswith("\n") and "\n" not in line[:-1]
    assert json.loads(line) == rules.trl_row(ROW)
    assert list(json.loads(line)) == list(rules.TRL_COLUMNS)
    external = rules.ExportRow("external:3", "train", [{"role": "user", "content": "q"}], "y", "n", 0.0)
    assert json.loads(rules.trl_json_line(external)) == rules.trl_row(external)
    with pytest.raises(ValueError, match="finite"):
        rules.trl_json_line(rules.ExportRow("x", "train", [], "a", "b", math.nan))


def test_hh_transcripts_read_back_into_the_same_dialogue():
    row = rules.hh_row(ROW)
    assert row["chosen"] == (
        '\n\nHuman: Say "hi"\nplease\n\nAssistant: Hi!\n\nHuman: Again, in French — with ünïcode.\n\nAssistant: Salut !'
    )
    errors = []
    turns = hh_turns(row["rejected"], "line 1", "rejected", errors)
    assert not errors
    assert turns[:-1] == list(ROW.context) and turns[-1] == {"role": "assistant", "content": "Hello"}
    assert json.loads(rules.hh_json_line(ROW)) == row


def test_arrow_batches_have_the_declared_schemas():
    batch = rules.trl_arrow([ROW, ROW])
    assert batch.schema == rules.TRL_SCHEMA and batch.num_rows == 2
    assert batch.to_pylist()[0] == rules.trl_row(ROW)
    assert rules.hh_arrow([ROW]).to_pylist()[0] == rules.hh_row(ROW)


def test_summarize_counts_per_split_strength_safety_and_component():
    summary = rules.summarize_counts(
        [
            ("train", "safety", "better", "both_safe", 4),
            ("train", "external_safety", "", "", 2),
            ("test", "safety", "better", "both_unsafe", 1),
        ]
    )
    assert summary["total"] == 7 and summary["by_split"] == {"train": 6, "test": 1}
    assert summary["by_strength"]["train"] == {"better": 4, "unknown": 2}
    assert summary["by_safety"] == {"train": {"both_safe": 4}, "test": {"both_unsafe": 1}}
    assert summary["by_component"]["train"] == {"safety": 4, "external_safety": 2}


def test_gold_pairs_take_the_known_answer():
    ratings = votes(("a", "better", "both_safe"), ("b", "slightly_better", "both_safe"), ("b", "better", "both_safe"))
    gold = rules.decide_gold(ratings, LabelRules(min_agreement=1.0), choice="a", strength="")
    # The answer stands against the majority; agreement filters do not apply; strength from its supporters.
    assert (gold.label.choice, gold.label.strength, gold.label.safety_label) == ("a", "better", "both_safe")
    assert gold.label.agreement == pytest.approx(1 / 3)
    answered = rules.decide_gold([], ALL, choice="b", strength="significantly_better")
    assert (answered.label.choice, answered.label.strength, answered.label.n_ratings) == (
        "b",
        "significantly_better",
        0,
    )
    assert rules.decide_gold([], ALL, choice="b", strength="").label.strength == ""  # unknown: margin 0
    unsafe = votes(("a", "better", "chosen_unsafe_other_safe"))
    assert rules.decide_gold(unsafe, ALL, choice="a", strength="").exclusion is Exclusion.CHOSEN_UNSAFE_OTHER_SAFE


# --- Dawid-Skene labels -------------------------------------------------------------------------

DAWID_SKENE = LabelRules(label_source="dawid_skene")


def test_dawid_skene_label_replaces_the_majority_and_decides_ties():
    split = votes(("a", "better", ""), ("b", "slightly_better", ""), ("b", "significantly_better", ""))
    estimate = rules.EstimatedLabel("a", 0.93)
    label = decide(split, DAWID_SKENE, complete=True, estimated=estimate).label
    # The estimate overrules the 1-2 vote; strength and agreement come from the one rater who chose A.
    assert (label.choice, label.strength, label.posterior) == ("a", "better", 0.93)
    assert label.agreement == pytest.approx(1 / 3) and label.n_ratings == 3
    tied = votes(("a", "better", ""), ("b", "better", ""))
    assert decide(tied, ALL, complete=True).exclusion == Exclusion.TIED
    assert decide(tied, DAWID_SKENE, complete=True, estimated=rules.EstimatedLabel("b", 0.6)).label.choice == "b"
    # Majority labels carry no posterior.
    assert decide(split, ALL, complete=True).label.posterior is None


def test_dawid_skene_label_below_the_minimum_posterior_is_excluded():
    unanimous = votes(("a", "better", ""), ("a", "better", ""), ("a", "better", ""))
    strict = LabelRules(label_source="dawid_skene", min_posterior=0.9)
    low = decide(unanimous, strict, complete=True, estimated=rules.EstimatedLabel("a", 0.85))
    assert low.label is None and low.exclusion == Exclusion.BELOW_MIN_POSTERIOR
    assert decide(unanimous, strict, complete=True, estimated=rules.EstimatedLabel("a", 0.9)).label.choice == "a"
    # Nobody chose the estimated side: the strength is unknown (margin 0), the agreement zero.
    against = decide(unanimous, DAWID_SKENE, complete=True, estimated=rules.EstimatedLabel("b", 0.7)).label
    assert (against.choice, against.strength, against.agreement) == ("b", "", 0.0)
    assert rules.margin_for(against.strength, "large") == 0.0
    # Exclusions that come first still come first; a comparison left out of the fit has no label.
    assert decide(unanimous, strict, complete=False).exclusion == Exclusion.INCOMPLETE
    assert decide(unanimous, strict, complete=True).exclusion == Exclusion.NO_ELIGIBLE_RATINGS


def test_dawid_skene_labels_weigh_annotators_and_match_the_plain_fit():
    """Three raters per pair from six good annotators (90%) and two contrarians (15%)."""
    import numpy as np

    from agreement.aggregation import dawid_skene_long

    rng = np.random.default_rng(4)
    accuracy = [0.9] * 6 + [0.15] * 2
    truth_a = rng.random(400) < 0.5
    pairs = []
    for comparison in range(400):
        for annotator in rng.choice(8, 3, replace=False):
            right = rng.random() < accuracy[annotator]
            chose_a = bool(truth_a[comparison] == right)
            pairs.append((1000 + comparison, RatingVote(int(annotator), "a" if chose_a else "b", "better")))
    fitted = rules.dawid_skene_labels(pairs, ALL)
    assert fitted.convergence["converged"] and fitted.convergence["final_change"] < rules.DAWID_SKENE_TOLERANCE
    estimated = [fitted.get(1000 + c) for c in range(400)]
    ds_right = np.mean([(e.choice == "a") == t for e, t in zip(estimated, truth_a, strict=True)])
    majority = [decide([v for c, v in pairs if c == 1000 + i], ALL, complete=True).label for i in range(400)]
    majority_right = np.mean([(m.choice == "a") == t for m, t in zip(majority, truth_a, strict=True)])
    assert ds_right > majority_right + 0.05
    # The same posteriors as the plain fit on the same ratings.
    items = np.array([c - 1000 for c, _ in pairs])
    annotators = np.array([v.annotator_id for _, v in pairs])
    labels = np.array([0 if v.chosen == "a" else 1 for _, v in pairs])
    plain = dawid_skene_long(items, annotators, labels, n_classes=2, tol=rules.DAWID_SKENE_TOLERANCE)
    assert [e.posterior for e in estimated] == pytest.approx(plain.posteriors.max(axis=1).tolist())
    assert fitted.get(5) is None and fitted.get(2000) is None
    # Rater filters apply to the fit: without the contrarians, nothing of theirs is counted.
    filtered = rules.dawid_skene_labels(
        pairs, LabelRules(label_source="dawid_skene", exclude_annotators=frozenset({6, 7}))
    )
    rated_by_others = sorted({c for c, v in pairs if v.annotator_id not in {6, 7}})
    assert filtered.comparison_ids.tolist() == rated_by_others
    assert rules.dawid_skene_labels([], ALL) is None
