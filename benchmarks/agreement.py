"""Time agreement.coefficients and agreement.aggregation on a Llama-2-sized batch and compare them
with the reference packages.

    .venv/bin/python benchmarks/agreement.py                      # 1,000,000 ratings
    .venv/bin/python benchmarks/agreement.py --ratings 100000 --irrcac-units 20000

Data: ``--ratings`` rating cells as comparisons x 3 raters on the 8-level signed scale (-4..-1 =
left response better, 1..4 = right better; |value| = significantly / better / slightly /
negligibly), from a latent preference per comparison plus rater noise, ``--missing`` of the cells
blanked.

References: the ``krippendorff`` package and sklearn in this environment, and irrCAC 0.4.4 (which
cannot be installed here, see scripts/make_agreement_fixtures.py) run through ``--irrcac-python``
as a subprocess on the same ratings, or on the first ``--irrcac-units`` comparisons, in which case
the speed ratio is per comparison. Every timing is the best of ``--repeat`` runs.
"""

import argparse
import json
import math
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import krippendorff
import numpy as np
from sklearn.metrics import cohen_kappa_score

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run as a script from anywhere

from agreement.aggregation import dawid_skene, majority_vote
from agreement.coefficients import AgreementResult, cohen_kappa, fleiss_kappa, gwet_ac, krippendorff_alpha

T = TypeVar("T")
SIGNED_SCALE = [-4, -3, -2, -1, 1, 2, 3, 4]
DEFAULT_IRRCAC_PYTHON = "/tmp/irrcac-venv/bin/python"

# Runs inside the irrCAC environment. argv: ratings .npy, categories JSON, repeat.
IRRCAC_SCRIPT = """
import json, sys, time, warnings
import numpy as np, pandas as pd
from irrCAC.raw import CAC
warnings.filterwarnings("ignore")
ratings = pd.DataFrame(np.load(sys.argv[1]))
categories, repeat = json.loads(sys.argv[2]), int(sys.argv[3])
out = {}
for weights in ("identity", "quadratic"):
    for method in ("gwet", "fleiss", "krippendorff"):
        best = float("inf")
        for _ in range(repeat):
            start = time.perf_counter()
            est = getattr(CAC(ratings, weights=weights, categories=categories, digits=15), method)()["est"]
            best = min(best, time.perf_counter() - start)
        out[method + "/" + weights] = {"seconds": best, "coefficient": est["coefficient_value"], "se": est["se"]}
print(json.dumps(out))
"""

# Preflab's statistic for each irrCAC method/weights pair.
AGREEMENT: dict[str, tuple[str, Callable[[np.ndarray], AgreementResult]]] = {
    "gwet/identity": ("Gwet AC1", lambda r: gwet_ac(r, SIGNED_SCALE)),
    "gwet/quadratic": ("Gwet AC2 (quadratic)", lambda r: gwet_ac(r, SIGNED_SCALE, "quadratic")),
    "fleiss/identity": ("Fleiss kappa", lambda r: fleiss_kappa(r, SIGNED_SCALE)),
    "fleiss/quadratic": ("Fleiss kappa (quadratic)", lambda r: fleiss_kappa(r, SIGNED_SCALE, "quadratic")),
    "krippendorff/identity": ("Krippendorff alpha nominal", lambda r: krippendorff_alpha(r, "nominal")),
    "krippendorff/quadratic": ("Krippendorff alpha interval", lambda r: krippendorff_alpha(r, "interval")),
    "krippendorff/ordinal": ("Krippendorff alpha ordinal", lambda r: krippendorff_alpha(r, "ordinal")),
    "cohen": ("Cohen kappa, raters 1-2 (quadratic)", lambda r: cohen_kappa(r[:, 0], r[:, 1], "quadratic")),
}


@dataclass(frozen=True)
class Reference:
    name: str
    seconds: float
    units: int  # comparisons the reference was given
    difference: float  # largest |reference - Preflab| over the coefficient and, where given, the SE


@dataclass
class Row:
    name: str
    seconds: float
    result: AgreementResult | None = None
    references: list[Reference] = field(default_factory=list)


def simulated_batch(n_ratings: int, n_raters: int, missing: float, seed: int) -> np.ndarray:
    """Comparisons x raters on the signed scale: latent preference N(0, 1.5^2) plus rater noise
    N(0, 1); the sign gives the side, |x| cut at 0.5, 1.25 and 2 the strength."""
    rng = np.random.default_rng(seed)
    n_units = math.ceil(n_ratings / n_raters)
    latent = rng.normal(0, 1.5, size=(n_units, 1)) + rng.normal(0, 1, size=(n_units, n_raters))
    strength = np.digitize(np.abs(latent), [0.5, 1.25, 2.0]) + 1
    ratings = np.where(latent < 0, -strength, strength).astype(float)
    ratings[rng.random(ratings.shape) < missing] = np.nan
    return ratings


def best_time(function: Callable[[], T], repeat: int) -> tuple[float, T]:
    """Best wall-clock time of ``repeat`` (at least 1) calls, and the last call's value."""
    start = time.perf_counter()
    value = function()
    best = time.perf_counter() - start
    for _ in range(repeat - 1):
        start = time.perf_counter()
        value = function()
        best = min(best, time.perf_counter() - start)
    return best, value


def run_irrcac(python: str, ratings: np.ndarray, repeat: int) -> dict[str, dict[str, float]]:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "ratings.npy"
        np.save(path, ratings)
        completed = subprocess.run(
            [python, "-c", IRRCAC_SCRIPT, str(path), json.dumps(SIGNED_SCALE), str(repeat)],
            capture_output=True,
            text=True,
            check=True,
        )
    return json.loads(completed.stdout)


def add_irrcac(rows: dict[str, Row], ratings: np.ndarray, python: str, units: int | None, repeat: int) -> None:
    sample = ratings if units is None else ratings[:units]
    print(f"irrCAC ({python}) on {sample.shape[0]:,} of {ratings.shape[0]:,} comparisons ...", flush=True)
    for key, measured in run_irrcac(python, sample, repeat).items():
        ours = rows[key].result if sample is ratings else AGREEMENT[key][1](sample)
        assert ours is not None and ours.standard_error is not None
        difference = max(abs(measured["coefficient"] - ours.coefficient), abs(measured["se"] - ours.standard_error))
        name = f"irrCAC {key.split('/')[0]}()"
        rows[key].references.append(Reference(name, measured["seconds"], sample.shape[0], difference))


def add_krippendorff_package(rows: dict[str, Row], ratings: np.ndarray, repeat: int) -> None:
    for key, level in (
        ("krippendorff/identity", "nominal"),
        ("krippendorff/quadratic", "interval"),
        ("krippendorff/ordinal", "ordinal"),
    ):
        seconds, value = best_time(
            lambda level=level: krippendorff.alpha(reliability_data=ratings.T, level_of_measurement=level), repeat
        )
        ours = rows[key].result
        assert ours is not None
        rows[key].references.append(
            Reference("krippendorff.alpha", seconds, ratings.shape[0], abs(float(value) - ours.coefficient))
        )


def add_sklearn(rows: dict[str, Row], ratings: np.ndarray, repeat: int) -> None:
    both = ~np.isnan(ratings[:, :2]).any(axis=1)
    a, b = ratings[both, 0].astype(int), ratings[both, 1].astype(int)
    seconds, value = best_time(lambda: cohen_kappa_score(a, b, weights="quadratic"), repeat)
    ours = rows["cohen"].result
    assert ours is not None
    rows["cohen"].references.append(
        Reference("sklearn cohen_kappa_score", seconds, ratings.shape[0], abs(float(value) - ours.coefficient))
    )


def print_table(rows: list[Row], n_units: int) -> None:
    header = (
        f"{'statistic':<38} {'value':>8} {'SE':>8} {'Preflab s':>9}   "
        f"{'reference':<26} {'ref s':>7} {'ref/Preflab':>11} {'|diff|':>8}"
    )
    print(f"\n{header}\n{'-' * len(header)}")
    for row in rows:
        value = f"{row.result.coefficient:8.5f}" if row.result else " " * 8
        se = f"{row.result.standard_error:8.5f}" if row.result and row.result.standard_error is not None else " " * 8
        left = f"{row.name:<38} {value} {se} {row.seconds:9.3f}"
        if not row.references:
            print(left)
        for i, ref in enumerate(row.references):
            ratio = (ref.seconds / ref.units) / (row.seconds / n_units)
            note = " (per comparison)" if ref.units != n_units else ""
            prefix = left if i == 0 else " " * len(left)
            print(f"{prefix}   {ref.name:<26} {ref.seconds:7.3f} {ratio:10.1f}x {ref.difference:8.1e}{note}")
    print(
        "\nref/Preflab: reference time / Preflab time (> 1: Preflab is faster). |diff|: largest difference "
        "in coefficient and SE (irrCAC) or in coefficient (krippendorff, sklearn)."
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ratings", type=int, default=1_000_000, help="rating cells (default 1,000,000)")
    parser.add_argument("--raters", type=int, default=3, help="raters per comparison (Llama 2: 3)")
    parser.add_argument("--missing", type=float, default=0.05, help="share of missing ratings (default 0.05)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeat", type=int, default=3, help="timings are the best of this many runs")
    parser.add_argument(
        "--irrcac-python",
        default=DEFAULT_IRRCAC_PYTHON if os.path.exists(DEFAULT_IRRCAC_PYTHON) else None,
        help=f"python of an environment with irrCAC 0.4.4 (default: {DEFAULT_IRRCAC_PYTHON} if it exists)",
    )
    parser.add_argument("--irrcac-units", type=int, help="give irrCAC only the first N comparisons (default: all)")
    args = parser.parse_args()

    ratings = simulated_batch(args.ratings, args.raters, args.missing, args.seed)
    n_units = ratings.shape[0]
    print(
        f"{ratings.size:,} rating cells = {n_units:,} comparisons x {args.raters} raters, {args.missing:.0%} "
        f"missing ({int((~np.isnan(ratings)).sum()):,} ratings), 8-level signed scale, seed {args.seed}\n"
        f"Python {platform.python_version()}, NumPy {np.__version__}, {os.cpu_count()} CPUs, "
        f"best of {args.repeat} runs",
        flush=True,
    )
    rows: dict[str, Row] = {}
    for key, (name, compute) in AGREEMENT.items():
        seconds, result = best_time(lambda compute=compute: compute(ratings), args.repeat)
        rows[key] = Row(name, seconds, result)
    sides = np.where(np.isnan(ratings), -1, ratings > 0).astype(int)  # 0 = left, 1 = right
    seconds, _ = best_time(lambda: majority_vote(sides), args.repeat)
    rows["majority"] = Row("majority vote (side)", seconds)
    seconds, fitted = best_time(lambda: dawid_skene(sides), args.repeat)
    rows["dawid_skene"] = Row(f"Dawid-Skene (side, {fitted.n_iter} EM iterations)", seconds)

    add_krippendorff_package(rows, ratings, args.repeat)
    add_sklearn(rows, ratings, args.repeat)
    if args.irrcac_python:
        add_irrcac(rows, ratings, args.irrcac_python, args.irrcac_units, args.repeat)
    else:
        print("irrCAC: not timed (pass --irrcac-python PATH, the python of an environment with irrCAC 0.4.4)")
    print_table(list(rows.values()), n_units)


if __name__ == "__main__":
    main()
