"""Reads of datasets, exports and imported sources, shaped for the pages and the API."""

from pathlib import Path

from django.db.models import QuerySet

from accounts.models import User
from accounts.selectors import require_researcher
from annotation.models import SafetyLabel, Strength
from config.exceptions import Conflict, Gone, NotFound

from . import rules
from .models import Component, DatasetBuild, DatasetExport, ExternalSource, JobStatus
from .services.exports import MANIFEST_NAME


def _researcher(user: User) -> None:
    require_researcher(user, to="see and export datasets")


def builds_for(user: User) -> QuerySet[DatasetBuild]:
    _researcher(user)
    return DatasetBuild.objects.select_related("created_by")


def builds_with_exports(*, user: User) -> QuerySet[DatasetBuild]:
    """Every build, newest first, with its exports fetched (the dataset list counts them)."""
    return builds_for(user).prefetch_related("exports")


def exports_for(user: User) -> QuerySet[DatasetExport]:
    _researcher(user)
    return DatasetExport.objects.select_related("build", "created_by")


def external_sources_for(user: User) -> QuerySet[ExternalSource]:
    _researcher(user)
    return ExternalSource.objects.select_related("created_by")


def build_exports(*, user: User, build: DatasetBuild) -> QuerySet[DatasetExport]:
    """A build's exports, newest first."""
    return exports_for(user).filter(build=build).order_by("-created_at", "-id")


def _split_rows(labels, counts: dict) -> list[dict]:
    train, test = counts.get(rules.TRAIN, {}), counts.get(rules.TEST, {})
    total = sum(train.values()) + sum(test.values()) or 1
    rows = []
    for code, label in labels:
        n_train, n_test = train.get(code, 0), test.get(code, 0)
        if n_train or n_test or code in Strength.values:
            rows.append(
                {
                    "code": code,
                    "label": label,
                    "train": n_train,
                    "test": n_test,
                    "percent": round(100 * (n_train + n_test) / total),
                }
            )
    return rows


def build_tables(build: DatasetBuild) -> dict:
    """The build's counts as table rows: by strength, safety bin and component (train / test), and exclusions."""
    counts = build.counts or {}
    strengths = [*Strength.choices, ("unknown", "Unknown (imported, margin 0)")]
    exclusions = build.exclusions or {}
    explanations = exclusions.get("explanations", {})
    by_strength = _split_rows(strengths, counts.get("by_strength", {}))
    for row in by_strength:
        row["margin"] = rules.MARGIN_TABLES[build.margin_table].get(row["code"], 0.0)
    return {
        "by_strength": by_strength,
        "by_safety": _split_rows(SafetyLabel.choices, counts.get("by_safety", {})),
        "by_component": _split_rows(Component.choices, counts.get("by_component", {})),
        "exclusions": [
            {
                "reason": reason,
                "n": n,
                "preflab": exclusions.get("preflab", {}).get(reason, 0),
                "external": exclusions.get("external", {}).get(reason, 0),
                "explanation": explanations.get(reason, ""),
            }
            for reason, n in exclusions.get("by_reason", {}).items()
        ],
        "margins": [
            {"label": label, "margin": rules.MARGIN_TABLES[build.margin_table][code]}
            for code, label in Strength.choices
        ],
    }


def export_file_path(export: DatasetExport, name: str) -> Path:
    """A finished export's data file or manifest, by name (nothing else under MEDIA_ROOT is reachable)."""
    if export.status != JobStatus.DONE:
        raise Conflict("This export is not finished yet; download it when it is done.")
    allowed = {f["name"] for f in export.files} | {MANIFEST_NAME}
    if name not in allowed:
        raise NotFound(f"Export {export.pk} has no file named {name!r}.")
    path = export.directory / name
    if not path.is_file():
        raise Gone("This file is no longer in storage; export the dataset again.")
    return path
