"""The one CSV writer for every download: cells that a spreadsheet would run as a formula are
neutralised (OWASP's CSV-injection rule), so a batch called `=HYPERLINK(...)` or an e-mail address
starting with `+` opens as the text it is.

A text cell starting with `=`, `+`, `-`, `@`, a tab or a carriage return gets a leading `'`, which
spreadsheets show as nothing and read as "this is text". Numbers are left alone, as numbers and as
text that is only a number (`-0.25`), because no spreadsheet reads those as formulas.
"""

import csv
import re
from collections.abc import Iterable
from typing import IO, Any

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
_NUMBER = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?")


def safe_cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS) and not _NUMBER.fullmatch(value):
        return "'" + value
    return value


class SafeWriter:
    """csv.writer's writerow/writerows with every cell passed through `safe_cell`."""

    def __init__(self, file: IO[str], **options: Any) -> None:
        self._writer = csv.writer(file, **options)

    def writerow(self, row: Iterable[Any]) -> Any:
        return self._writer.writerow([safe_cell(value) for value in row])

    def writerows(self, rows: Iterable[Iterable[Any]]) -> None:
        for row in rows:
            self.writerow(row)


def writer(file: IO[str], **options: Any) -> SafeWriter:
    return SafeWriter(file, **options)
