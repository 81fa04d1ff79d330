"""Helpers for dataset tests: comparisons with ratings stored directly, labels by the real voting code."""

import io
import json

from django.utils import timezone

from annotation.models import Assignment, Comparison, Rating, Turn
from annotation.services import comparison_label_refresh
from tests.factories import ComparisonFactory


def rate(comparison: Comparison, annotators, votes) -> Comparison:
    """Store one rating per (annotator, (chosen, strength, safety_label)) and refresh the majority label."""
    now = timezone.now()
    for annotator, (chosen, strength, safety) in zip(annotators, votes, strict=False):
        assignment = Assignment.objects.create(
            comparison=comparison,
            annotator=annotator,
            swapped=chosen == "b",
            status="submitted",
            leased_at=now,
            expires_at=now,
        )
        Rating.objects.create(
            assignment=assignment,
            comparison=comparison,
            annotator=annotator,
            chosen=chosen,
            strength=strength,
            safety_label=safety,
            seconds_spent=12.5,
            shown_left="b" if chosen == "b" else "a",
            idempotency_key=f"k-{comparison.pk}-{annotator.pk}",
        )
    comparison.refresh_from_db()
    return comparison_label_refresh(comparison=comparison)


def labelled(batch, annotators, votes, *, prompt: str | None = None, **fields) -> Comparison:
    comparison = ComparisonFactory(batch=batch, prompt=prompt, **fields)
    return rate(comparison, annotators, votes)


def multi_turn(batch, annotators, votes) -> Comparison:
    """A comparison at the second user turn, with the chosen answer appended after it (not context)."""
    comparison = ComparisonFactory(batch=batch, prompt="Plan a picnic.", context_length=3)
    Turn.objects.create(dialogue=comparison.dialogue, index=1, role="assistant", content="Where and when?")
    Turn.objects.create(dialogue=comparison.dialogue, index=2, role="user", content="Saturday, in the park.")
    Turn.objects.create(dialogue=comparison.dialogue, index=3, role="assistant", content="(appended later)")
    return rate(comparison, annotators, votes)


def jsonl_file(records) -> io.BytesIO:
    return io.BytesIO("".join(json.dumps(r) + "\n" for r in records).encode())


def trl_records(n: int, prefix: str, **extra) -> list[dict]:
    return [
        {"prompt": f"{prefix} question {i}?", "chosen": f"{prefix} good answer {i}", "rejected": f"{prefix} bad {i}"}
        | extra
        for i in range(n)
    ]
