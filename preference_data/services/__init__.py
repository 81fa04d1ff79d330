"""Writes of the comparison-dataset app: builds, exports, and imports of open-source preference data."""

from .builds import dataset_build_create, dataset_build_run
from .exports import dataset_export_create, dataset_export_run
from .sources import external_source_import

__all__ = [
    "dataset_build_create",
    "dataset_build_run",
    "dataset_export_create",
    "dataset_export_run",
    "external_source_import",
]
