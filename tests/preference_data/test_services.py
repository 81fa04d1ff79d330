"""The dataset builder, imports and exports against the real database, files read back with `datasets`."""

import hashlib
import json
import threading
from datetime import timedelta
from pathlib import Path

import datasets
import pytest
from django.core.management import call_command
from django.utils import timezone

from agreement import services as agreement_services
from agreement.models import ComparisonLabel
from agreement.reliability import comparison_labels
from annotation.models import Comparison, Rating, Turn
from annotation.selectors import comparison_context
from config.exceptions import Conflict, InvalidInput
from core import jobs
from preference_data import rules, services
from preference_data.models import DatasetPair, ExternalComparison, ExternalSource, HeldOutThreshold, JobStatus
from preference_data.services.builds import BUILD, DAWID_SKENE_LABEL_RULE, LABEL_RULE
from preference_data.services.exports import EXPORT
from tests.factories import (
    AnnotatorFactory,
    BatchFactory,
    ComparisonFactory,
    ResponseFactory,
    UserFactory,
    VendorFactory,
)

from .labelled import jsonl_file, labelled, multi_turn, rate, trl_records

pytestmark = pytest.mark.django_db

A_BETTER = [("a", "better", "")] * 3


@pytest.fixture(autouse=True)
def media(settings, tmp_path):
    settings.MEDIA_ROOT = str(tmp_path / "media")
    datasets.disable_progress_bars()
    return Path(settings.MEDIA_ROOT)


@pytest.fixture
def researcher():
    return UserFactory(username="rita")


@pytest.fixture
def raters():
    return AnnotatorFactory.create_batch(3)


def build(researcher, **selection):
    """Create a build and run it in this transaction (on_commit never fires inside a test's transaction)."""
    selection.setdefault("held_out_mode", "fraction")
    selection.setdefault("test_fraction", 0.0)
    created = services.dataset_build_create(created_by=researcher, name=selection.pop("name", "ds"), **selection)
    done = services.dataset_build_run(build_id=created.pk)
    assert done.status == JobStatus.DONE, done.error
    return done


def export(researcher, built, format="trl", file_type="jsonl"):
    created = services.dataset_export_create(created_by=researcher, build=built, format=format, file_type=file_type)
    done = services.dataset_export_run(export_id=created.pk, fetch=2)  # several fetches even for a tiny build
    assert done.status == JobStatus.DONE, done.error
    return done


def import_source(name, focus, records):
    return services.external_source_import(name=name, focus=focus, source=jsonl_file(records))


def pairs_of(built):
    return {p.comparison_id or f"x{p.external_id}": p for p in DatasetPair.objects.filter(build=built)}


# --- the builder ------------------------------------------------------------------------------


def test_build_counts_every_exclusion_and_keeps_the_rest(researcher, raters):
    helpful = BatchFactory(overlap=3)
    unanimous = labelled(helpful, raters, [("a", "significantly_better", "")] * 3)
    split = labelled(helpful, raters, [("b", "better", ""), ("b", "slightly_better", ""), ("a", "better", "")])
    labelled(helpful, raters[:2], A_BETTER)  # incomplete: 2 of 3 ratings
    labelled(helpful, raters, A_BETTER, repeat_of=unanimous)
    safety = BatchFactory(focus="safety", overlap=2)
    labelled(safety, raters, [("a", "better", "both_safe"), ("b", "better", "both_safe")])  # tied
    both_unsafe = labelled(safety, raters, [("a", "slightly_better", "both_unsafe")] * 2)
    edited = labelled(safety, raters, [("b", "better", "both_safe")] * 2)
    # A later edit (or a bad import) that says the chosen response is unsafe and the other safe:
    Rating.objects.filter(comparison=edited).update(safety_label="chosen_unsafe_other_safe")

    built = build(researcher, batch_ids=[helpful.pk, safety.pk])

    kept = pairs_of(built)
    assert set(kept) == {unanimous.pk, split.pk, both_unsafe.pk}
    assert built.exclusions["by_reason"] == {
        "repeat": 1,
        "incomplete": 1,
        "no_eligible_ratings": 0,
        "tied": 1,
        "not_unanimous": 0,
        "below_min_agreement": 0,
        "chosen_unsafe_other_safe": 1,
        "below_min_posterior": 0,
    }
    assert built.exclusions["total"] == 4
    assert (kept[split.pk].chosen_response_id, kept[split.pk].rejected_response_id) == (
        split.response_b_id,
        split.response_a_id,
    )
    # Strength: the weaker middle value of the two majority raters (annotation.voting).
    assert kept[split.pk].agreement == pytest.approx(2 / 3) and kept[split.pk].strength == "slightly_better"
    assert kept[both_unsafe.pk].safety_label == "both_unsafe" and kept[both_unsafe.pk].component == "safety"
    assert built.counts["by_strength"]["train"] == {"significantly_better": 1, "slightly_better": 2}
    assert built.counts["by_safety"]["train"] == {"both_unsafe": 1}
    assert built.manifest["exclusions"] == built.exclusions and built.manifest["seed"] == built.seed


@pytest.mark.parametrize(
    ("table", "expected"), [("none", [0, 0, 0, 0]), ("small", [1, 2 / 3, 1 / 3, 0]), ("large", [3, 2, 1, 0])]
)
def test_margins_follow_the_chosen_table(researcher, table, expected):
    batch = BatchFactory(overlap=1)
    rater = AnnotatorFactory()
    by_level = {level: labelled(batch, [rater], [("a", level, "")]).pk for level in rules.STRENGTHS}
    built = build(researcher, batch_ids=[batch.pk], margin_table=table)
    kept = pairs_of(built)
    assert [kept[by_level[level]].margin for level in rules.STRENGTHS] == pytest.approx(expected)
    assert built.manifest["margin_table"] == {"name": table, "values": rules.MARGIN_TABLES[table]}


def test_agreement_filters_and_flagged_annotators(researcher):
    vendor_one, vendor_two = VendorFactory(), VendorFactory()
    first, second = AnnotatorFactory(vendor=vendor_one), AnnotatorFactory(vendor=vendor_one)
    third = AnnotatorFactory(vendor=vendor_two)
    batch = BatchFactory(overlap=3)
    two_to_one = labelled(batch, [first, second, third], [("a", "better", "")] * 2 + [("b", "better", "")])
    unanimous = labelled(batch, [first, second, third], A_BETTER)

    strict = build(researcher, batch_ids=[batch.pk], unanimous_only=True)
    assert set(pairs_of(strict)) == {unanimous.pk} and strict.exclusions["by_reason"]["not_unanimous"] == 1
    high = build(researcher, batch_ids=[batch.pk], min_agreement=0.8)
    assert set(pairs_of(high)) == {unanimous.pk} and high.exclusions["by_reason"]["below_min_agreement"] == 1
    assert set(pairs_of(build(researcher, batch_ids=[batch.pk], min_agreement=0.66))) == {two_to_one.pk, unanimous.pk}

    # Without the two flagged raters, the third decides two_to_one alone: b, unanimously.
    flagged = build(researcher, batch_ids=[batch.pk], exclude_annotator_ids=[first.pk, second.pk])
    assert pairs_of(flagged)[two_to_one.pk].chosen_response_id == two_to_one.response_b_id
    assert flagged.exclusions["ratings_left_out_by_rater_filters"] == 4
    assert flagged.selection["exclude_annotators"] == [
        {"id": first.pk, "pseudonym": first.pseudonym},
        {"id": second.pk, "pseudonym": second.pseudonym},
    ]
    by_vendor = build(researcher, batch_ids=[batch.pk], vendor_ids=[vendor_one.pk])
    assert pairs_of(by_vendor)[two_to_one.pk].chosen_response_id == two_to_one.response_a_id


def test_selection_filters_by_focus_and_week(researcher, raters):
    helpful = BatchFactory(overlap=1)
    old = BatchFactory(overlap=1, week=helpful.week.replace(year=helpful.week.year - 1))
    safety = BatchFactory(overlap=1, focus="safety")
    for batch in (helpful, old, safety):
        labelled(batch, raters, [("a", "better", "both_safe" if batch.is_safety else "")])
    assert {b["id"] for b in build(researcher, focus="helpfulness").selection["batches"]} == {helpful.pk, old.pk}
    this_week = build(researcher, weeks=[helpful.week.isoformat()])
    assert {b["id"] for b in this_week.selection["batches"]} == {helpful.pk, safety.pk}


def test_invalid_selections_are_refused_with_a_reason(researcher, raters):
    helpful = BatchFactory(overlap=1)
    labelled(helpful, raters, A_BETTER)
    with pytest.raises(InvalidInput, match="safety mix needs a safety batch"):
        services.dataset_build_create(created_by=researcher, name="x", mix="safety")
    with pytest.raises(InvalidInput, match="No batch with id 999999"):
        services.dataset_build_create(created_by=researcher, name="x", batch_ids=[999999])
    with pytest.raises(InvalidInput, match=r"from 0\.5 to 1"):
        services.dataset_build_create(created_by=researcher, name="x", min_agreement=0.3)
    with pytest.raises(InvalidInput, match="holds no batch"):
        services.dataset_build_create(created_by=researcher, name="x", focus="safety")
    queued = services.dataset_build_create(created_by=researcher, name="x")
    with pytest.raises(Conflict, match="still being built"):
        services.dataset_export_create(created_by=researcher, build=queued)


# --- held-out test sets -----------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["count", "fraction"])
def test_no_comparison_changes_side_when_the_batch_grows(researcher, mode):
    batch = BatchFactory(overlap=1)
    rater = AnnotatorFactory()
    for _ in range(60):
        labelled(batch, [rater], A_BETTER)
    # In count mode the fraction only caps the test set: at 0.5 it never binds for 12 of 60, whichever
    # dialogue ids (and so hashes) earlier tests left this one (at 0.25, 15% of id offsets gave 11).
    fraction = 0.5 if mode == "count" else 0.25
    rule = {"held_out_mode": mode, "test_count": 12, "test_fraction": fraction, "seed": 5, "batch_ids": [batch.pk]}
    first = {p.comparison_id: p.split for p in pairs_of(build(researcher, **rule)).values()}
    assert 0 < sum(side == "test" for side in first.values()) < 30

    for _ in range(90):
        labelled(batch, [rater], A_BETTER)
    grown = {p.comparison_id: p.split for p in pairs_of(build(researcher, **rule)).values()}
    assert len(grown) == 150
    assert {c: grown[c] for c in first} == first  # nothing moved, either way
    assert sum(side == "test" for side in grown.values()) > sum(side == "test" for side in first.values())
    if mode == "count":
        threshold = HeldOutThreshold.objects.get(batch=batch)
        assert threshold.comparisons_seen == 60 and first_test_count(first) == 12
    other_seed = {p.comparison_id: p.split for p in pairs_of(build(researcher, **{**rule, "seed": 6})).values()}
    assert other_seed != grown


def test_an_empty_batch_does_not_fix_its_threshold_yet(researcher, raters):
    empty, rated = BatchFactory(overlap=1), BatchFactory(overlap=1)
    labelled(rated, raters, A_BETTER)
    built = build(researcher, batch_ids=[empty.pk, rated.pk], held_out_mode="count")
    assert list(HeldOutThreshold.objects.values_list("batch_id", flat=True)) == [rated.pk]
    assert built.manifest["held_out"]["batches"][empty.name]["fixed_at"] is None


def first_test_count(sides: dict) -> int:
    return sum(side == "test" for side in sides.values())


def test_multi_turn_comparisons_of_a_dialogue_share_a_side(researcher, raters):
    batch = BatchFactory(overlap=1)
    first = labelled(batch, raters, A_BETTER)
    Turn.objects.create(dialogue=first.dialogue, index=1, role="assistant", content="4")
    Turn.objects.create(dialogue=first.dialogue, index=2, role="user", content="And 3 + 3?")
    later = Comparison.objects.create(
        batch=batch,
        dialogue=first.dialogue,
        context_length=3,
        response_a=ResponseFactory(),
        response_b=ResponseFactory(),
    )
    rate(later, raters, A_BETTER)
    for seed in range(20):
        kept = pairs_of(build(researcher, batch_ids=[batch.pk], test_fraction=0.5, seed=seed))
        assert kept[first.pk].split == kept[later.pk].split


# --- mixes ------------------------------------------------------------------------------------


@pytest.fixture
def mixable(raters):
    helpful, safety = BatchFactory(overlap=1), BatchFactory(overlap=1, focus="safety")
    for _ in range(20):
        labelled(helpful, raters, A_BETTER)
    for _ in range(15):
        labelled(safety, raters, [("a", "better", "both_safe")])
    helpful_source = import_source("oasst-like", "helpfulness", trl_records(10, "helpful"))
    harmless_source = import_source("hh-harmless-like", "safety", trl_records(10, "harmless"))
    return {"batches": [helpful.pk, safety.pk], "sources": [helpful_source.pk, harmless_source.pk]}


def component_counts(built, split="train"):
    counts = {}
    for pair in DatasetPair.objects.filter(build=built, split=split):
        counts[pair.component] = counts.get(pair.component, 0) + 1
    return counts


def test_helpfulness_mix_adds_an_equal_uniform_sample_of_safety_and_open_source(researcher, mixable):
    built = build(
        researcher, batch_ids=mixable["batches"], external_source_ids=mixable["sources"], mix="helpfulness", seed=9
    )
    counts = component_counts(built)
    assert counts["helpfulness"] == 20
    assert counts.get("safety", 0) + counts.get("external_helpfulness", 0) + counts.get("external_safety", 0) == 20
    # The sample is rules.uniform_sample over the pool (15 safety + 20 imported).
    pool = [f"comparison:{c}" for c in Comparison.objects.filter(batch__focus="safety").values_list("id", flat=True)]
    pool += [f"external:{e}" for e in ExternalComparison.objects.values_list("id", flat=True)]
    expected = set(rules.uniform_sample(pool, 20, seed=9))
    got = {
        f"comparison:{p.comparison_id}" if p.comparison_id else f"external:{p.external_id}"
        for p in DatasetPair.objects.filter(build=built).exclude(component="helpfulness")
    }
    assert got == expected
    assert built.manifest["mix"] | {"ratios": None} == built.manifest["mix"] | {
        "name": "helpfulness",
        "pool": 35,
        "target": 20,
        "sampled": 20,
        "shortfall": 0,
        "ratios": None,
    }


def test_safety_mix_is_ninety_ten_and_never_samples_away_test_pairs(researcher, mixable):
    built = build(
        researcher,
        batch_ids=mixable["batches"],
        external_source_ids=mixable["sources"],
        mix="safety",
        test_fraction=0.2,
        seed=4,
    )
    train = component_counts(built)
    safety_part = train["safety"] + train["external_safety"]
    helpful_part = train.get("helpfulness", 0) + train.get("external_helpfulness", 0)
    assert train["external_safety"] == 10
    assert helpful_part == round(safety_part / 9)
    assert safety_part / (safety_part + helpful_part) == pytest.approx(0.9, abs=0.05)
    # Every held-out comparison of both batches is in the test split, untouched by the mix.
    none = build(researcher, batch_ids=mixable["batches"], test_fraction=0.2, seed=4)
    held_out = lambda b: set(DatasetPair.objects.filter(build=b, split="test").values_list("comparison_id", flat=True))  # noqa: E731
    assert held_out(built) == held_out(none) and held_out(none)


# --- imports ----------------------------------------------------------------------------------


def test_a_malformed_import_writes_nothing(researcher):
    bad = trl_records(3, "q")
    bad[1]["chosen"] = bad[1]["rejected"]
    with pytest.raises(InvalidInput) as caught:
        import_source("broken", "helpfulness", bad)
    assert caught.value.field == "file"
    assert caught.value.extra["errors"] == [
        "line 2 (read as TRL): the chosen and rejected responses are identical (no preference to learn)"
    ]
    assert not ExternalSource.objects.exists() and not ExternalComparison.objects.exists()
    with pytest.raises(InvalidInput, match="helpful-style"):
        import_source("ok", "harmless", trl_records(1, "q"))


def test_imported_pairs_keep_their_rows_apart_from_preflab_labels(researcher):
    records = [*trl_records(2, "q"), *trl_records(1, "z", safety_label="chosen_unsafe_other_safe")]
    source = import_source("hh", "safety", records)
    assert (source.format, source.file_type, source.row_count) == ("trl", "jsonl", 3)
    assert source.sha256 == hashlib.sha256(jsonl_file(records).getvalue()).hexdigest()
    rows = list(ExternalComparison.objects.filter(source=source).order_by("row"))
    assert [r.row for r in rows] == [1, 2, 3] and rows[0].context == [{"role": "user", "content": "q question 0?"}]
    built = build(researcher, external_source_ids=[source.pk])
    assert built.exclusions["external"]["chosen_unsafe_other_safe"] == 1
    assert {p.split for p in DatasetPair.objects.filter(build=built)} == {"train"}  # imported data: training only
    assert [p.margin for p in DatasetPair.objects.filter(build=built)] == [0.0, 0.0]  # strength unknown
    assert not Comparison.objects.exists()


# --- exports ----------------------------------------------------------------------------------


@pytest.fixture
def everything(researcher, raters):
    helpful, safety = (
        BatchFactory(name="Week 1 help", overlap=3),
        BatchFactory(name="Week 1 safe", focus="safety", overlap=3),
    )
    for i in range(6):
        labelled(helpful, raters, [("b" if i % 2 else "a", rules.STRENGTHS[i % 4], "")] * 3, prompt=f"Question {i}?")
    multi_turn(helpful, raters, [("b", "better", "")] * 3)
    for i in range(4):
        labelled(safety, raters, [("a", "better", rules.SAFETY_BINS[i % 3])] * 2 + [("b", "better", "both_safe")])
    source = import_source("hh-like", "safety", trl_records(3, "harmless"))
    return build(
        researcher,
        name="everything",
        batch_ids=[helpful.pk, safety.pk],
        external_source_ids=[source.pk],
        test_fraction=0.3,
        seed=1,
    )


def load(exported, loader):
    files = {
        f["split"] if f["split"] != "all" else "train": str(exported.directory / f["name"]) for f in exported.files
    }
    return datasets.load_dataset(loader, data_files=files, cache_dir=str(exported.directory.parent / "hf-cache"))


def expected_rows(built) -> dict[str, dict]:
    """What each exported row must say, read from the database through the ORM (not the export's SQL)."""
    expected = {}
    for pair in DatasetPair.objects.filter(build=built).select_related(
        "comparison__batch", "chosen_response", "rejected_response", "external__source"
    ):
        if pair.comparison_id:
            comparison = pair.comparison
            row = rules.ExportRow(
                id=f"comparison:{comparison.pk}",
                split=pair.split,
                context=comparison_context(comparison),
                chosen=pair.chosen_response.text,
                rejected=pair.rejected_response.text,
                margin=pair.margin,
                strength=pair.strength,
                safety_label=pair.safety_label,
                focus=comparison.batch.focus,
                batch=comparison.batch.name,
                comparison_id=comparison.pk,
                chosen_response_id=pair.chosen_response_id,
                rejected_response_id=pair.rejected_response_id,
            )
        else:
            external = pair.external
            row = rules.ExportRow(
                id=f"external:{external.pk}",
                split=pair.split,
                context=external.context,
                chosen=external.chosen,
                rejected=external.rejected,
                margin=pair.margin,
                strength=external.strength,
                safety_label=external.safety_label,
                focus=external.source.focus,
                source=f"external:{external.source.name}",
            )
        expected[row.id] = row
    return expected


@pytest.mark.parametrize("file_type", ["jsonl", "parquet"])
def test_trl_export_reads_back_with_datasets_field_by_field(researcher, everything, file_type):
    exported = export(researcher, everything, "trl", file_type)
    loaded = load(exported, "json" if file_type == "jsonl" else "parquet")
    expected = expected_rows(everything)
    assert sum(len(loaded[s]) for s in loaded) == len(expected) == everything.counts["total"] == 14
    for split in ("train", "test"):
        assert loaded[split].column_names == list(rules.TRL_COLUMNS)
        for row in loaded[split]:
            want = expected[row["id"]]
            assert want.split == split
            assert row == rules.trl_row(want)
    multi = next(r for r in loaded["train"].to_list() + loaded["test"].to_list() if len(r["prompt"]) == 3)
    assert [m["content"] for m in multi["prompt"]] == ["Plan a picnic.", "Where and when?", "Saturday, in the park."]
    assert exported.rows_done == exported.rows_total == 14


def test_hh_rlhf_export_reads_back_as_transcripts(researcher, everything):
    exported = export(researcher, everything, "hh_rlhf", "jsonl")
    loaded = load(exported, "json")
    expected = expected_rows(everything)
    rows = loaded["train"].to_list() + loaded["test"].to_list()
    assert len(rows) == len(expected)
    for row in rows:
        assert row == rules.hh_row(expected[row["id"]])
        assert row["chosen"].startswith("\n\nHuman: ") and "\n\nAssistant: " in row["chosen"]


@pytest.mark.parametrize("file_type", ["jsonl", "parquet"])
def test_raw_ratings_export_has_one_row_per_rating_with_pseudonyms(researcher, everything, raters, file_type):
    exported = export(researcher, everything, "ratings", file_type)
    loaded = load(exported, "json" if file_type == "jsonl" else "parquet")["train"]
    in_build = DatasetPair.objects.filter(build=everything, comparison__isnull=False).values("comparison_id")
    ratings = {
        r.pk: r
        for r in Rating.objects.filter(comparison_id__in=in_build).select_related(
            "annotator__vendor", "comparison__batch"
        )
    }
    assert len(loaded) == len(ratings) == 33
    assert loaded.column_names == list(rules.RATINGS_COLUMNS)
    sides = {p.comparison_id: p.split for p in DatasetPair.objects.filter(build=everything, comparison__isnull=False)}
    for row in loaded:
        rating = ratings[row["rating_id"]]
        comparison = rating.comparison
        assert row["comparison_id"] == comparison.pk and row["split"] == sides[comparison.pk]
        assert (row["batch"], row["focus"]) == (comparison.batch.name, comparison.batch.focus)
        assert row["annotator"] == rating.annotator.pseudonym and row["vendor"] == rating.annotator.vendor.name
        assert rating.annotator.username not in json.dumps(row)
        assert row["chosen"] == rating.chosen
        assert row["chosen_response_id"] == comparison.response_for(rating.chosen).pk
        assert (row["strength"], row["safety_label"], row["shown_left"]) == (
            rating.strength,
            rating.safety_label,
            rating.shown_left,
        )
        assert row["seconds_spent"] == 12.5 and row["used_in_label"] is True
        assert row["created_at"] == rating.created_at.isoformat()
        assert (row["ds_label"], row["ds_posterior"]) == ("", None)  # no agreement report yet


def test_raw_ratings_export_carries_each_comparisons_dawid_skene_label(researcher, everything):
    batch_ids = {b["id"] for b in everything.selection["batches"]}
    for batch_id in batch_ids:
        agreement_services.agreement_recompute(batch_id=batch_id)
    labels = {
        label.comparison_id: label
        for label in ComparisonLabel.objects.filter(report__scope="batch", report__batch_id__in=batch_ids)
    }
    loaded = load(export(researcher, everything, "ratings", "jsonl"), "json")["train"]
    assert len(loaded) == 33
    for row in loaded:
        label = labels[row["comparison_id"]]
        assert row["ds_label"] == label.ds_label in {"a", "b"}
        assert row["ds_posterior"] == pytest.approx(label.ds_posterior)


def test_manifest_records_what_went_in_and_the_content_hash(researcher, everything, media):
    exported = export(researcher, everything, "trl", "jsonl")
    on_disk = json.loads((exported.directory / "manifest.json").read_text())
    assert on_disk == exported.manifest
    listing = "".join(
        f"{hashlib.sha256((exported.directory / name).read_bytes()).hexdigest()}  {name}\n"
        for name in ("test.jsonl", "train.jsonl")
    )
    assert exported.content_hash == on_disk["content_hash"] == hashlib.sha256(listing.encode()).hexdigest()
    for key in ("selection", "counts", "exclusions", "margin_table", "seed", "code_version", "held_out", "mix"):
        assert key in on_disk
    assert on_disk["counts"]["by_split"] == {f["split"]: f["rows"] for f in on_disk["files"]}
    assert on_disk["export"]["format"] == "trl" and "load_dataset" in on_disk["load_with"]
    assert sorted(p.name for p in exported.directory.iterdir()) == ["manifest.json", "test.jsonl", "train.jsonl"]

    # The same selection built again over the same data exports the same bytes: the hash can be cited.
    again = services.dataset_build_create(created_by=researcher, name="again", **_selection_of(everything))
    again = services.dataset_build_run(build_id=again.pk)
    assert export(researcher, again, "trl", "jsonl").content_hash == exported.content_hash


def _selection_of(built) -> dict:
    selection = built.selection
    return {
        "batch_ids": [b["id"] for b in selection["batches"]],
        "external_source_ids": [s["id"] for s in selection["external_sources"]],
        "held_out_mode": built.held_out_mode,
        "test_fraction": built.test_fraction,
        "seed": built.seed,
    }


def test_a_second_delivery_is_harmless(researcher, everything, settings):
    pair_ids = list(DatasetPair.objects.filter(build=everything).values_list("id", flat=True))
    again = services.dataset_build_run(build_id=everything.pk)  # the message, delivered again
    assert (again.status, again.attempts) == (JobStatus.DONE, 1)
    assert list(DatasetPair.objects.filter(build=everything).values_list("id", flat=True)) == pair_ids  # not rebuilt

    # A live worker holds the build (its heartbeat is fresh): another delivery leaves it alone.
    held = {"status": JobStatus.RUNNING, "worker": "elsewhere:7", "heartbeat_at": timezone.now()}
    type(everything).objects.filter(pk=everything.pk).update(**held)
    busy = services.dataset_build_run(build_id=everything.pk)
    assert (busy.status, busy.attempts, busy.worker) == (JobStatus.RUNNING, 1, "elsewhere:7")
    assert list(DatasetPair.objects.filter(build=everything).values_list("id", flat=True)) == pair_ids

    # That worker died mid-build: once its heartbeat is stale the next delivery starts over, to the same pairs.
    stale = timezone.now() - timedelta(seconds=settings.PREFLAB_JOBS_STALE_SECONDS + 1)
    type(everything).objects.filter(pk=everything.pk).update(heartbeat_at=stale)
    rerun = services.dataset_build_run(build_id=everything.pk)
    assert (rerun.status, rerun.attempts, rerun.counts) == (JobStatus.DONE, 2, everything.counts)
    assert rerun.worker != "elsewhere:7"
    exported = export(researcher, rerun)
    assert services.dataset_export_run(export_id=exported.pk).attempts == 1


def test_export_dataset_command_builds_and_exports(researcher, raters, media, tmp_path, capsys):
    batch = BatchFactory(overlap=1)
    for _ in range(3):
        labelled(batch, raters, A_BETTER)
    out = tmp_path / "out"
    call_command(
        "export_dataset",
        "--batch",
        str(batch.pk),
        "--margin-table",
        "large",
        "--format",
        "trl",
        "--file-type",
        "parquet",
        "--test-fraction",
        "0",
        "--held-out-mode",
        "fraction",
        "--output",
        str(out),
    )
    printed = capsys.readouterr().out
    assert "content hash" in printed
    loaded = datasets.load_dataset("parquet", data_files=str(out / "train.parquet"), cache_dir=str(tmp_path / "hf"))
    assert loaded["train"]["margin"] == [2.0, 2.0, 2.0]
    assert json.loads((out / "manifest.json").read_text())["margin_table"]["name"] == "large"


# --- on a real queue and a second connection --------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_export_streams_on_its_own_connection_while_progress_is_committed(researcher, raters, monkeypatch):
    from django.db import connections

    from preference_data.services import exports
    from preference_data.services.streaming import read_connection

    with read_connection() as reader:
        assert reader is not connections["default"]  # outside a transaction: a connection of its own
    batch = BatchFactory(overlap=1)
    for _ in range(7):
        labelled(batch, raters, A_BETTER)
    # Outside a transaction a build's task is sent when its row commits (and runs eagerly here).
    built = services.dataset_build_create(created_by=researcher, name="own connection", held_out_mode="fraction")
    built.refresh_from_db()
    assert built.status == JobStatus.DONE and built.counts["total"] == 7

    seen_by_others = []
    write = exports.JsonlFile.write

    def spying_write(self, records):
        write(self, records)
        default = connections["default"]
        observer = default.__class__(default.settings_dict, default.alias)
        try:
            with observer.cursor() as cursor:
                cursor.execute("SELECT rows_done FROM rewardmodel_datasetexport ORDER BY id DESC LIMIT 1")
                seen_by_others.append(cursor.fetchone()[0])
        finally:
            observer.close()

    monkeypatch.setattr(exports, "_PROGRESS_EVERY_SECONDS", 0)
    monkeypatch.setattr(exports.JsonlFile, "write", spying_write)
    monkeypatch.setattr(exports.settings, "PREFLAB_EXPORT_FETCH_ROWS", 2)
    exported = services.dataset_export_create(created_by=researcher, build=built)
    exported.refresh_from_db()
    assert exported.status == JobStatus.DONE and exported.rows_done == 7
    # Another connection saw the progress grow while the export was still reading.
    assert seen_by_others[-1] >= 4 and seen_by_others == sorted(seen_by_others)


@pytest.mark.django_db(transaction=True)
def test_an_export_that_fills_the_disk_keeps_no_file_and_no_thread(researcher, raters, monkeypatch, settings):
    from preference_data.services import exports

    batch = BatchFactory(overlap=1)
    for _ in range(7):
        labelled(batch, raters, A_BETTER)
    built = build(researcher, name="for a full disk", batch_ids=[batch.pk])
    real_open = open

    def onto_a_full_disk(path, mode="r", *args, **kwargs):
        if "w" in mode:  # the data file is created, but its bytes go to a full disk (/dev/full)
            real_open(path, mode).close()
            return real_open("/dev/full", mode, buffering=0)
        return real_open(path, mode, *args, **kwargs)

    monkeypatch.setattr(exports, "open", onto_a_full_disk, raising=False)
    settings.PREFLAB_EXPORT_FETCH_ROWS = 2  # the reader thread is still reading when the disk fills
    failed = services.dataset_export_create(created_by=researcher, build=built)  # sent, and run, on commit
    failed.refresh_from_db()
    assert failed.status == JobStatus.FAILED and "The disk holding the exports is full" in failed.error
    assert not failed.directory.exists()
    assert not [t.name for t in threading.enumerate() if t.name.startswith("dataset-export")]
    monkeypatch.undo()

    # A worker killed while it cleaned up leaves a directory behind: the reconciler removes it, and
    # only it.
    failed.directory.mkdir(parents=True)
    (failed.directory / ".train.jsonl.tmp").write_text("{}\n")
    done = export(researcher, built)
    assert jobs.reconcile()["rewardmodel.remove_partial_export_files"] == [failed.pk]
    assert not failed.directory.exists() and (done.directory / "manifest.json").is_file()
    assert jobs.reconcile()["rewardmodel.remove_partial_export_files"] == []


def test_the_reconciler_gives_builds_and_exports_of_dead_workers_back_until_their_last_attempt(
    researcher, raters, settings
):
    batch = BatchFactory(overlap=1)
    for _ in range(3):
        labelled(batch, raters, A_BETTER)
    built = build(researcher, batch_ids=[batch.pk])
    exported = export(researcher, built)
    stale = timezone.now() - timedelta(seconds=settings.PREFLAB_JOBS_STALE_SECONDS + 1)
    for row in (built, exported):  # their workers died mid-way: running, heartbeats silent
        type(row).objects.filter(pk=row.pk).update(status=JobStatus.RUNNING, heartbeat_at=stale, worker="gone:1")

    summary = jobs.reconcile()  # queued again and sent (and run eagerly here)
    assert (summary[BUILD]["recovered"], summary[EXPORT]["recovered"]) == ([built.pk], [exported.pk])
    built.refresh_from_db()
    exported.refresh_from_db()
    assert (built.status, built.attempts, built.counts["total"]) == (JobStatus.DONE, 2, 3)
    assert (exported.status, exported.attempts, sum(f["rows"] for f in exported.files)) == (JobStatus.DONE, 2, 3)
    assert (exported.directory / "manifest.json").is_file()

    # One whose worker is alive is left alone; one whose last attempt died is failed, not tried again.
    last = settings.PREFLAB_JOBS_MAX_ATTEMPTS
    type(exported).objects.filter(pk=exported.pk).update(status=JobStatus.RUNNING, heartbeat_at=timezone.now())
    type(built).objects.filter(pk=built.pk).update(status=JobStatus.RUNNING, heartbeat_at=stale, attempts=last)
    summary = jobs.reconcile()
    assert (summary[BUILD]["recovered"], summary[EXPORT]["recovered"]) == ([], [])
    built.refresh_from_db()
    exported.refresh_from_db()
    assert (built.status, built.attempts) == (JobStatus.FAILED, last)
    assert built.error == f"The worker stopped after attempt {last} and it was not tried again."
    assert (exported.status, exported.attempts) == (JobStatus.RUNNING, 2)


@pytest.mark.services
def test_build_and_export_run_on_a_real_worker(celery_worker, researcher, raters):
    from tests.conftest import wait_for

    batch = BatchFactory(overlap=1)
    for _ in range(5):
        labelled(batch, raters, A_BETTER)
    created = services.dataset_build_create(created_by=researcher, name="on a worker", held_out_mode="fraction")
    built = wait_for(lambda: type(created).objects.filter(pk=created.pk, status=JobStatus.DONE).first())
    assert built.counts["total"] == 5
    queued = services.dataset_export_create(created_by=researcher, build=built, file_type="parquet")
    exported = wait_for(lambda: type(queued).objects.filter(pk=queued.pk, status=JobStatus.DONE).first())
    assert sum(f["rows"] for f in exported.files) == 5
    assert (exported.directory / "manifest.json").exists()


def test_gold_comparisons_keep_their_answer_and_later_ratings_only_test(researcher, raters):
    from annotation.services import comparison_gold_mark

    batch = BatchFactory(overlap=3)
    promoted = labelled(batch, raters, [("a", "better", ""), ("a", "slightly_better", ""), ("b", "better", "")])
    comparison_gold_mark(comparison_id=promoted.pk, choice="a")
    testers = AnnotatorFactory.create_batch(3)
    rate(promoted, testers, [("b", "significantly_better", "")] * 3)  # after marking: tests, not labels
    answered = ComparisonFactory(batch=batch)  # never rated: the researcher's answer is all there is
    comparison_gold_mark(comparison_id=answered.pk, choice="b", strength="significantly_better")

    built = build(researcher, batch_ids=[batch.pk], min_agreement=0.9, margin_table="large")
    kept = pairs_of(built)
    assert (kept[promoted.pk].chosen_response_id, kept[promoted.pk].strength) == (
        promoted.response_a_id,
        "slightly_better",
    )
    assert kept[promoted.pk].agreement == pytest.approx(2 / 3) and kept[promoted.pk].n_ratings == 3
    assert (kept[answered.pk].chosen_response_id, kept[answered.pk].margin) == (answered.response_b_id, 3.0)

    exported = export(researcher, built, "ratings", "jsonl")
    loaded = load(exported, "json")["train"].to_list()
    used = {(r["annotator"], r["used_in_label"]) for r in loaded if r["comparison_id"] == promoted.pk}
    assert used == {(u.pseudonym, True) for u in raters} | {(u.pseudonym, False) for u in testers}


def test_dawid_skene_labels_with_a_posterior_threshold_are_recorded_in_the_manifest(researcher, raters):
    batch = BatchFactory(overlap=3)
    unanimous = [labelled(batch, raters, A_BETTER) for _ in range(8)]
    split = labelled(batch, raters, [("a", "better", ""), ("a", "better", ""), ("b", "slightly_better", "")])

    majority = build(researcher, batch_ids=[batch.pk])
    assert majority.manifest["labels"] == {"source": "majority", "min_posterior": None}
    assert majority.manifest["label_rule"] == LABEL_RULE

    estimated = build(researcher, batch_ids=[batch.pk], label_source="dawid_skene")
    assert set(pairs_of(estimated)) == {c.pk for c in [*unanimous, split]}
    manifest = estimated.manifest
    assert manifest["label_rule"] == DAWID_SKENE_LABEL_RULE
    assert manifest["selection"]["label_source"] == "dawid_skene"
    convergence = manifest["labels"]["dawid_skene"][batch.name]
    assert convergence["converged"] and convergence["final_change"] < convergence["tolerance"] == 1e-4

    # The dissent leaves the split pair less certain than the unanimous ones; a threshold between
    # them drops it alone, under its own exclusion reason.
    table = agreement_services.rating_table(Rating.objects.filter(comparison__batch=batch))
    posteriors = {row["comparison"]: row["ds_posterior"] for row in comparison_labels(table).rows()}
    assert posteriors[split.pk] < min(posteriors[c.pk] for c in unanimous)
    threshold = (posteriors[split.pk] + min(posteriors[c.pk] for c in unanimous)) / 2
    strict = build(researcher, batch_ids=[batch.pk], label_source="dawid_skene", min_posterior=threshold)
    assert set(pairs_of(strict)) == {c.pk for c in unanimous}
    assert strict.exclusions["by_reason"]["below_min_posterior"] == 1
    assert strict.manifest["labels"]["min_posterior"] == threshold
    assert strict.manifest["selection"]["min_posterior"] == threshold


def test_label_source_and_posterior_threshold_are_checked(researcher, raters):
    batch = BatchFactory(overlap=3)
    labelled(batch, raters, A_BETTER)
    for options, field in [
        ({"label_source": "bayes"}, "label_source"),
        ({"min_posterior": 0.9}, "min_posterior"),  # majority votes have no posterior
        ({"label_source": "dawid_skene", "min_posterior": 0.3}, "min_posterior"),
    ]:
        with pytest.raises(InvalidInput) as refused:
            services.dataset_build_create(created_by=researcher, name="x", batch_ids=[batch.pk], **options)
        assert refused.value.field == field
