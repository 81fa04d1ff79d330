"""Ranking items (model variants at a temperature) from pairwise votes: the Bradley–Terry model with
Davidson's tie parameter, bootstrap confidence intervals, the empirical win-rate matrix and the
connected components of the comparison graph. No Django imports.

The model (Davidson, 1970, "On extending the Bradley–Terry model to accommodate ties"). Item ``i``
has a strength ``pi_i = exp(theta_i)``; a comparison of ``i`` and ``j`` ends

    i wins  with probability  pi_i / D
    j wins  with probability  pi_j / D
    a tie   with probability  nu * sqrt(pi_i * pi_j) / D,   D = pi_i + pi_j + nu * sqrt(pi_i * pi_j)

One parameter ``nu >= 0`` describes how often evenly matched items tie; with ``nu = 0`` this is the
plain Bradley–Terry model, which is what is fitted when the data hold no tie. Davidson rather than
Rao–Kupper because a tie then counts as exactly half a win for each side in the score equations
(the fitted strengths give each item its observed wins plus half its ties), which is how a
"negligibly better / unsure" majority label reads, and the two-item case has a closed form that the
tests check by hand: ``theta_i - theta_j = log(w_ij / w_ji)`` and ``nu = t / sqrt(w_ij * w_ji)``.

The fit maximises the log-likelihood minus ``prior / 2 * sum(theta ** 2)`` (a Gaussian prior; ``choix``'s
``alpha`` is ``prior / 2``), which keeps strengths finite when an item won or lost every
comparison and ties each disconnected part of the graph to the same mean; ``prior=0`` gives the
maximum-likelihood fit. Strengths are reported centred on their mean.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

# Result codes of one comparison between items (i, j): i won, j won, or a tie.
WIN, LOSS, TIE = 1.0, 0.0, 0.5
DEFAULT_PRIOR = 0.01
# Elo-like display scale, as Chatbot Arena prints Bradley–Terry strengths: 400 points per factor of
# ten in the odds, 1000 for the average item.
ELO_SCALE = 400 / math.log(10)
ELO_BASE = 1000.0


@dataclass(frozen=True)
class Counts:
    """Aggregated outcomes per unordered pair ``(i, j)`` with ``i < j``."""

    n_items: int
    first: np.ndarray  # int, index i of each pair
    second: np.ndarray  # int, index j
    wins: np.ndarray  # float, times i beat j
    losses: np.ndarray  # float, times j beat i
    ties: np.ndarray  # float

    @property
    def total(self) -> np.ndarray:
        return self.wins + self.losses + self.ties


@dataclass(frozen=True)
class Fit:
    strengths: np.ndarray  # theta, centred on 0
    tie_parameter: float  # nu; 0 when the data hold no tie
    log_likelihood: float
    converged: bool

    def ratings(self) -> np.ndarray:
        """Strengths on the Elo-like scale (1000 = the average item)."""
        return ELO_BASE + ELO_SCALE * self.strengths


@dataclass(frozen=True)
class Interval:
    low: np.ndarray
    high: np.ndarray
    samples: int


def count_outcomes(n_items: int, outcomes: Sequence[tuple[int, int, float]]) -> Counts:
    """Aggregate ``(i, j, result)`` triples (result WIN, LOSS or TIE, from i's side) by pair."""
    table: dict[tuple[int, int], list[float]] = {}
    for i, j, result in outcomes:
        if i == j:
            raise ValueError(f"item {i} cannot be compared with itself")
        if not (0 <= i < n_items and 0 <= j < n_items):
            raise ValueError(f"item index out of range: {(i, j)}")
        if result not in (WIN, LOSS, TIE):
            raise ValueError(f"result must be 1, 0 or 0.5, not {result!r}")
        if i > j:
            i, j, result = j, i, 1.0 - result
        cell = table.setdefault((i, j), [0.0, 0.0, 0.0])
        cell[0 if result == WIN else 1 if result == LOSS else 2] += 1
    keys = sorted(table)
    values = np.array([table[k] for k in keys], dtype=float).reshape(-1, 3)
    return Counts(
        n_items=n_items,
        first=np.array([k[0] for k in keys], dtype=int),
        second=np.array([k[1] for k in keys], dtype=int),
        wins=values[:, 0],
        losses=values[:, 1],
        ties=values[:, 2],
    )


def _negative_objective(params: np.ndarray, counts: Counts, with_ties: bool, prior: float):
    """Minus the penalised log-likelihood and its gradient."""
    n = counts.n_items
    theta = params[:n]
    eta = params[n] if with_ties else -np.inf  # log nu
    ti, tj = theta[counts.first], theta[counts.second]
    tie_term = eta + (ti + tj) / 2
    log_d = np.logaddexp(np.logaddexp(ti, tj), tie_term)
    total = counts.total
    log_likelihood = np.sum(counts.wins * (ti - log_d) + counts.losses * (tj - log_d))
    if with_ties:
        log_likelihood += np.sum(counts.ties * (tie_term - log_d))
    penalty = prior / 2 * np.sum(theta**2)

    p_i, p_j = np.exp(ti - log_d), np.exp(tj - log_d)
    p_t = np.exp(tie_term - log_d) if with_ties else np.zeros_like(p_i)
    grad_i = counts.wins + counts.ties / 2 - total * (p_i + p_t / 2)
    grad_j = counts.losses + counts.ties / 2 - total * (p_j + p_t / 2)
    grad = np.zeros_like(params)
    np.add.at(grad, counts.first, grad_i)
    np.add.at(grad, counts.second, grad_j)
    grad[:n] -= prior * theta
    if with_ties:
        grad[n] = np.sum(counts.ties - total * p_t)
    return -(log_likelihood - penalty), -grad


def _hessian(params: np.ndarray, counts: Counts, with_ties: bool, prior: float) -> np.ndarray:
    """The Hessian of `_negative_objective`: per pair, n times the covariance of the outcome
    (i wins, j wins, tie) under the model, mapped onto (theta_i, theta_j, log nu)."""
    n = counts.n_items
    theta = params[:n]
    i, j = counts.first, counts.second
    ti, tj = theta[i], theta[j]
    tie_term = (params[n] if with_ties else -np.inf) + (ti + tj) / 2
    log_d = np.logaddexp(np.logaddexp(ti, tj), tie_term)
    pa, pb, pc = np.exp(ti - log_d), np.exp(tj - log_d), np.exp(tie_term - log_d)
    total = counts.total
    caa, cbb, ccc = pa - pa**2, pb - pb**2, pc - pc**2
    cab, cac, cbc = -pa * pb, -pa * pc, -pb * pc
    size = len(params)
    hessian = np.zeros((size, size))
    np.add.at(hessian, (i, i), total * (caa + cac + ccc / 4))
    np.add.at(hessian, (j, j), total * (cbb + cbc + ccc / 4))
    cross = total * (cab + cac / 2 + cbc / 2 + ccc / 4)
    np.add.at(hessian, (i, j), cross)
    np.add.at(hessian, (j, i), cross)
    if with_ties:
        np.add.at(hessian, (i, n), total * (cac + ccc / 2))
        np.add.at(hessian, (n, i), total * (cac + ccc / 2))
        np.add.at(hessian, (j, n), total * (cbc + ccc / 2))
        np.add.at(hessian, (n, j), total * (cbc + ccc / 2))
        hessian[n, n] = np.sum(total * ccc)
    hessian[np.arange(n), np.arange(n)] += prior
    return hessian


def fit(counts: Counts, *, prior: float = DEFAULT_PRIOR, start: Fit | None = None, max_iterations: int = 100) -> Fit:
    """The (penalised) maximum-likelihood strengths and tie parameter for these counts, by Newton's
    method with a backtracking line search (the objective is convex in theta and log nu)."""
    n = counts.n_items
    if n == 0:
        return Fit(np.zeros(0), 0.0, 0.0, True)
    with_ties = bool(np.sum(counts.ties) > 0)
    params = np.zeros(n + (1 if with_ties else 0))
    if start is not None:
        params[:n] = start.strengths
        if with_ties:
            params[n] = math.log(start.tie_parameter) if start.tie_parameter > 0 else 0.0
    value, grad = _negative_objective(params, counts, with_ties, prior)
    converged = False
    for _ in range(max_iterations):
        if np.max(np.abs(grad)) < 1e-9:
            converged = True
            break
        # Least squares: with prior=0 the Hessian is singular along a common shift of theta.
        step = np.linalg.lstsq(_hessian(params, counts, with_ties, prior), -grad, rcond=None)[0]
        if -float(grad @ step) < 1e-14:  # the Newton decrement: nothing left to gain
            converged = True
            break
        size = 1.0
        while True:
            candidate = params + size * step
            new_value, new_grad = _negative_objective(candidate, counts, with_ties, prior)
            if new_value <= value + 1e-4 * size * float(grad @ step) or size < 1e-10:
                break
            size /= 2
        if size < 1e-10:
            break
        params, value, grad = candidate, new_value, new_grad
    theta = params[:n] - np.mean(params[:n])
    nu = float(math.exp(params[n])) if with_ties else 0.0
    return Fit(strengths=theta, tie_parameter=nu, log_likelihood=float(-value), converged=converged)


def bootstrap(
    n_items: int,
    outcomes: Sequence[tuple[int, int, float]],
    *,
    samples: int = 200,
    level: float = 0.95,
    seed: int = 0,
    prior: float = DEFAULT_PRIOR,
    start: Fit | None = None,
) -> Interval:
    """Percentile intervals of the centred strengths over ``samples`` refits on comparisons drawn
    with replacement (the unit resampled is one comparison, as Chatbot Arena does). Drawing N
    comparisons with replacement is drawing the counts of each (pair, result) cell from a
    multinomial with the observed shares, which is how it is done here."""
    if not outcomes or samples <= 0:
        nan = np.full(n_items, np.nan)
        return Interval(nan, nan.copy(), 0)
    observed = count_outcomes(n_items, outcomes)
    cells = np.concatenate([observed.wins, observed.losses, observed.ties])
    total = int(cells.sum())
    pairs = len(observed.first)
    rng = np.random.default_rng(seed)
    draws = np.empty((samples, n_items))
    for s in range(samples):
        drawn = rng.multinomial(total, cells / total).astype(float)
        resampled = Counts(
            n_items=n_items,
            first=observed.first,
            second=observed.second,
            wins=drawn[:pairs],
            losses=drawn[pairs : 2 * pairs],
            ties=drawn[2 * pairs :],
        )
        draws[s] = fit(resampled, prior=prior, start=start).strengths
    tail = (1 - level) / 2 * 100
    return Interval(np.percentile(draws, tail, axis=0), np.percentile(draws, 100 - tail, axis=0), samples)


def win_rates(counts: Counts) -> tuple[np.ndarray, np.ndarray]:
    """The empirical matrix: ``rate[i, j]`` = (wins of i over j + half the ties) / comparisons
    (NaN where the two never met), and ``n[i, j]`` the number of comparisons."""
    n = counts.n_items
    rate = np.full((n, n), np.nan)
    met = np.zeros((n, n), dtype=int)
    for i, j, w, lo, t in zip(counts.first, counts.second, counts.wins, counts.losses, counts.ties, strict=True):
        total = w + lo + t
        met[i, j] = met[j, i] = int(total)
        rate[i, j] = (w + t / 2) / total
        rate[j, i] = (lo + t / 2) / total
    return rate, met


def components(counts: Counts) -> list[list[int]]:
    """Connected parts of the comparison graph, largest first (items in index order inside each).
    Strengths in different parts are not comparable: no vote links them."""
    parent = list(range(counts.n_items))

    def root(x: int) -> int:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for i, j in zip(counts.first, counts.second, strict=True):
        parent[root(int(i))] = root(int(j))
    groups: dict[int, list[int]] = {}
    for item in range(counts.n_items):
        groups.setdefault(root(item), []).append(item)
    return sorted(groups.values(), key=lambda g: (-len(g), g[0]))


def win_probability(fitted: Fit, i: int, j: int) -> tuple[float, float, float]:
    """The model's (i wins, j wins, tie) probabilities."""
    ti, tj = fitted.strengths[i], fitted.strengths[j]
    terms = np.array([ti, tj, math.log(fitted.tie_parameter) + (ti + tj) / 2 if fitted.tie_parameter > 0 else -np.inf])
    probabilities = np.exp(terms - np.logaddexp.reduce(terms))
    return float(probabilities[0]), float(probabilities[1]), float(probabilities[2])
