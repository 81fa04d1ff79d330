"""Local generation with Hugging Face ``transformers``.

Design choices, and why:

* Models stay loaded in a process-wide cache keyed by (checkpoint, device): a Celery worker serves
  many sampling tasks for the same few model variants, and reloading per task would dominate.
* A batch runs as one left-padded ``generate`` call, whatever mix of sampling settings its
  requests carry. Instead of grouping requests by settings (which splits a batch into many small
  ones when annotators' requests vary in temperature), sampling is done row by row inside a logits
  processor, :class:`RowwiseSampler`: it applies each row's temperature and top-p, draws the token
  with that row's own seeded ``torch.Generator`` and hands ``generate`` a distribution with all
  mass on that token, so the greedy loop simply takes it. Per-row generators make a seeded
  request's sample independent of which other requests share its batch. The same processor ends
  rows that reach their own ``max_new_tokens``.
* CUDA runs in bfloat16 (fast and memory-light on current GPUs); the CPU runs in float32, which
  is what CPU kernels are fast at.
"""

from __future__ import annotations

import os
import secrets
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
from transformers import (
    AutoModelForCausalLM,
    AutoTokenizer,
    GenerationConfig,
    LogitsProcessor,
    LogitsProcessorList,
    PreTrainedModel,
    PreTrainedTokenizerBase,
)

from sampling.backends.base import Backend, GenerationRequest, GenerationResult
from sampling.backends.errors import ModelUnavailable, SamplingError
from sampling.embedded import ensure_gguf_checkpoint
from sampling.templates import render_prompt, resolve_template


@dataclass(frozen=True)
class LoadedModel:
    """A model ready to generate, with what generation needs to know about its tokenizer."""

    model: PreTrainedModel
    tokenizer: PreTrainedTokenizerBase
    checkpoint: Path
    device: torch.device
    stop_ids: tuple[int, ...]
    pad_id: int
    # Serialises generation: fast tokenizers raise "Already borrowed" when padding from two
    # threads at once, and concurrent generate calls on one model gain nothing but memory use.
    lock: threading.Lock = field(default_factory=threading.Lock, compare=False)


_MODELS: dict[tuple[str, str], LoadedModel] = {}
_MODELS_LOCK = threading.Lock()


def resolve_device(device: str | None = None) -> torch.device:
    """``"auto"``/``None`` picks CUDA when available, else the CPU; anything else is used as given."""
    if device in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def _stop_ids(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase) -> tuple[int, ...]:
    """Token ids that end a response: the generation config's EOS ids plus the tokenizer's EOS."""
    configured = model.generation_config.eos_token_id
    ids = configured if isinstance(configured, list) else [configured]
    ids = [*ids, tokenizer.eos_token_id]
    stops = tuple(dict.fromkeys(i for i in ids if i is not None))
    if not stops:
        raise ModelUnavailable("the model defines no end-of-sequence token, so responses could not stop")
    return stops


def _load(checkpoint: Path, device: torch.device) -> LoadedModel:
    """Load tokenizer and model from a checkpoint directory, ready for left-padded batches."""
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    try:
        tokenizer = AutoTokenizer.from_pretrained(checkpoint, local_files_only=True)
        model = AutoModelForCausalLM.from_pretrained(checkpoint, dtype=dtype, local_files_only=True)
        model.to(device).eval()
    except Exception as exc:  # any failure here means the same thing to the caller
        raise ModelUnavailable(f"could not load the model at {checkpoint} on {device}: {exc}") from exc
    # Left padding keeps every prompt's last token in the last column, where generation continues.
    tokenizer.padding_side = "left"
    stop_ids = _stop_ids(model, tokenizer)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else stop_ids[0]
    return LoadedModel(model, tokenizer, checkpoint, device, stop_ids, pad_id)


def _check_context(loaded: LoadedModel, requests: Sequence[GenerationRequest], prompts: Sequence[str]) -> None:
    """Refuse, before generating anything, prompts that cannot fit the model's context."""
    context = getattr(loaded.model.config, "max_position_embeddings", None)
    if context is None:
        return
    lengths = [len(ids) for ids in loaded.tokenizer(list(prompts), add_special_tokens=False)["input_ids"]]
    for index, (request, length) in enumerate(zip(requests, lengths, strict=True)):
        if length + request.max_new_tokens > context:
            raise SamplingError(
                f"request {index}: the prompt is {length} tokens and max_new_tokens is "
                f"{request.max_new_tokens}, more than the model's context of {context} tokens"
            )


class RowwiseSampler(LogitsProcessor):
    """Sample each row of a batch with its own temperature, top-p, seed and length limit.

    Returns scores that are 0 for the chosen token and -inf elsewhere, so ``generate`` running
    greedy picks exactly the sampled token. Temperature 0 rows take the argmax. Sampling runs on
    the CPU in float32 with CPU generators, so a seed gives the same random draws on any device.
    """

    def __init__(
        self,
        requests: Sequence[GenerationRequest],
        seeds: Sequence[int | None],
        prompt_width: int,
        stop_id: int,
    ) -> None:
        self.temperatures = [r.temperature for r in requests]
        self.top_ps = [r.top_p for r in requests]
        self.limits = [r.max_new_tokens for r in requests]
        self.generators = [torch.Generator().manual_seed(s) if s is not None else None for s in seeds]
        self.prompt_width = prompt_width
        self.stop_id = stop_id

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        step = input_ids.shape[1] - self.prompt_width
        logits = scores.detach().float().cpu()
        chosen = torch.empty(len(self.limits), dtype=torch.long)
        for row, generator in enumerate(self.generators):
            if step >= self.limits[row]:
                chosen[row] = self.stop_id
            elif generator is None:
                chosen[row] = int(logits[row].argmax())
            else:
                chosen[row] = self._draw(logits[row], row, generator)
        forced = torch.full_like(scores, float("-inf"))
        forced[torch.arange(len(chosen)), chosen.to(scores.device)] = 0.0
        return forced

    def _draw(self, logits: torch.Tensor, row: int, generator: torch.Generator) -> int:
        """Temperature, then nucleus (top-p) filtering, then one inverse-CDF draw.

        The nucleus is found with ``topk`` on a growing ``k`` rather than sorting the whole
        vocabulary, and the draw is a ``searchsorted`` on the cumulative sum rather than
        ``torch.multinomial``: both replaced ops cost ~20 ms per call on a busy two-core machine.
        """
        probs = torch.softmax(logits / self.temperatures[row], dim=-1)
        top_p = self.top_ps[row]
        if top_p < 1.0:
            k = 64
            while True:
                kept, ids = probs.topk(min(k, probs.numel()))
                if kept.sum() >= top_p or k >= probs.numel():
                    break
                k *= 4
            # Keep a token while the mass before it is below top_p: the smallest set reaching top_p.
            inside = (kept.cumsum(0) - kept) < top_p
            kept, ids = kept[inside], ids[inside]
        else:
            kept, ids = probs, torch.arange(probs.numel())
        cdf = kept.cumsum(0)
        target = torch.rand(1, generator=generator) * cdf[-1]
        pick = torch.searchsorted(cdf, target, right=True).clamp(max=cdf.numel() - 1)
        return int(ids[pick])


class TransformersBackend(Backend):
    """Generate with a local checkpoint directory or GGUF file on the worker's GPU, or the CPU.

    ``path`` is a checkpoint directory or a ``.gguf`` file; a GGUF is converted once into
    ``cache_dir`` (see :mod:`sampling.embedded`). Loading happens on first use and the loaded
    model is shared by every backend object in the process with the same checkpoint and device.
    ``max_batch_size`` bounds how many prompts go through ``generate`` together.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        device: str | None = "auto",
        cache_dir: str | os.PathLike[str] | None = None,
        max_batch_size: int = 16,
    ) -> None:
        if max_batch_size < 1:
            raise ValueError(f"max_batch_size must be >= 1, got {max_batch_size}")
        self.path = Path(path)
        self.device = resolve_device(device)
        self.cache_dir = cache_dir
        self.max_batch_size = max_batch_size
        self._checkpoint: Path | None = None

    def load(self) -> LoadedModel:
        """Return the loaded model, loading (and for a GGUF, converting) it on first use."""
        if self._checkpoint is None:
            self._checkpoint = self._resolve_checkpoint()
        key = (str(self._checkpoint.resolve()), str(self.device))
        with _MODELS_LOCK:
            if key not in _MODELS:
                _MODELS[key] = _load(self._checkpoint, self.device)
            return _MODELS[key]

    def _resolve_checkpoint(self) -> Path:
        """The checkpoint directory to load: ``path`` itself, or the cached conversion of a GGUF."""
        if not self.path.exists():
            raise ModelUnavailable(f"model path {self.path} does not exist")
        if not self.path.is_file():
            return self.path
        if self.path.suffix.lower() != ".gguf":
            raise ModelUnavailable(f"model path {self.path} is a file but not a .gguf; give a checkpoint directory")
        return ensure_gguf_checkpoint(self.path, self.cache_dir)

    def generate_batch(self, requests: Sequence[GenerationRequest]) -> list[GenerationResult]:
        """Sample one response per request, in order, ``max_batch_size`` prompts at a time."""
        if not requests:
            return []
        loaded = self.load()
        results: list[GenerationResult] = []
        with loaded.lock:
            prompts = [render_prompt(loaded.tokenizer, r.messages, r.system, r.template) for r in requests]
            _check_context(loaded, requests, prompts)
            for start in range(0, len(requests), self.max_batch_size):
                stop = start + self.max_batch_size
                results += self._generate_chunk(loaded, requests[start:stop], prompts[start:stop])
        return results

    def _generate_chunk(
        self, loaded: LoadedModel, requests: Sequence[GenerationRequest], prompts: list[str]
    ) -> list[GenerationResult]:
        """Run one left-padded ``generate`` call for up to ``max_batch_size`` requests."""
        started = time.perf_counter()
        tokenizer = loaded.tokenizer
        encoded = tokenizer(prompts, return_tensors="pt", padding=True, add_special_tokens=False)
        prompt_lengths = encoded["attention_mask"].sum(dim=1).tolist()
        width = encoded["input_ids"].shape[1]
        seeds = [
            None if r.temperature == 0 else (r.seed if r.seed is not None else secrets.randbits(63)) for r in requests
        ]
        sampler = RowwiseSampler(requests, seeds, width, loaded.stop_ids[0])
        config = GenerationConfig(
            do_sample=False,
            max_new_tokens=max(r.max_new_tokens for r in requests),
            eos_token_id=list(loaded.stop_ids),
            pad_token_id=loaded.pad_id,
        )
        with torch.inference_mode():
            output = loaded.model.generate(
                **encoded.to(loaded.device),
                generation_config=config,
                logits_processor=LogitsProcessorList([sampler]),
            )
        seconds = time.perf_counter() - started
        results = []
        for row, request in enumerate(requests):
            tokens = output[row, width:].tolist()
            end = next((i for i, token in enumerate(tokens) if token in loaded.stop_ids), len(tokens))
            finish = "stop" if end < request.max_new_tokens else "length"
            tokens = tokens[: min(end, request.max_new_tokens)]
            results.append(
                GenerationResult(
                    text=tokenizer.decode(tokens, skip_special_tokens=True).strip(),
                    prompt_tokens=prompt_lengths[row],
                    completion_tokens=len(tokens),
                    finish_reason=finish,
                    seconds=seconds,
                    metadata={
                        "backend": "transformers",
                        "model": str(self.path),
                        "checkpoint": str(loaded.checkpoint),
                        "device": str(loaded.device),
                        "dtype": str(loaded.model.dtype).removeprefix("torch."),
                        "template": resolve_template(tokenizer, request.template),
                        "seed": seeds[row],
                        "batch_size": len(requests),
                    },
                )
            )
        return results
