"""Exports: a finished build written out as files under MEDIA_ROOT/exports/<id>/, with a manifest.

Rows stream from the database through a server-side cursor (see `streaming`), `fetch` rows per round
trip, and go to disk as they come: JSONL line by line, Parquet in row groups of `row_group_rows`.
Memory is bounded by those two numbers, never by the size of the dataset. Three things overlap: a
thread reads the next chunks from the database (`_read_ahead`), the caller formats one chunk with
`preference_data.rules`, and a thread hashes and writes the bytes of the previous one (`_HashingWriter`).
Rows are formatted by the one implementation in `pairs` on every database, so SQLite and PostgreSQL
export byte-identical files from the same data (benchmarks/export.py and docs/benchmarks.md have
the figures).

Files are written under a temporary name, flushed to disk and renamed, so a file with its final
name is always complete; the manifest comes last. The content hash is the sha256 of the data files'
`sha256sum` listing (sorted by name), so it changes exactly when a data file's bytes do; a rebuild
of the same selection over the same data exports byte-identical files with the same hash.
"""

import contextlib
import errno
import hashlib
import json
import logging
import os
import queue
import shutil
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, connections, transaction
from django.utils import timezone

from accounts.models import User, Vendor
from annotation.models import Rating
from config.exceptions import Conflict, DomainError, InvalidInput, NotFound
from core import jobs

from .. import rules
from ..models import (
    DatasetBuild,
    DatasetExport,
    DatasetPair,
    ExportFormat,
    ExternalSource,
    FileType,
    JobStatus,
)
from .manifests import code_version
from .rows import ExportSql, external_rows, preflab_rows, rating_rows
from .streaming import read_connection

logger = logging.getLogger(__name__)

MANIFEST_NAME = "manifest.json"
_PROGRESS_EVERY_SECONDS = 0.5

COLUMN_DOCS = {
    ExportFormat.TRL: {
        "prompt": "the dialogue before the responses as messages [{role, content}], ending with the user turn",
        "chosen": "[{role: assistant, content}]: the response the majority chose",
        "rejected": "[{role: assistant, content}]: the other response",
        "margin": "m(r) from the margin table for the label's strength (0 when the strength is unknown)",
        "id": "comparison:<id> (Preflab) or external:<id> (imported)",
        "strength": "significantly_better | better | slightly_better | negligibly_better ('' when unknown)",
        "safety_label": "chosen_safe_other_unsafe | both_safe | both_unsafe ('' outside safety data)",
        "focus": "helpfulness | safety",
        "source": "preflab or external:<source name>",
        "batch": "the Preflab batch ('' for imported pairs)",
        "comparison_id": "Preflab comparison id (null for imported pairs)",
        "chosen_response_id": "Preflab response id of the chosen response",
        "rejected_response_id": "Preflab response id of the rejected response",
    },
    ExportFormat.HH_RLHF: {
        "chosen": 'the whole dialogue as "\\n\\nHuman: ...\\n\\nAssistant: ..." ending with the chosen response '
        "(a system message, if any, is the text before the first Human turn); no end-of-sequence token, as in "
        "HH-RLHF: TRL's RewardTrainer appends its tokenizer's (Preflab's base checkpoints and reward models have one)",
        "rejected": "the same dialogue ending with the rejected response",
        "id": "comparison:<id> or external:<id>",
        "margin": "m(r) for the label's strength",
        "strength": "as in the TRL export",
        "safety_label": "as in the TRL export",
        "focus": "helpfulness | safety",
        "source": "preflab or external:<source name>",
        "batch": "the Preflab batch ('' for imported pairs)",
    },
    ExportFormat.RATINGS: {
        "rating_id": "Preflab rating id",
        "comparison_id": "the rated comparison",
        "split": "train | test: the side of the dataset the comparison is on",
        "batch": "batch name",
        "focus": "helpfulness | safety",
        "annotator": "stable pseudonym (annotator-<n>), never the person",
        "vendor": "the annotator's vendor",
        "chosen": "a | b: the chosen response in storage order",
        "chosen_response_id": "Preflab response id the annotator chose",
        "rejected_response_id": "the other response",
        "strength": "the annotator's strength of preference",
        "safety_label": "the annotator's safety bin, relative to their chosen response",
        "shown_left": "a | b: which response was on the left of their screen",
        "seconds_spent": "seconds between the pair appearing and the rating being sent",
        "created_at": "when the rating was stored (ISO 8601, UTC)",
        "used_in_label": "false when the selection's rater filters (flagged annotators, vendors) left it out, "
        "or when it was given after its comparison became gold (a test of the annotator, not a label)",
        "ds_label": "a | b: the comparison's Dawid-Skene label in its batch's agreement report ('' before the first)",
        "ds_posterior": "the posterior probability of that label (null before the batch's first agreement report)",
    },
}


def _file_names(export: DatasetExport) -> list[tuple[str, str]]:
    """(split, file name) of the data files an export writes."""
    if export.format == ExportFormat.RATINGS:
        return [("all", f"ratings.{export.file_type}")]
    return [(split, f"{split}.{export.file_type}") for split in (rules.TRAIN, rules.TEST)]


def load_snippet(export: DatasetExport) -> str:
    loader = "json" if export.file_type == FileType.JSONL else "parquet"
    files = {split if split != "all" else "train": name for split, name in _file_names(export)}
    return f'datasets.load_dataset("{loader}", data_files={json.dumps(files)})'


def dataset_export_create(
    *,
    created_by: User | None,
    build: DatasetBuild,
    format: str = ExportFormat.TRL,
    file_type: str = FileType.JSONL,
    enqueue: bool = True,
) -> DatasetExport:
    """Queue an export of a finished build (`enqueue=False`: the caller runs it itself)."""
    if format not in ExportFormat.values:
        raise InvalidInput(
            f"Unknown export format {format!r}; use one of: {', '.join(ExportFormat.values)}.", field="format"
        )
    if file_type not in FileType.values:
        raise InvalidInput(f"Unknown file type {file_type!r}; use jsonl or parquet.", field="file_type")
    if build.status == JobStatus.FAILED:
        raise InvalidInput("This dataset build failed; build it again before exporting.", field="build")
    if build.status != JobStatus.DONE:
        raise Conflict("The dataset is still being built; export it when the build is done.", field="build")
    with transaction.atomic():
        export = DatasetExport.objects.create(build=build, format=format, file_type=file_type, created_by=created_by)
        if enqueue:
            jobs.enqueue(EXPORT, [export.pk])
    return export


# --- files ------------------------------------------------------------------------------------


def _fsync_and_rename(tmp: Path, final: Path) -> None:
    with open(tmp, "rb+") as fh:
        os.fsync(fh.fileno())
    os.replace(tmp, final)


def _sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


class _HashingWriter:
    """Hashes and writes bytes in a thread of its own, a buffer or two behind the caller.

    sha256 and file writes release the GIL, so they run while the caller formats the next chunk.
    """

    def __init__(self, path: Path):
        self.fh = open(path, "wb")  # noqa: SIM115 - closed in close()
        self.digest = hashlib.sha256()
        self.pending: queue.Queue = queue.Queue(maxsize=2)
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._drain, name="dataset-export-writer", daemon=True)
        self.thread.start()

    def _drain(self) -> None:
        while (data := self.pending.get()) is not None:
            if self.error is None:
                try:
                    self.digest.update(data)
                    self.fh.write(data)
                except BaseException as exc:  # raised in the caller at its next write or at close
                    self.error = exc

    def write(self, data: bytes) -> None:
        if self.error is not None:
            raise self.error
        self.pending.put(data)

    def close(self) -> str:
        self.pending.put(None)
        self.thread.join()
        self.fh.close()
        if self.error is not None:
            raise self.error
        return self.digest.hexdigest()

    def abort(self) -> None:
        """Stop the thread and close the file after a failure; raises nothing."""
        if self.thread.is_alive():
            self.error = self.error or RuntimeError("aborted")  # the thread drains without writing
            self.pending.put(None)
            self.thread.join()
        with contextlib.suppress(OSError):
            self.fh.close()


class JsonlFile:
    def __init__(self, path: Path, split: str, to_line: Callable):
        self.path, self.split, self.to_line = path, split, to_line
        self.tmp = path.with_name(f".{path.name}.tmp")
        self.sink = _HashingWriter(self.tmp)
        self.rows = self.bytes = 0

    def write(self, records: Sequence) -> None:
        data = "".join(map(self.to_line, records)).encode("utf-8")
        self.sink.write(data)
        self.rows += len(records)
        self.bytes += len(data)

    def close(self) -> dict:
        sha256 = self.sink.close()
        _fsync_and_rename(self.tmp, self.path)
        return {"name": self.path.name, "split": self.split, "rows": self.rows, "bytes": self.bytes, "sha256": sha256}

    def abort(self) -> None:
        self.sink.abort()
        self.tmp.unlink(missing_ok=True)


_CATEGORICAL_COLUMNS = (
    "split",
    "strength",
    "safety_label",
    "focus",
    "source",
    "batch",
    "annotator",
    "vendor",
    "chosen",
    "shown_left",
)


class ParquetFile:
    """Each chunk becomes Arrow columns at once (no Python rows kept); `row_group_rows` rows make a row group."""

    def __init__(self, path: Path, split: str, to_batch: Callable, schema, row_group_rows: int):
        self.path, self.split, self.to_batch, self.row_group_rows = path, split, to_batch, row_group_rows
        self.tmp = path.with_name(f".{path.name}.tmp")
        # Dictionary-encode the label columns only: trying it on every unique text costs memory and time.
        categorical = [name for name in _CATEGORICAL_COLUMNS if name in schema.names]
        self.writer = pq.ParquetWriter(self.tmp, schema, use_dictionary=categorical)
        self.pending: list = []
        self.pending_rows = self.rows = 0

    def write(self, records: Sequence) -> None:
        self.pending.append(self.to_batch(records))
        self.pending_rows += len(records)
        if self.pending_rows >= self.row_group_rows:
            self._flush(whole_groups_only=True)

    def _flush(self, whole_groups_only: bool = False) -> None:
        if not self.pending_rows:
            return
        table = pa.Table.from_batches(self.pending)
        size = self.pending_rows - self.pending_rows % self.row_group_rows if whole_groups_only else self.pending_rows
        self.writer.write_table(table.slice(0, size), row_group_size=self.row_group_rows)
        rest = table.slice(size)
        self.pending, self.pending_rows, self.rows = rest.to_batches(), rest.num_rows, self.rows + size
        del table
        # Hand the written group's buffers back to the system, so the peak stays one row group.
        pa.default_memory_pool().release_unused()

    def abort(self) -> None:
        with contextlib.suppress(Exception):
            self.writer.close()
        self.pending = []
        self.tmp.unlink(missing_ok=True)

    def close(self) -> dict:
        self._flush()  # a full disk fails here, before the writer closes: abort() closes it
        self.writer.close()
        _fsync_and_rename(self.tmp, self.path)
        return {
            "name": self.path.name,
            "split": self.split,
            "rows": self.rows,
            "bytes": self.path.stat().st_size,
            "sha256": _sha256_of(self.path),
        }


_WRITERS = {
    (ExportFormat.TRL, FileType.JSONL): (rules.trl_json_line, None),
    (ExportFormat.TRL, FileType.PARQUET): (rules.trl_arrow, rules.TRL_SCHEMA),
    (ExportFormat.HH_RLHF, FileType.JSONL): (rules.hh_json_line, None),
    (ExportFormat.HH_RLHF, FileType.PARQUET): (rules.hh_arrow, rules.HH_SCHEMA),
    (ExportFormat.RATINGS, FileType.JSONL): (rules.ratings_json_line, None),
    (ExportFormat.RATINGS, FileType.PARQUET): (rules.ratings_arrow, rules.RATINGS_SCHEMA),
}


def _open_files(export: DatasetExport, directory: Path, files: dict) -> None:
    """Open the export's files into `files` (filled one by one, so a failure can abort the open ones)."""
    convert, schema = _WRITERS[(export.format, export.file_type)]
    for split, name in _file_names(export):
        if export.file_type == FileType.JSONL:
            files[split] = JsonlFile(directory / name, split, convert)
        else:
            files[split] = ParquetFile(directory / name, split, convert, schema, settings.PREFLAB_EXPORT_ROW_GROUP_ROWS)


# --- rows from the database -------------------------------------------------------------------


def _chunks(export: DatasetExport, fetch: int, lookups: dict) -> Iterator[tuple[str, list]]:
    """(file split, rows) chunk by chunk, read on a connection of its own (see `streaming`).

    One split after the other, so only one file at a time holds an unfinished Parquet row group.
    """
    with read_connection() as reader:
        sql = ExportSql(reader)
        if export.format == ExportFormat.RATINGS:
            for chunk in rating_rows(reader, sql, export.build, fetch, lookups["vendors"]):
                yield "all", chunk
            return
        for split in (rules.TRAIN, rules.TEST):
            for chunk in preflab_rows(reader, sql, export.build, split, fetch):
                yield split, chunk
            for chunk in external_rows(reader, sql, export.build, split, fetch, lookups["sources"]):
                yield split, chunk


_END = object()


def _read_ahead(chunks: Iterator, depth: int = 2) -> Iterator:
    """Run `chunks` in a thread, `depth` chunks ahead of the caller.

    While the caller formats and writes one chunk, the thread waits for the database to produce the
    next (psycopg2 releases the GIL while it waits), so database time and Python time overlap.
    The bounded queue keeps memory at `depth` chunks. The thread opens its own connection, which a
    caller inside a transaction could not share: `_run` reads inline then.
    """
    handoff: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def hand(item) -> None:
        while not stop.is_set():
            try:
                handoff.put(item, timeout=0.2)
                return
            except queue.Full:
                continue

    def read() -> None:
        try:
            for chunk in chunks:
                hand(chunk)
                if stop.is_set():
                    return
            hand(_END)
        except BaseException as exc:  # handed to the caller, raised there
            hand(exc)
        finally:
            chunks.close()

    reader = threading.Thread(target=read, name="dataset-export-reader", daemon=True)
    reader.start()
    try:
        while (item := handoff.get()) is not _END:
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        reader.join()


def _rows_total(export: DatasetExport) -> int:
    if export.format == ExportFormat.RATINGS:
        compared = DatasetPair.objects.filter(build=export.build, comparison__isnull=False).values("comparison_id")
        return Rating.objects.filter(comparison_id__in=compared).count()
    return DatasetPair.objects.filter(build=export.build).count()


# --- the run ----------------------------------------------------------------------------------


def content_hash(files: Sequence[dict]) -> str:
    listing = "".join(f"{f['sha256']}  {f['name']}\n" for f in sorted(files, key=lambda f: f["name"]))
    return hashlib.sha256(listing.encode()).hexdigest()


def export_manifest(export: DatasetExport, files: list[dict]) -> dict:
    return {
        **export.build.manifest,
        "export": {
            "id": export.pk,
            "format": export.format,
            "file_type": export.file_type,
            "created_by": export.created_by.username if export.created_by else None,
            "created_at": export.created_at.isoformat(),
            "finished_at": timezone.now().isoformat(),
            "code_version": code_version(),
        },
        "files": files,
        "content_hash": content_hash(files),
        "content_hash_rule": "sha256 of the data files' sha256sum listing ('<sha256>  <name>' lines, sorted by name)",
        "columns": COLUMN_DOCS[export.format],
        "load_with": load_snippet(export),
    }


def _write_json_atomically(path: Path, payload: dict) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        tmp.write_text(json.dumps(payload, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        _fsync_and_rename(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


EXPORT = "rewardmodel.export"


def remove_partial_files(now=None) -> list[int]:
    """Reconcile step: a failed export keeps no files (its own clean-up may have been cut short)."""
    removed = []
    for export in DatasetExport.objects.filter(status=JobStatus.FAILED).only("pk"):
        if export.directory.exists():
            shutil.rmtree(export.directory, ignore_errors=True)
            removed.append(export.pk)
    return removed


def dataset_export_run(*, export_id: int, fetch: int | None = None) -> DatasetExport:
    """Write an export (the Celery task's body). A second delivery of a finished export, or one that
    a live worker is writing, does nothing."""
    claimed = jobs.claim(EXPORT, export_id, started_at=timezone.now(), error="", rows_done=0)
    export = DatasetExport.objects.select_related("build", "created_by").filter(pk=export_id).first()
    if export is None:
        raise NotFound(f"No dataset export {export_id}.")
    if claimed is None:
        return export
    try:
        with jobs.heartbeat(EXPORT, [export_id]):
            _run(export, fetch or settings.PREFLAB_EXPORT_FETCH_ROWS)
    except Exception as exc:
        if not isinstance(exc, DomainError):
            logger.exception("dataset export %s failed", export_id)
        detail = exc.detail if isinstance(exc, DomainError) else _failure_detail(exc)
        DatasetExport.objects.filter(pk=export_id).update(
            status=JobStatus.FAILED, error=detail, finished_at=timezone.now()
        )
    export.refresh_from_db()
    return export


def _failure_detail(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.errno == errno.ENOSPC:
        return (
            "The disk holding the exports is full: nothing of this export was kept. Free some space "
            f"under {settings.MEDIA_ROOT} (or point PREFLAB_MEDIA_ROOT elsewhere) and export again."
        )
    return f"{type(exc).__name__}: {exc}"


def _run(export: DatasetExport, fetch: int) -> None:
    if export.build.status != JobStatus.DONE:
        raise Conflict("The dataset build is not finished.")
    directory = export.directory
    shutil.rmtree(directory, ignore_errors=True)  # an interrupted earlier attempt starts over
    total = _rows_total(export)
    DatasetExport.objects.filter(pk=export.pk).update(rows_total=total)

    files: dict = {}
    chunks = None
    try:
        directory.mkdir(parents=True)
        _open_files(export, directory, files)
        lookups = {
            "vendors": dict(Vendor.objects.values_list("id", "name")),
            "sources": dict(ExternalSource.objects.values_list("id", "name")),
        }
        chunks = _chunks(export, fetch, lookups)
        if not connections[DEFAULT_DB_ALIAS].in_atomic_block:
            chunks = _read_ahead(chunks)
        done, reported_at = 0, time.monotonic()
        for split, chunk in chunks:
            files[split].write(chunk)
            done += len(chunk)
            if time.monotonic() - reported_at >= _PROGRESS_EVERY_SECONDS:
                DatasetExport.objects.filter(pk=export.pk).update(rows_done=done)
                reported_at = time.monotonic()
        written = []
        for split in list(files):  # a file whose close fails stays in `files`, to be aborted
            written.append(files[split].close())
            del files[split]
        export.files = written
        export.content_hash = content_hash(written)
        export.manifest = export_manifest(export, written)
        _write_json_atomically(directory / MANIFEST_NAME, export.manifest)
    except BaseException:
        # No thread, handle or partial file outlives a failed export.
        if chunks is not None:
            chunks.close()
        for file in files.values():
            file.abort()
        shutil.rmtree(directory, ignore_errors=True)
        raise
    export.status = JobStatus.DONE
    export.rows_done = done
    export.rows_total = total
    export.finished_at = timezone.now()
    export.save(update_fields=["files", "content_hash", "manifest", "status", "rows_done", "rows_total", "finished_at"])
