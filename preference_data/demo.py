"""The demo's open-source preference data: two small hand-written files in the two styles Preflab
imports (HH-RLHF transcripts, harmless-style; TRL conversational, helpful-style), so the mixes have
imported data to sample. The researcher builds the datasets from the Datasets page.

Idempotent: a source that exists is left as it is.
"""

from pathlib import Path

from accounts.models import User

from .models import ExternalSource
from .services import external_source_import

FIXTURES = Path(__file__).resolve().parent / "fixtures"
DEMO_SOURCES = [
    ("demo-hh-harmless", "safety", "demo_hh_harmless.jsonl", "Harmless-style pairs in Anthropic HH-RLHF form."),
    ("demo-trl-helpful", "helpfulness", "demo_trl_helpful.jsonl", "Helpful-style pairs in TRL conversational form."),
]


def load_dataset_demo(created_by: User | None = None) -> list[ExternalSource]:
    sources = []
    for name, focus, filename, description in DEMO_SOURCES:
        source = ExternalSource.objects.filter(name=name).first()
        if source is None:
            with open(FIXTURES / filename, "rb") as fh:
                source = external_source_import(
                    name=name,
                    focus=focus,
                    source=fh,
                    filename=filename,
                    description=description,
                    created_by=created_by,
                )
        sources.append(source)
    return sources
