"""Backend-neutral request and result types.

The Django side stores these fields on sampling jobs and hands them to whichever backend a model
variant uses, so they hold plain data only. Defaults are Llama 2's reference sampling settings.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field

from sampling.templates import TEMPLATE_CHOICES, Message, TemplateChoice


@dataclass(frozen=True)
class GenerationRequest:
    """One response to sample: the dialogue so far and how to sample.

    ``temperature`` 0 means greedy decoding. ``seed`` makes a sample reproducible; backends record
    the seed they used (drawn at random when none is given) in the result's metadata.
    ``template`` picks the prompt format for local models (see :func:`sampling.templates.render_prompt`).
    """

    messages: Sequence[Message]
    system: str | None = None
    temperature: float = 0.6
    top_p: float = 0.9
    max_new_tokens: int = 256
    seed: int | None = None
    template: TemplateChoice = "auto"

    def __post_init__(self) -> None:
        if self.temperature < 0:
            raise ValueError(f"temperature must be >= 0, got {self.temperature}")
        if not 0 < self.top_p <= 1:
            raise ValueError(f"top_p must be in (0, 1], got {self.top_p}")
        if self.max_new_tokens < 1:
            raise ValueError(f"max_new_tokens must be >= 1, got {self.max_new_tokens}")
        if self.template not in TEMPLATE_CHOICES:
            raise ValueError(f"template must be one of {', '.join(TEMPLATE_CHOICES)}, got {self.template!r}")


@dataclass(frozen=True)
class GenerationResult:
    """A sampled response.

    Token counts are ``None`` when an endpoint does not report usage. ``finish_reason`` is
    ``"length"`` when the response was cut at ``max_new_tokens``. ``seconds`` is the wall time of
    the call that produced it (for a batch, the whole batch). ``metadata`` says which backend,
    model, device and seed produced it, for provenance in exported datasets.
    """

    text: str
    prompt_tokens: int | None
    completion_tokens: int | None
    finish_reason: str
    seconds: float
    metadata: dict[str, object] = field(default_factory=dict)


class Backend(ABC):
    """Something that turns generation requests into responses."""

    @abstractmethod
    def generate_batch(self, requests: Sequence[GenerationRequest]) -> list[GenerationResult]:
        """Return one result per request, in the same order."""

    def generate(self, request: GenerationRequest) -> GenerationResult:
        """Sample a single response."""
        return self.generate_batch([request])[0]
