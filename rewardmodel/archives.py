"""A directory as a zip file, produced as a stream of byte chunks (pure; no Django).

A reward model is hundreds of megabytes to many gigabytes: the download starts at once and memory
stays at one chunk, with no temporary file. Entries are stored, not deflated (safetensors weights
barely compress), in zip64 form so any size works; every entry sits under one top folder, so
unzipping gives a directory that ``from_pretrained`` loads.

A saved reward model (a folder with ``preflab.json``) downloads self-describing: its model card is
rendered for the folder name it unzips to, and a model saved before Preflab prepared its tokenizers
gets the chat template and truncation settings it lacks (`model_card.download_files`).
"""

from __future__ import annotations

import io
import time
import zipfile
from collections.abc import Iterable, Iterator
from pathlib import Path

CHUNK = 1 << 20
SAVED_MODEL_FILE = "preflab.json"  # a folder holding it is a saved reward model


class _Sink(io.RawIOBase):
    """A write-only stream that collects what zipfile writes until it is drained."""

    def __init__(self) -> None:
        self._chunks: list[bytes] = []

    def writable(self) -> bool:
        return True

    def write(self, data) -> int:
        self._chunks.append(bytes(data))
        return len(data)

    def drain(self) -> bytes:
        data, self._chunks = b"".join(self._chunks), []
        return data


def stream_zip(directory: Path, top: str, exclude: Iterable[str] = ()) -> Iterator[bytes]:
    """The files under ``directory`` (except names in ``exclude``) as a zip, under folder ``top``."""
    skipped = set(exclude)
    files = sorted(p for p in directory.rglob("*") if p.is_file() and p.name not in skipped)
    generated = {}
    if (directory / SAVED_MODEL_FILE).is_file():
        # Imported here: the model card pulls in transformers and torch, which the web process (which
        # imports this module with the API views) loads only when a model is actually downloaded.
        from rewardmodel.model_card import download_files

        generated = download_files(directory, top)
    sink = _Sink()
    # zipfile sees a stream it cannot seek and writes each entry's sizes after its data.
    with zipfile.ZipFile(sink, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as archive:
        for path in files:
            name = path.relative_to(directory).as_posix()
            if name in generated:
                continue
            info = zipfile.ZipInfo.from_file(path, f"{top}/{name}")
            with archive.open(info, "w", force_zip64=True) as entry, path.open("rb") as source:
                while chunk := source.read(CHUNK):
                    entry.write(chunk)
                    if data := sink.drain():
                        yield data
            if data := sink.drain():
                yield data
        for name, content in sorted(generated.items()):
            info = zipfile.ZipInfo(f"{top}/{name}", date_time=time.localtime()[:6])
            info.external_attr = 0o644 << 16
            archive.writestr(info, content)
            if data := sink.drain():
                yield data
    if data := sink.drain():
        yield data
