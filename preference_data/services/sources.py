"""Import of open-source preference data as external comparisons, apart from Preflab's own labels."""

import hashlib
from collections.abc import Iterable, Iterator
from itertools import islice
from typing import IO

from django.conf import settings
from django.db import transaction

from accounts.models import User
from annotation.models import Focus
from config.exceptions import Conflict, InvalidInput

from ..external import ExternalFileError, iter_external, validate_external
from ..models import ExternalComparison, ExternalSource, SourceUsage


def _batched(items: Iterable, size: int) -> Iterator[list]:
    iterator = iter(items)
    while chunk := list(islice(iterator, size)):
        yield chunk


def _sha256(source: IO[bytes]) -> str:
    digest = hashlib.sha256()
    source.seek(0)
    while block := source.read(1 << 20):
        digest.update(block)
    source.seek(0)
    return digest.hexdigest()


def external_source_import(
    *,
    name: str,
    focus: str,
    source: IO[bytes],
    format: str = "auto",
    filename: str = "",
    description: str = "",
    usage: str = "train",
    test_fraction: float = 0.0,
    split_seed: int = 0,
    created_by: User | None = None,
) -> ExternalSource:
    """Import an HH-RLHF, TRL or UltraFeedback file (JSONL or Parquet). The whole file validates, or nothing
    is written. `usage` says where its pairs go in dataset builds: training (default), the held-out
    split (an evaluation-only source), or split by a seeded rule with `test_fraction` held out.

    `source` must be seekable: it is read once to validate and once more to write, so a file of any
    size is imported in constant memory.
    """
    name = (name or "").strip()
    if not name:
        raise InvalidInput("Name the imported data set (e.g. 'hh-rlhf harmless-base').", field="name")
    if focus not in Focus.values:
        raise InvalidInput(
            "Say whether the data is helpful-style (helpfulness) or harmless-style (safety).", field="focus"
        )
    if usage not in SourceUsage.values:
        raise InvalidInput(f"usage must be one of {', '.join(SourceUsage.values)}.", field="usage")
    if usage == SourceUsage.SPLIT and not 0 < test_fraction < 1:
        raise InvalidInput(
            "To split an import, give the held-out share as test_fraction, between 0 and 1 (e.g. 0.1).",
            field="test_fraction",
        )
    if ExternalSource.objects.filter(name=name).exists():
        raise Conflict(f"An imported data set named {name!r} already exists; pick another name.", field="name")
    size = source.seek(0, 2)
    source.seek(0)
    if size > settings.PREFLAB_IMPORT_MAX_BYTES:
        raise InvalidInput(
            f"The file is larger than {settings.PREFLAB_IMPORT_MAX_BYTES // 2**20} MiB; split it or import it "
            "with the management command.",
            field="file",
        )
    try:
        info = validate_external(source, format)
    except ExternalFileError as exc:
        raise InvalidInput(str(exc), field="file", extra={"errors": exc.errors}) from None
    digest = _sha256(source)
    with transaction.atomic():
        imported = ExternalSource.objects.create(
            name=name,
            focus=focus,
            format=info.format,
            file_type=info.file_type,
            filename=filename[:300],
            sha256=digest,
            row_count=info.rows,
            description=description,
            usage=usage,
            test_fraction=test_fraction if usage == SourceUsage.SPLIT else (1.0 if usage == SourceUsage.TEST else 0.0),
            split_seed=split_seed,
            created_by=created_by,
        )
        for chunk in _batched(iter_external(source, info.format), 2_000):
            ExternalComparison.objects.bulk_create(
                [
                    ExternalComparison(
                        source=imported,
                        row=pair.line,
                        context=pair.context,
                        chosen=pair.chosen,
                        rejected=pair.rejected,
                        strength=pair.strength,
                        safety_label=pair.safety_label,
                    )
                    for pair in chunk
                ]
            )
    return imported
