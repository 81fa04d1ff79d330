"""Write the reference values that tests/agreement/test_coefficients.py checks agreement.coefficients against.

The values come from the reference packages themselves, never from Preflab's code:

* irrCAC 0.4.4 (Gwet's AC1/AC2, Fleiss' generalised kappa, Krippendorff's alpha with their
  standard errors for raw units x raters data, and Cohen's kappa from a contingency table);
* krippendorff 0.9.0 (Krippendorff's alpha for the nominal, ordinal, interval and ratio levels).

irrCAC pins scipy==1.12.0 and pandas<3, so it cannot live in the app's environment. Run this script
with a separate one::

    python3 -m venv /tmp/irrcac-venv
    /tmp/irrcac-venv/bin/pip install irrCAC==0.4.4 krippendorff==0.9.0
    /tmp/irrcac-venv/bin/python scripts/make_agreement_fixtures.py

The output, tests/agreement/fixtures/agreement_reference.json, holds the raw ratings, the values
and the provenance (package versions, date, seeds, command), so the tests need neither package.
"""

import argparse
import datetime
import json
import math
import platform
import shlex
import sys
import warnings
from importlib.metadata import version
from pathlib import Path

import krippendorff
import numpy as np
import pandas as pd
from irrCAC.datasets import raw_4raters
from irrCAC.raw import CAC as RawCAC
from irrCAC.table import CAC as TableCAC

# Private helpers of the krippendorff package: they give its own distance matrix for a level of
# measurement (the ordinal one depends on the data), which is turned into an irrCAC weight matrix
# so that irrCAC supplies the standard error of alpha at every level.
from krippendorff.krippendorff import (
    _coincidences,
    _distance_metric,
    _distances,
    _reliability_data_to_value_counts,
)

FIXTURE = Path(__file__).resolve().parent.parent / "tests/agreement/fixtures/agreement_reference.json"
DIGITS = 15  # irrCAC rounds its output to `digits`; keep (almost) all of them.
SIGNED_SCALE = [-4, -3, -2, -1, 1, 2, 3, 4]  # the 8-level preference scale: side x strength
LEVELS = ("nominal", "ordinal", "interval", "ratio")


def simulated_ratings(
    seed: int,
    n_units: int,
    n_raters: int,
    categories: list[int],
    accuracy: float,
    missing: float,
    single_units: int,
    empty_units: int,
    category_probs: list[float] | None = None,
) -> np.ndarray:
    """Units x raters ratings: each rater copies the unit's true category with probability
    `accuracy`, else picks one at random; `missing` of the cells are blanked, `single_units` units
    keep one rating only and `empty_units` none."""
    rng = np.random.default_rng(seed)
    cats = np.asarray(categories, dtype=float)
    truth = rng.choice(cats, size=n_units, p=category_probs)
    noise = rng.choice(cats, size=(n_units, n_raters), p=category_probs)
    ratings = np.where(rng.random((n_units, n_raters)) < accuracy, truth[:, None], noise)
    ratings[rng.random((n_units, n_raters)) < missing] = np.nan
    special = rng.choice(n_units, size=single_units + empty_units, replace=False)
    for unit in special[:single_units]:
        keep = rng.integers(n_raters)
        ratings[unit, np.arange(n_raters) != keep] = np.nan
        if np.isnan(ratings[unit, keep]):
            ratings[unit, keep] = truth[unit]
    ratings[special[single_units:]] = np.nan
    return ratings


def varying_raters(seed: int, n_units: int, n_raters: int, categories: list[int]) -> np.ndarray:
    """Each unit is rated by a random number (1..n_raters) of a random subset of raters."""
    rng = np.random.default_rng([seed, 1])
    ratings = simulated_ratings(seed, n_units, n_raters, categories, 0.6, 0.0, 0, 0)
    per_unit = rng.integers(1, n_raters + 1, size=n_units)
    order = rng.random((n_units, n_raters)).argsort(axis=1)
    ratings[order >= per_unit[:, None]] = np.nan
    return ratings


def json_float(value: float) -> float | None:
    """JSON has no NaN: a missing rating is written as null."""
    value = float(value)
    return None if math.isnan(value) else value


def irrcac_estimate(result: dict) -> dict:
    est = result["est"]
    return {
        "coefficient": json_float(est["coefficient_value"]),
        "standard_error": json_float(est["se"]),
        "observed": json_float(est["pa"]),
        "chance": json_float(est["pe"]),
    }


def irrcac_raw(frame: pd.DataFrame, weights: str | np.ndarray, categories: list | None) -> dict:
    cac = RawCAC(frame, weights=weights, categories=categories, digits=DIGITS)
    values = {name: irrcac_estimate(getattr(cac, name)()) for name in ("gwet", "fleiss", "krippendorff")}
    values["n_units"] = int(cac.n)
    values["weights"] = np.asarray(cac.weights_mat).tolist()
    return values


def krippendorff_levels(frame: pd.DataFrame) -> dict:
    """Alpha from the krippendorff package at each level, and irrCAC's alpha and standard error
    for the same distances (weights = 1 - distance / max distance)."""
    data = frame.to_numpy(dtype=float)
    domain = np.unique(data[~np.isnan(data)])
    counts = _reliability_data_to_value_counts(data.T, domain)
    pairable_values = _coincidences(counts).sum(axis=0)
    out = {}
    for level in LEVELS:
        distances = _distances(domain, _distance_metric(level), pairable_values)
        weights = 1 - distances / distances.max()
        irr = RawCAC(frame, weights=weights, categories=domain.tolist(), digits=DIGITS).krippendorff()
        out[level] = {
            "alpha": float(krippendorff.alpha(reliability_data=data.T, level_of_measurement=level)),
            "irrcac": irrcac_estimate(irr),
        }
    return out


def dataset_entry(
    description: str,
    ratings: np.ndarray,
    weight_schemes: tuple[str, ...],
    seed: int | None,
    categories: list | None = None,
) -> dict:
    frame = pd.DataFrame(ratings, columns=[f"rater{i + 1}" for i in range(ratings.shape[1])])
    cats = None if categories is None else [float(c) for c in categories]
    return {
        "description": description,
        "seed": seed,
        "categories": cats,
        "ratings": [[json_float(v) for v in row] for row in ratings],
        "irrcac": {scheme: irrcac_raw(frame, scheme, cats) for scheme in weight_schemes},
        "krippendorff": krippendorff_levels(frame),
    }


def cohen_entry(seed: int) -> dict:
    """Two raters on a 1-5 scale with some missing ratings; irrCAC's table.cohen() on the
    contingency table of the complete pairs (its weights are by category index, as sklearn's)."""
    ratings = simulated_ratings(seed, 120, 2, [1, 2, 3, 4, 5], 0.55, 0.05, 0, 0)
    complete = ratings[~np.isnan(ratings).any(axis=1)]
    cats = np.unique(complete)
    table = pd.crosstab(
        pd.Categorical(complete[:, 0], categories=cats), pd.Categorical(complete[:, 1], categories=cats)
    )
    table.index, table.columns = cats, cats
    return {
        "description": "two raters, categories 1-5, 5% missing (pairs with a missing rating are dropped)",
        "seed": seed,
        "a": [json_float(v) for v in ratings[:, 0]],
        "b": [json_float(v) for v in ratings[:, 1]],
        "irrcac_table": {
            scheme: irrcac_estimate(TableCAC(table, weights=scheme, digits=DIGITS).cohen())
            for scheme in ("identity", "linear", "quadratic")
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--output", type=Path, default=FIXTURE)
    args = parser.parse_args()
    # irrCAC 0.4.4 calls replace(inplace=True) on a slice of the caller's frame; harmless here.
    warnings.filterwarnings("ignore", category=pd.errors.SettingWithCopyWarning)

    all_schemes = ("identity", "linear", "quadratic", "ordinal", "radical", "ratio", "circular", "bipolar")
    signed_schemes = ("identity", "linear", "quadratic", "ordinal", "radical", "circular", "bipolar")
    datasets = {
        "raw4raters": dataset_entry(
            "irrCAC.datasets.raw_4raters(): Gwet (2014), 12 units x 4 raters, categories 1-5",
            raw_4raters().to_numpy(dtype=float),
            all_schemes,
            None,
        ),
        "nominal2": dataset_entry(
            "60 units x 4 raters, categories 0/1, 15% missing, 5 units with one rating, 2 with none",
            simulated_ratings(11, 60, 4, [0, 1], 0.7, 0.15, 5, 2),
            ("identity", "linear", "quadratic"),
            11,
        ),
        "nominal3": dataset_entry(
            "80 units x 5 raters, categories 1-3, each unit rated by 1-5 of the raters",
            varying_raters(12, 80, 5, [1, 2, 3]),
            ("identity", "linear", "quadratic", "ordinal"),
            12,
        ),
        "signed8": dataset_entry(
            "150 units x 3 raters on the signed 8-level scale (-4..-1, 1..4), 8% missing, "
            "6 units with one rating, 1 with none",
            simulated_ratings(13, 150, 3, SIGNED_SCALE, 0.5, 0.08, 6, 1),
            signed_schemes,
            13,
        ),
        "signed8_declared": dataset_entry(
            "40 units x 6 raters using few levels of the signed 8-level scale; all 8 levels passed "
            "as categories, so unused categories enter the chance agreement",
            simulated_ratings(14, 40, 6, SIGNED_SCALE, 0.6, 0.1, 2, 0, [0, 0, 0.1, 0.3, 0.4, 0.2, 0, 0]),
            signed_schemes,
            14,
            categories=SIGNED_SCALE,
        ),
    }
    fixture = {
        "provenance": {
            "generated_by": "scripts/make_agreement_fixtures.py",
            "command": " ".join(shlex.quote(a) for a in [sys.executable, *sys.argv]),
            "date_utc": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
            "python": platform.python_version(),
            "packages": {name: version(name) for name in ("irrCAC", "krippendorff", "numpy", "pandas", "scipy")},
            "irrcac_digits": DIGITS,
            "notes": (
                "irrcac: CAC(frame, weights=scheme, categories=categories, digits=15) with the default "
                "N=inf (no finite-population correction). krippendorff.<level>.alpha: "
                "krippendorff.alpha(ratings.T, level_of_measurement=level); .irrcac: irrCAC's "
                "krippendorff() with weights 1 - d / max(d), d the krippendorff package's distance "
                "matrix for that level over the observed values. cohen: irrCAC table.CAC(crosstab of "
                "the complete pairs).cohen()."
            ),
        },
        "datasets": datasets,
        "cohen": cohen_entry(15),
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(fixture, indent=1) + "\n")
    print(f"wrote {args.output} ({args.output.stat().st_size / 1024:.0f} KiB)")


if __name__ == "__main__":
    main()
