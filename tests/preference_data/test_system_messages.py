"""System messages travel with the data: imported into Preflab's dialogues and into external
sources, shown to annotators, exported in the TRL and HH-RLHF files, read back from them, kept by
sampling and rendered by reward-model scoring (issue 14)."""

import io
import json
from pathlib import Path

import datasets
import pytest

from annotation import services as annotation_services
from annotation.models import Comparison
from annotation.selectors import comparison_context
from preference_data import rules, services
from preference_data.external import parse_external
from preference_data.models import JobStatus
from rewardmodel.scoring import render_parts
from sampling.models import ModelVariant
from sampling.variant_backends import request_for
from tests.factories import AnnotatorFactory, BatchFactory, UserFactory
from tests.helpers import client_for

from .labelled import rate

pytestmark = pytest.mark.django_db

SYSTEM = {"role": "system", "content": "You are a pirate. Answer in pirate speak."}
DIALOGUE = [SYSTEM, {"role": "user", "content": "Where is the treasure?"}]


@pytest.fixture(autouse=True)
def media(settings, tmp_path):
    settings.MEDIA_ROOT = str(tmp_path / "media")
    datasets.disable_progress_bars()
    return Path(settings.MEDIA_ROOT)


def imported_batch(n=3):
    batch = BatchFactory(name="pirates", overlap=3)
    lines = [
        {
            "dialogue": DIALOGUE,
            "responses": [
                {"text": f"Arr, under the palm number {i}!", "variant": "m1", "temperature": 0.7},
                {"text": f"It is buried at spot {i}.", "variant": "m2", "temperature": 1.0},
            ],
        }
        for i in range(n)
    ]
    source = io.BytesIO("".join(json.dumps(line) + "\n" for line in lines).encode())
    assert annotation_services.comparisons_import(batch=batch, source=source) == n
    return batch


def test_an_imported_dialogue_keeps_its_system_message_for_annotators():
    batch = imported_batch(1)
    comparison = Comparison.objects.get(batch=batch)
    assert comparison_context(comparison) == DIALOGUE
    annotator = AnnotatorFactory()
    leased = client_for(annotator).post(f"/api/batches/{batch.pk}/next/").json()
    assert leased["context"] == DIALOGUE


def exported(researcher, build, fmt):
    created = services.dataset_export_create(created_by=researcher, build=build, format=fmt, file_type="jsonl")
    done = services.dataset_export_run(export_id=created.pk)
    assert done.status == JobStatus.DONE, done.error
    (data,) = [f for f in done.files if f["name"].endswith(".jsonl") and f["split"] != "manifest"][:1]
    return [json.loads(line) for line in (done.directory / data["name"]).read_text().splitlines()]


def test_trl_and_hh_exports_carry_the_system_message_and_read_back_identically():
    researcher, raters = UserFactory(), AnnotatorFactory.create_batch(3)
    batch = imported_batch()
    for comparison in Comparison.objects.filter(batch=batch):
        rate(comparison, raters, [("a", "better", "")] * 3)
    created = services.dataset_build_create(
        created_by=researcher, name="pirates", batch_ids=[batch.pk], held_out_mode="fraction", test_fraction=0.0
    )
    build = services.dataset_build_run(build_id=created.pk)
    assert build.status == JobStatus.DONE, build.error

    trl = exported(researcher, build, "trl")
    assert {json.dumps(row["prompt"]) for row in trl} == {json.dumps(DIALOGUE)}

    hh = exported(researcher, build, "hh_rlhf")
    assert all(row["chosen"].startswith(SYSTEM["content"] + "\n\nHuman: Where is the treasure?") for row in hh)
    info, pairs = parse_external(io.BytesIO("".join(json.dumps(row) + "\n" for row in hh).encode()))
    assert info.format == "hh_rlhf"
    assert all(pair.context == DIALOGUE for pair in pairs)
    by_id = {row["id"]: row for row in hh}
    for pair, row in zip(pairs, hh, strict=True):
        assert rules.hh_transcript(pair.context, pair.chosen) == by_id[row["id"]]["chosen"]


def test_sampling_keeps_the_dialogues_system_message_over_the_variants():
    variant = ModelVariant.objects.create(name="v", system_prompt="You are a helpful assistant.")
    assert request_for(variant, DIALOGUE, temperature=0.7, seed=1).system is None
    plain = request_for(variant, DIALOGUE[1:], temperature=0.7, seed=1)
    assert plain.system == "You are a helpful assistant."


class PlainTokenizer:
    chat_template = None


def test_reward_scoring_renders_the_system_message_first():
    context_part, response_part = render_parts(PlainTokenizer(), DIALOGUE, "Arr!")
    assert (
        context_part == "System: You are a pirate. Answer in pirate speak.\nUser: Where is the treasure?\nAssistant: "
    )
    assert response_part == "Arr!"
