"""Rejection sampling as a backend (Llama 2, 3.2.3): each request is sampled K times by another
backend and answered with the sample the reward model scores highest. Every one of the K samples,
with its seed and scores, is kept in the answer's metadata, so a dataset can show what the best was
chosen from. No Django imports: the scorer is handed in.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

from sampling.backends.base import Backend, GenerationRequest, GenerationResult

# Scores (context messages, response text) items; returns one dict per item with at least "reward"
# (the value ranked on; the hybrid's details ride along).
Scorer = Callable[[Sequence[tuple[Sequence[dict], str]]], list[dict[str, Any]]]
SEED_SPACE = 2**63


def candidate_seed(seed: int | None, index: int) -> int | None:
    """The seed of candidate ``index``: the request's seed plus the index (within 63 bits)."""
    return None if seed is None else (seed + index) % SEED_SPACE


class BestOfKBackend(Backend):
    def __init__(self, base: Backend, k: int, scorer: Scorer, *, description: dict[str, Any] | None = None):
        if k < 1:
            raise ValueError(f"K must be at least 1, got {k}")
        self.base, self.k, self.scorer = base, k, scorer
        self.description = description or {}

    def generate_batch(self, requests: Sequence[GenerationRequest]) -> list[GenerationResult]:
        expanded = [replace(r, seed=candidate_seed(r.seed, i)) for r in requests for i in range(self.k)]
        results = self.base.generate_batch(expanded)
        scores = self.scorer([(list(r.messages), result.text) for r, result in zip(expanded, results, strict=True)])
        answers = []
        for n, request in enumerate(requests):
            span = range(n * self.k, (n + 1) * self.k)
            candidates = [
                {
                    "index": i - n * self.k,
                    "seed": expanded[i].seed,
                    "text": results[i].text,
                    "completion_tokens": results[i].completion_tokens,
                    "finish_reason": results[i].finish_reason,
                    **scores[i],
                }
                for i in span
            ]
            # The first of equal rewards wins, so a re-run with the same seeds answers the same.
            best = max(candidates, key=lambda c: (c["reward"], -c["index"]))
            chosen = results[n * self.k + best["index"]]
            answers.append(
                GenerationResult(
                    text=chosen.text,
                    prompt_tokens=chosen.prompt_tokens,
                    completion_tokens=chosen.completion_tokens,
                    finish_reason=chosen.finish_reason,
                    seconds=max(r.seconds for r in results) if results else 0.0,
                    metadata={
                        **chosen.metadata,
                        "best_of_k": {
                            **self.description,
                            "k": self.k,
                            "request_seed": request.seed,
                            "chosen": best["index"],
                            "candidates": candidates,
                        },
                    },
                )
            )
        return answers
