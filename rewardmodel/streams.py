"""Rows streamed as JSON lines or CSV: per-pair rewards of an evaluation and batch scores are
produced row by row, so a download of any size starts at once in constant memory."""

from __future__ import annotations

import io
import json
from collections.abc import Iterable, Iterator, Sequence

from django.http import StreamingHttpResponse

from core import csv_safe

from .selectors import PAIR_REWARD_COLUMNS


def json_lines(rows: Iterable[dict]) -> Iterator[bytes]:
    for row in rows:
        yield (json.dumps(row, ensure_ascii=False) + "\n").encode()


def csv_lines(rows: Iterable[dict], columns: Sequence[str]) -> Iterator[bytes]:
    buffer = io.StringIO()
    writer = csv_safe.writer(buffer, lineterminator="\n")
    writer.writerow(columns)
    for row in rows:
        writer.writerow([row.get(column) for column in columns])
        if buffer.tell() > 1 << 16:
            yield buffer.getvalue().encode()
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue().encode()


def pair_rewards_response(evaluation, rows, file_type: str) -> StreamingHttpResponse:
    """An evaluation's per-pair rewards as a streamed JSON-lines or CSV download."""
    name = f"preflab-rm-{evaluation.run_id}-evaluation-{evaluation.pk}-pairs.{file_type}"
    if file_type == "csv":
        body, content_type = csv_lines(rows, PAIR_REWARD_COLUMNS), "text/csv; charset=utf-8"
    else:
        body, content_type = json_lines(rows), "application/x-ndjson"
    response = StreamingHttpResponse(body, content_type=content_type)
    response["Content-Disposition"] = f'attachment; filename="{name}"'
    return response
