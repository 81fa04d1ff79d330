"""Accuracy tables and reward distributions on a tiny hand-written set, plus batched scoring.

Expected values below were worked out by hand from the eight pairs; ties count as wrong.
"""

import json
import os

import numpy as np
import pytest
import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from benchmarks.reward_training import minilm_dir
from rewardmodel.evaluation import (
    accuracy,
    accuracy_by_batch,
    accuracy_by_safety,
    accuracy_by_strength,
    evaluate_pairs,
    evaluation_report,
    pair_correct,
    reward_distribution,
    score_pairs,
)
from rewardmodel.scoring import score
from rewardmodel.training import PreferencePair

os.environ.setdefault("HF_HUB_OFFLINE", "1")

SIG, BETTER, SLIGHT, NEGL = "significantly_better", "better", "slightly_better", "negligibly_better"
R_CHOSEN = [2.0, 1.0, 0.5, 0.3, 0.0, -1.0, 1.5, 0.2]
R_REJECTED = [1.0, 1.0, 0.7, 0.1, -0.5, -2.0, 2.5, 0.2]
# right:     yes  tie  no   yes  yes   yes  no   tie
STRENGTH = [SIG, SIG, BETTER, BETTER, SLIGHT, NEGL, NEGL, NEGL]
SAFE_VS_UNSAFE = "chosen_safe_other_unsafe"
SAFETY = [SAFE_VS_UNSAFE, SAFE_VS_UNSAFE, "both_safe", "both_unsafe", None, "both_safe", "both_unsafe", ""]
BATCH = ["w1", "w1", "w1", "w2", "w2", "w2", "w3", None]


def test_ties_count_as_wrong():
    assert pair_correct(R_CHOSEN, R_REJECTED).tolist() == [True, False, False, True, True, True, False, False]
    assert accuracy(R_CHOSEN, R_REJECTED) == 0.5
    assert accuracy([], []) is None


def test_accuracy_by_strength_follows_table_8():
    table = accuracy_by_strength(R_CHOSEN, R_REJECTED, STRENGTH)
    assert list(table) == [SIG, BETTER, SLIGHT, NEGL, "avg"]
    assert {k: (v["correct"], v["n"]) for k, v in table.items()} == {
        SIG: (1, 2),
        BETTER: (1, 2),
        SLIGHT: (1, 1),
        NEGL: (1, 3),
        "avg": (4, 8),
    }
    # "avg" is over all pairs (as in Llama 2), not the mean of the four columns (0.583).
    assert table["avg"]["accuracy"] == 0.5
    assert table[NEGL]["label"] == "Negligibly Better / Unsure"


def test_accuracy_by_safety_follows_table_29():
    table = accuracy_by_safety(R_CHOSEN, R_REJECTED, SAFETY, STRENGTH)
    assert list(table) == ["chosen_safe_other_unsafe", "both_safe", "both_unsafe", "all"]
    assert {k: (v["correct"], v["n"]) for k, v in table.items()} == {
        "chosen_safe_other_unsafe": (1, 2),
        "both_safe": (1, 2),
        "both_unsafe": (1, 2),
        "all": (3, 6),
    }
    both_safe = table["both_safe"]["by_strength"]
    assert (both_safe[BETTER]["correct"], both_safe[BETTER]["n"]) == (0, 1)
    assert (both_safe[NEGL]["correct"], both_safe[NEGL]["n"]) == (1, 1)
    assert both_safe[SIG] == {"n": 0, "correct": 0, "accuracy": None, "label": "Significantly Better"}


def test_pairs_without_a_strength_get_their_own_column():
    strengths = [SIG, SIG, BETTER, BETTER, SLIGHT, NEGL, "", None]  # imported data may have none
    table = accuracy_by_strength(R_CHOSEN, R_REJECTED, strengths)
    assert list(table) == [SIG, BETTER, SLIGHT, NEGL, "unknown", "avg"]
    assert (table["unknown"]["correct"], table["unknown"]["n"]) == (0, 2)
    assert (table["avg"]["correct"], table["avg"]["n"]) == (4, 8)
    assert "unknown" not in accuracy_by_strength(R_CHOSEN, R_REJECTED, STRENGTH)


def test_accuracy_by_batch_skips_pairs_without_one():
    table = accuracy_by_batch(R_CHOSEN, R_REJECTED, BATCH)
    assert {k: (v["correct"], v["n"]) for k, v in table.items()} == {"w1": (1, 3), "w2": (3, 3), "w3": (0, 1)}


def test_reward_distribution():
    dist = reward_distribution(R_CHOSEN, R_REJECTED, bins=9)
    assert dist["edges"][0] == -2.0 and dist["edges"][-1] == 2.5 and len(dist["edges"]) == 10
    assert sum(dist["chosen"]["counts"]) == 8 and sum(dist["rejected"]["counts"]) == 8
    assert dist["chosen"]["mean"] == pytest.approx(4.5 / 8)
    assert dist["rejected"]["mean"] == pytest.approx(3.0 / 8)
    assert dist["chosen"]["quantiles"]["0.5"] == pytest.approx(0.4)  # between 0.3 and 0.5
    assert dist["chosen"]["min"] == -1.0 and dist["rejected"]["max"] == 2.5
    assert dist["difference"]["mean"] == pytest.approx(1.5 / 8)
    # Bin width 0.5 from -2: 2.0 falls in [2.0, 2.5], the last bin, which numpy closes on the right.
    assert dist["chosen"]["counts"][-1] == 1


def test_report_is_strict_json():
    report = evaluation_report(R_CHOSEN, R_REJECTED, STRENGTH, SAFETY, BATCH)
    json.dumps(report, allow_nan=False)
    assert report["n"] == 8 and report["accuracy"] == 0.5
    assert set(report) == {"n", "accuracy", "by_strength", "by_safety", "by_batch", "distribution"}
    # Helpfulness-only data has no safety or batch table.
    assert set(evaluation_report(R_CHOSEN, R_REJECTED, STRENGTH)) == {"n", "accuracy", "by_strength", "distribution"}


def test_rejects_unknown_codes_and_mismatched_lengths():
    with pytest.raises(ValueError, match="unknown strength"):
        accuracy_by_strength([1.0], [0.0], ["much_better"])
    with pytest.raises(ValueError, match="unknown safety label"):
        accuracy_by_safety([1.0], [0.0], ["chosen_unsafe"], [SIG])
    with pytest.raises(ValueError):
        accuracy([1.0, 2.0], [0.0])
    with pytest.raises(ValueError, match="one strength per pair"):
        accuracy_by_strength([1.0, 2.0], [0.0, 0.0], [SIG])


@pytest.fixture(scope="module")
def minilm():
    threads = torch.get_num_threads()
    torch.set_num_threads(min(2, os.cpu_count() or 1))
    torch.manual_seed(0)
    model = AutoModelForSequenceClassification.from_pretrained(minilm_dir(), num_labels=1).eval()
    yield model, AutoTokenizer.from_pretrained(minilm_dir())
    torch.set_num_threads(threads)


def test_score_pairs_matches_one_at_a_time_scoring(minilm):
    model, tokenizer = minilm
    pairs = [
        PreferencePair(
            [{"role": "user", "content": "Hi"}], "Hello! How can I help?", "What.", SIG, safety_label="both_safe"
        ),
        PreferencePair(
            [
                {"role": "user", "content": "Name a colour."},
                {"role": "assistant", "content": "Blue."},
                {"role": "user", "content": "Another?"},
            ],
            "Green, for example.",
            "No.",
            NEGL,
            batch_id="w1",
        ),
        PreferencePair(
            [{"role": "user", "content": "2+2?"}], "4", "It is 5, obviously, and you should know that.", BETTER
        ),
    ]
    r_chosen, r_rejected = score_pairs(model, tokenizer, pairs, max_length=32, batch_size=2)
    expected_chosen = [score(model, tokenizer, p.context, p.chosen, max_length=32) for p in pairs]
    expected_rejected = [score(model, tokenizer, p.context, p.rejected, max_length=32) for p in pairs]
    # Padding in a batch must not change a reward.
    np.testing.assert_allclose(r_chosen, expected_chosen, atol=1e-5)
    np.testing.assert_allclose(r_rejected, expected_rejected, atol=1e-5)

    report = evaluate_pairs(model, tokenizer, pairs, max_length=32)
    assert report["n"] == 3
    assert report["accuracy"] == accuracy(r_chosen, r_rejected)
    assert report["by_safety"]["both_safe"]["n"] == 1 and list(report["by_batch"]) == ["w1"]
