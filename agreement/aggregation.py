"""Turning several annotators' labels into one label per item (pure NumPy, no Django).

Llama 2 decides each comparison's label by majority vote over its 3 raters (see
annotation/voting.py for the per-comparison rule with strengths and safety bins). This module
works on whole batches at once: an items x annotators integer array of class labels ``0..K-1``,
with ``-1`` or ``NaN`` where an annotator did not label an item. It offers the plain majority vote
and Dawid & Skene's (1979) model, which weighs each annotator by an estimated confusion matrix, so
that a careless or adversarial annotator counts for less than a reliable one.
"""

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

__all__ = [
    "DEFAULT_MAX_ITER",
    "DawidSkeneResult",
    "dawid_skene",
    "dawid_skene_long",
    "disagreement_share",
    "majority_vote",
]

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.intp]

# EM stops at the tolerance; this cap only guards against a fit that never settles. Slow cases are
# real: a 600-pair batch with a few near-chance annotators needed 195 iterations to reach 1e-4, and
# stopping it at 100 left two labels on the wrong side. An iteration costs a few bincounts over the
# labels, so even 300,000 labels x 10,000 iterations stays within minutes, and is reported.
DEFAULT_MAX_ITER = 10_000


@dataclass(frozen=True, slots=True)
class DawidSkeneResult:
    """Fitted Dawid-Skene model.

    ``posteriors[i, k]`` is P(true class of item i = k | all labels); ``labels`` its argmax, -1 for
    items nobody labelled (their posterior is the prior). ``confusion[j, k, l]`` is the estimated
    probability that annotator j gives label l to an item whose true class is k (rows sum to 1);
    ``priors[k]`` the estimated share of class k. ``log_likelihood`` is the marginal log-likelihood
    of the observed labels under the final parameters.

    Convergence: ``n_iter`` EM iterations ran; ``final_change`` is the largest amount any posterior
    moved in the last one, and ``converged`` says whether that fell below ``tolerance`` before
    ``max_iter`` ran out. An unconverged fit is still a valid estimate, but its labels may change
    if it were run longer: callers report it rather than hide it.
    """

    posteriors: FloatArray
    labels: IntArray
    confusion: FloatArray
    priors: FloatArray
    n_iter: int
    converged: bool
    log_likelihood: float
    final_change: float
    tolerance: float
    max_iter: int

    def convergence(self) -> dict[str, float | int | bool]:
        """The convergence report as JSON-ready data."""
        return {
            "iterations": self.n_iter,
            "max_iterations": self.max_iter,
            "final_change": self.final_change,
            "tolerance": self.tolerance,
            "converged": self.converged,
        }

    def label_posteriors(self) -> FloatArray:
        """Each item's posterior probability of its own label (``nan`` for unlabelled items)."""
        chosen = self.posteriors[np.arange(self.labels.size), np.maximum(self.labels, 0)]
        return np.where(self.labels >= 0, chosen, np.nan)


def majority_vote(labels: ArrayLike) -> IntArray:
    """The most frequent label per item; -1 for a tie between the top labels or an unlabelled item."""
    obs = _Observations.from_labels(labels, None)
    votes = obs.vote_counts()
    top = votes.max(axis=1)
    winners = (votes == top[:, None]).sum(axis=1)
    result = votes.argmax(axis=1)
    result[(winners > 1) | (top == 0)] = -1
    return result


def dawid_skene(
    labels: ArrayLike,
    n_classes: int | None = None,
    max_iter: int = DEFAULT_MAX_ITER,
    tol: float = 1e-6,
    smoothing: float = 0.01,
) -> DawidSkeneResult:
    """Dawid & Skene (1979, J. R. Stat. Soc. C 28:20-28) EM estimate of true classes and annotator
    confusion matrices.

    Model: item i has a true class k with probability ``priors[k]``; annotator j, independently of
    the others given k, labels it l with probability ``confusion[j, k, l]``. EM starts, as in the
    paper, from the soft majority vote (each item's posterior = its share of votes per class), then
    alternates the M-step (priors and confusion rows from the posterior-weighted label counts) and
    the E-step (``log posterior = log prior + sum over the item's labels of log confusion``) until
    no posterior moves by more than ``tol`` or ``max_iter`` iterations have run.

    ``smoothing`` (> 0) is a pseudo-count added to every prior and confusion cell, i.e. a MAP
    estimate under a Dirichlet(1 + smoothing) prior. The paper's maximum likelihood (0) would give
    probability 0 to any label an annotator never used for some true class, after which no item
    could move to that class. ``n_classes`` defaults to the largest label + 1.
    """
    return _fit(_Observations.from_labels(labels, n_classes), max_iter, tol, smoothing)


def dawid_skene_long(
    items: ArrayLike,
    annotators: ArrayLike,
    labels: ArrayLike,
    n_classes: int | None = None,
    max_iter: int = DEFAULT_MAX_ITER,
    tol: float = 1e-6,
    smoothing: float = 0.01,
) -> DawidSkeneResult:
    """:func:`dawid_skene` on labels in long form: one entry per label given.

    ``items`` and ``annotators`` are 0-based indices (``np.unique(ids, return_inverse=True)[1]``),
    ``labels`` class indices ``0..K-1``; each (item, annotator) pair occurs at most once. Results
    are indexed like the items x annotators array ``dawid_skene`` would take, with
    ``max(items) + 1`` items and ``max(annotators) + 1`` annotators, but that array is never built:
    100,000 comparisons rated by 500 people would make it 400 MB for 300,000 labels.
    """
    return _fit(_Observations.from_long(items, annotators, labels, n_classes), max_iter, tol, smoothing)


def _fit(obs: "_Observations", max_iter: int, tol: float, smoothing: float) -> DawidSkeneResult:
    if max_iter < 1:
        raise ValueError("max_iter must be at least 1.")
    if smoothing <= 0:
        raise ValueError("smoothing must be positive.")
    k_classes, n_annotators = obs.n_classes, obs.n_annotators
    votes = obs.vote_counts()
    labelled = votes.sum(axis=1) > 0
    # The EM runs over labelled items only. Labels come sorted by item (row-major), so each item's
    # labels form one run starting at `starts`; `item_of_label` is the item's index among them.
    starts = np.flatnonzero(np.diff(obs.items, prepend=-1))
    item_of_label = np.cumsum(np.diff(obs.items, prepend=obs.items[0]) > 0)
    # One key per (annotator, given label): the row of the confusion counts a label adds to.
    keys = obs.annotators * k_classes + obs.classes
    posteriors = votes[labelled] / votes[labelled].sum(axis=1, keepdims=True)
    n_iter, converged, change = 0, False, float("inf")
    while not converged and n_iter < max_iter:
        n_iter += 1
        # M-step: counts[(j, l), k] = sum of P(class k) over the items annotator j labelled l.
        priors = posteriors.sum(axis=0) + smoothing
        priors /= priors.sum()
        per_label = posteriors[item_of_label]
        counts = np.stack(
            [np.bincount(keys, weights=per_label[:, k], minlength=n_annotators * k_classes) for k in range(k_classes)],
            axis=1,
        )
        confusion = counts.reshape(n_annotators, k_classes, k_classes).transpose(0, 2, 1) + smoothing
        confusion /= confusion.sum(axis=2, keepdims=True)
        # E-step: log P(class k, labels of i) = log prior_k + sum over i's labels of log confusion[j, k, l].
        log_by_key = np.log(confusion).transpose(0, 2, 1).reshape(n_annotators * k_classes, k_classes)
        log_joint = np.log(priors) + np.add.reduceat(log_by_key[keys], starts, axis=0)
        log_evidence = _logsumexp_rows(log_joint)
        updated = np.exp(log_joint - log_evidence[:, None])
        change = float(np.abs(updated - posteriors).max())
        converged = change < tol
        posteriors = updated
    all_posteriors = np.tile(priors, (obs.n_items, 1))
    all_posteriors[labelled] = posteriors
    result_labels = np.full(obs.n_items, -1, dtype=np.intp)
    result_labels[labelled] = posteriors.argmax(axis=1)
    return DawidSkeneResult(
        posteriors=all_posteriors,
        labels=result_labels,
        confusion=confusion,
        priors=priors,
        n_iter=n_iter,
        converged=converged,
        log_likelihood=float(log_evidence.sum()),
        final_change=change,
        tolerance=tol,
        max_iter=max_iter,
    )


def disagreement_share(a: ArrayLike, b: ArrayLike) -> float:
    """Share of items on which two label vectors differ, over the items labelled in both.

    Typical use: how often Dawid-Skene overturns the majority vote,
    ``disagreement_share(majority_vote(L), dawid_skene(L).labels)``. ``-1`` and ``NaN`` (a tie or
    no label) leave an item out.
    """
    x, y = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if x.ndim != 1 or x.shape != y.shape:
        raise ValueError("a and b must be 1-D arrays of the same length.")
    both = ~np.isnan(x) & ~np.isnan(y) & (x != -1) & (y != -1)
    if not both.any():
        raise ValueError("No item is labelled in both a and b.")
    return float(np.mean(x[both] != y[both]))


@dataclass(frozen=True, slots=True)
class _Observations:
    """The labels in long form: one entry per (item, annotator) label given."""

    items: IntArray
    annotators: IntArray
    classes: IntArray
    n_items: int
    n_annotators: int
    n_classes: int

    @classmethod
    def from_labels(cls, labels: ArrayLike, n_classes: int | None) -> "_Observations":
        data = np.asarray(labels, dtype=float)
        if data.ndim != 2 or data.size == 0:
            raise ValueError("Labels must be a non-empty 2-D items x annotators array.")
        given = ~np.isnan(data) & (data != -1)
        values = data[given]
        if values.size == 0:
            raise ValueError("Labels hold no label: every cell is missing.")
        if (values < 0).any() or (values != np.round(values)).any() or not np.isfinite(values).all():
            raise ValueError("Labels must be class indices 0..K-1, with -1 or NaN for missing.")
        classes = values.astype(np.intp)
        k = int(classes.max()) + 1 if n_classes is None else n_classes
        if classes.max() >= k:
            raise ValueError(f"A label is {classes.max()}, but n_classes is {k}.")
        items, annotators = np.nonzero(given)
        return cls(items, annotators, classes, data.shape[0], data.shape[1], k)

    @classmethod
    def from_long(cls, items: ArrayLike, annotators: ArrayLike, labels: ArrayLike, n_classes: int | None):
        item, annotator, label = (np.asarray(a).ravel() for a in (items, annotators, labels))
        if not item.size == annotator.size == label.size:
            raise ValueError("items, annotators and labels must have the same length.")
        if item.size == 0:
            raise ValueError("Labels hold no label.")
        for name, values in (("items", item), ("annotators", annotator), ("labels", label)):
            if not np.issubdtype(values.dtype, np.integer) or values.min() < 0:
                raise ValueError(f"{name} must be non-negative integer indices.")
        k = int(label.max()) + 1 if n_classes is None else n_classes
        if label.max() >= k:
            raise ValueError(f"A label is {label.max()}, but n_classes is {k}.")
        # The EM expects the labels sorted by item (the row-major order of the dense array).
        order = np.lexsort((annotator, item))
        item, annotator, label = item[order], annotator[order], label[order]
        if np.any((np.diff(item) == 0) & (np.diff(annotator) == 0)):
            raise ValueError("An annotator labelled the same item twice.")
        return cls(
            item.astype(np.intp),
            annotator.astype(np.intp),
            label.astype(np.intp),
            int(item.max()) + 1,
            int(annotator.max()) + 1,
            k,
        )

    def vote_counts(self) -> FloatArray:
        """Items x classes number of labels."""
        flat = np.bincount(self.items * self.n_classes + self.classes, minlength=self.n_items * self.n_classes)
        return flat.reshape(self.n_items, self.n_classes).astype(np.float64)


def _logsumexp_rows(values: FloatArray) -> FloatArray:
    top = values.max(axis=1)
    return top + np.log(np.exp(values - top[:, None]).sum(axis=1))
