"""agreement.aggregation: majority vote and Dawid-Skene on seeded synthetic annotators."""

import numpy as np
import pytest

from agreement.aggregation import dawid_skene, dawid_skene_long, disagreement_share, majority_vote

N_CLASSES = 3
TRUE_PRIORS = np.array([0.5, 0.3, 0.2])
# Annotators 0-2 are reliable, 3 answers uniformly at random, 4 always gives the next class.
ACCURACIES = [0.9, 0.85, 0.8]


@pytest.fixture(scope="module")
def crowd() -> tuple[np.ndarray, np.ndarray]:
    """3,000 items x 5 annotators, 20% of the labels missing (-1)."""
    rng = np.random.default_rng(2023)
    n_items = 3000
    truth = rng.choice(N_CLASSES, size=n_items, p=TRUE_PRIORS)
    columns = [np.where(rng.random(n_items) < acc, truth, rng.integers(N_CLASSES, size=n_items)) for acc in ACCURACIES]
    columns.append(rng.integers(N_CLASSES, size=n_items))
    columns.append((truth + 1) % N_CLASSES)
    labels = np.stack(columns, axis=1)
    labels[rng.random(labels.shape) < 0.2] = -1
    return labels, truth


def test_dawid_skene_recovers_truth_better_than_majority_vote(crowd) -> None:
    labels, truth = crowd
    result = dawid_skene(labels)
    assert result.converged
    ds_accuracy = np.mean(result.labels == truth)
    mv_accuracy = np.mean(majority_vote(labels) == truth)
    assert ds_accuracy > 0.97
    assert ds_accuracy > mv_accuracy + 0.15  # the adversarial annotator drags the vote down


def test_dawid_skene_estimates_each_annotators_reliability(crowd) -> None:
    labels, _ = crowd
    result = dawid_skene(labels)
    assert result.confusion.shape == (5, N_CLASSES, N_CLASSES)
    np.testing.assert_allclose(result.confusion.sum(axis=2), 1.0)
    for annotator, accuracy in enumerate(ACCURACIES):
        # Correct with probability acc, else uniform: the diagonal is acc + (1 - acc) / K.
        expected_diagonal = accuracy + (1 - accuracy) / N_CLASSES
        np.testing.assert_allclose(np.diag(result.confusion[annotator]), expected_diagonal, atol=0.04)
    np.testing.assert_allclose(result.confusion[3], 1 / N_CLASSES, atol=0.05)
    shifted = result.confusion[4][np.arange(N_CLASSES), (np.arange(N_CLASSES) + 1) % N_CLASSES]
    assert (shifted > 0.95).all()
    np.testing.assert_allclose(result.priors, TRUE_PRIORS, atol=0.03)
    np.testing.assert_allclose(result.posteriors.sum(axis=1), 1.0)


def reference_em(labels: np.ndarray, n_classes: int, n_iter: int, smoothing: float) -> tuple[np.ndarray, np.ndarray]:
    """Dawid & Skene's EM written item by item, as in the paper, to check the vectorised one."""
    n_items, n_annotators = labels.shape
    posteriors = np.zeros((n_items, n_classes))
    for i in range(n_items):
        for j in range(n_annotators):
            if labels[i, j] >= 0:
                posteriors[i, labels[i, j]] += 1
        posteriors[i] /= posteriors[i].sum()
    for _ in range(n_iter):
        priors = (posteriors.sum(axis=0) + smoothing) / (n_items + n_classes * smoothing)
        confusion = np.full((n_annotators, n_classes, n_classes), smoothing)
        for i in range(n_items):
            for j in range(n_annotators):
                if labels[i, j] >= 0:
                    confusion[j, :, labels[i, j]] += posteriors[i]
        confusion /= confusion.sum(axis=2, keepdims=True)
        for i in range(n_items):
            joint = priors.copy()
            for j in range(n_annotators):
                if labels[i, j] >= 0:
                    joint *= confusion[j, :, labels[i, j]]
            posteriors[i] = joint / joint.sum()
    return posteriors, confusion


def test_dawid_skene_matches_a_loop_implementation_of_the_paper(crowd) -> None:
    labels = crowd[0][:60]
    for n_iter in (1, 4):
        expected_posteriors, expected_confusion = reference_em(labels, N_CLASSES, n_iter, smoothing=0.01)
        result = dawid_skene(labels, max_iter=n_iter, tol=0.0)
        assert result.n_iter == n_iter
        np.testing.assert_allclose(result.posteriors, expected_posteriors, atol=1e-12)
        np.testing.assert_allclose(result.confusion, expected_confusion, atol=1e-12)


def test_unanimous_reliable_annotators_keep_the_majority_label() -> None:
    labels = np.array([[0, 0, 0], [1, 1, 1], [1, 1, 0], [0, 0, 1], [2, 2, 2], [0, 0, 0]])
    result = dawid_skene(labels)
    np.testing.assert_array_equal(result.labels, [0, 1, 1, 0, 2, 0])
    np.testing.assert_array_equal(majority_vote(labels), [0, 1, 1, 0, 2, 0])


def test_an_unlabelled_item_gets_the_prior_and_no_label() -> None:
    labels = np.array([[0, 0], [1, 1], [-1, -1], [0, np.nan]])
    result = dawid_skene(labels)
    assert result.labels[2] == -1
    np.testing.assert_allclose(result.posteriors[2], result.priors)
    assert result.labels[3] == 0


def test_n_classes_can_exceed_the_labels_used() -> None:
    result = dawid_skene(np.array([[0, 1], [1, 1]]), n_classes=4)
    assert result.confusion.shape == (2, 4, 4)
    assert result.posteriors.shape == (2, 4)


def test_majority_vote_ties_and_missing_labels() -> None:
    labels = np.array([[0, 1, 1], [0, 1, -1], [2, np.nan, 2], [-1, -1, -1], [1, 0, 2]])
    np.testing.assert_array_equal(majority_vote(labels), [1, -1, 2, -1, -1])


@pytest.mark.parametrize(
    "labels",
    [np.array([[0, -2]]), np.array([[0.5, 1]]), np.full((2, 2), -1), np.empty((0, 3)), np.array([0, 1])],
    ids=["negative", "fractional", "all-missing", "empty", "1-D"],
)
def test_invalid_labels_raise_value_error(labels: np.ndarray) -> None:
    with pytest.raises(ValueError):
        dawid_skene(labels)
    with pytest.raises(ValueError):
        majority_vote(labels)


def test_dawid_skene_rejects_bad_settings() -> None:
    with pytest.raises(ValueError, match="n_classes"):
        dawid_skene(np.array([[0, 2]]), n_classes=2)
    with pytest.raises(ValueError, match="smoothing"):
        dawid_skene(np.array([[0, 1]]), smoothing=0)


def test_disagreement_share_counts_items_labelled_in_both() -> None:
    a = np.array([0, 1, 2, -1, 1, np.nan])
    b = np.array([0, 2, 2, 1, -1, 0])
    assert disagreement_share(a, b) == pytest.approx(1 / 3)
    with pytest.raises(ValueError):
        disagreement_share([-1, 0], [1, -1])


def test_dawid_skene_overturns_the_majority_where_the_adversary_decides(crowd) -> None:
    labels, truth = crowd
    vote, ds = majority_vote(labels), dawid_skene(labels).labels
    share = disagreement_share(vote, ds)
    decided = vote != -1
    assert share == pytest.approx(np.mean(vote[decided] != ds[decided]))
    assert 0.05 < share < 0.3
    assert np.mean(ds[decided & (vote != ds)] == truth[decided & (vote != ds)]) > 0.9


def test_dawid_skene_long_equals_the_dense_fit(crowd) -> None:
    labels, _ = crowd
    items, annotators = np.nonzero(labels != -1)
    shuffle = np.random.default_rng(3).permutation(items.size)  # any order of the labels
    long = dawid_skene_long(items[shuffle], annotators[shuffle], labels[items, annotators][shuffle])
    dense = dawid_skene(labels)
    np.testing.assert_allclose(long.posteriors, dense.posteriors)
    np.testing.assert_allclose(long.confusion, dense.confusion)
    assert long.n_iter == dense.n_iter and long.log_likelihood == pytest.approx(dense.log_likelihood)


def test_dawid_skene_long_refuses_a_double_label() -> None:
    with pytest.raises(ValueError, match="twice"):
        dawid_skene_long([0, 0, 1], [0, 0, 1], [1, 0, 1])
    with pytest.raises(ValueError, match="non-negative integer"):
        dawid_skene_long([0, 1], [0, 0.5], [1, 0])


def slow_crowd() -> dict[str, np.ndarray]:
    """600 binary items, 3 of 10 annotators each, four of them near chance: EM crawls here."""
    rng = np.random.default_rng(7)
    accuracy = np.array([0.9, 0.85, 0.8, 0.75, 0.7, 0.6, 0.55, 0.5, 0.5, 0.45])
    truth = rng.integers(2, size=600)
    items, annotators, labels = [], [], []
    for item in range(600):
        for annotator in rng.choice(10, 3, replace=False):
            items.append(item)
            annotators.append(annotator)
            labels.append(truth[item] if rng.random() < accuracy[annotator] else 1 - truth[item])
    return {"items": np.array(items), "annotators": np.array(annotators), "labels": np.array(labels)}


def test_dawid_skene_runs_to_its_tolerance_and_reports_convergence() -> None:
    crowd = slow_crowd()
    fit = dawid_skene_long(**crowd, n_classes=2, tol=1e-4)
    # The old cap of 100 iterations stopped this fit short; now it runs until the tolerance holds.
    assert fit.n_iter > 100 and fit.converged
    assert fit.final_change < 1e-4 == fit.tolerance
    assert fit.convergence() == {
        "iterations": fit.n_iter,
        "max_iterations": fit.max_iter,
        "final_change": fit.final_change,
        "tolerance": 1e-4,
        "converged": True,
    }
    # Against a fit run almost to the fixed point, the tolerance-1e-4 labels are all the same ...
    exact = dawid_skene_long(**crowd, n_classes=2, tol=1e-10)
    assert exact.converged and exact.n_iter > fit.n_iter
    assert np.array_equal(fit.labels, exact.labels)
    # ... while stopping at 100 iterations says so, and leaves labels on the wrong side.
    capped = dawid_skene_long(**crowd, n_classes=2, tol=1e-4, max_iter=100)
    assert capped.n_iter == 100 and not capped.converged and capped.final_change >= 1e-4
    assert np.sum(capped.labels != exact.labels) > 0


def test_label_posteriors_are_the_posterior_of_each_items_label() -> None:
    labels = np.array([[0, 0, 1], [1, 1, -1], [-1, -1, -1], [0, 1, 1]])
    fit = dawid_skene(labels, n_classes=2)
    own = fit.label_posteriors()
    for item in (0, 1, 3):
        assert own[item] == fit.posteriors[item, fit.labels[item]] >= 0.5
    assert fit.labels[2] == -1 and np.isnan(own[2])
