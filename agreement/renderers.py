"""CSV for the dashboards' tables: the same API views answer `?format=csv`."""

import io
from typing import Any

from rest_framework.renderers import BaseRenderer

from core import csv_safe


class CSVRenderer(BaseRenderer):
    """Renders a list of flat dicts (the keys of the first row are the header) as CSV.

    Lists and dicts inside a cell are joined with "; "; an error answer (a dict) becomes a
    two-column table; formula-like cells are neutralised (core/csv_safe.py). The view may name the
    download with a `csv_filename` attribute.
    """

    media_type = "text/csv"
    format = "csv"
    charset = "utf-8"

    def render(self, data: Any, accepted_media_type=None, renderer_context=None) -> bytes:
        context = renderer_context or {}
        response, view = context.get("response"), context.get("view")
        if isinstance(data, dict) and "results" in data:
            data = data["results"]
        if isinstance(data, dict):
            data = [{"field": key, "value": value} for key, value in data.items()]
        rows = list(data or [])
        buffer = io.StringIO()
        if rows:
            header = list(rows[0])
            writer = csv_safe.writer(buffer, lineterminator="\n")
            writer.writerow(header)
            for row in rows:
                writer.writerow([_cell(row.get(key)) for key in header])
        if response is not None and response.status_code < 400:
            filename = getattr(view, "csv_filename", None) or "preflab.csv"
            response["Content-Disposition"] = f'attachment; filename="{filename}"'
        # An empty table is one empty line, not an empty body: DRF drops the Content-Type of an
        # empty body, and a CSV download must still say it is CSV.
        return (buffer.getvalue() or "\n").encode(self.charset)


def _cell(value: Any) -> Any:
    if isinstance(value, list | tuple):
        return "; ".join(str(item) for item in value)
    if isinstance(value, dict):
        return "; ".join(f"{key}={item}" for key, item in value.items())
    if value is None:
        return ""
    return value
