"""The dataset builder: from a selection of labels to frozen `DatasetPair` rows, counts and a manifest.

The rules are in `preference_data.rules`; this module reads the database in keyset-paginated chunks
(memory does not grow with the batch), writes each chunk's pairs with the progress in one short
transaction (so the page sees progress as it goes), then applies the mix and counts in SQL.

Redelivery: the task claims the build by moving it from queued (or running, when a worker died
mid-build) to running; a build that is done or failed is left alone. A rerun deletes the pairs
an interrupted run wrote and starts over; the result depends only on the data and the seed.
"""

import logging
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from datetime import date

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.db.models import Count, F, Q
from django.utils import timezone

from accounts.models import User, Vendor
from annotation.models import Batch, Comparison, ComparisonStatus, Focus, Rating
from config.exceptions import DomainError, InvalidInput, NotFound
from core import jobs
from sampling.models import PairSelection

from .. import rules
from ..models import (
    DatasetBuild,
    DatasetPair,
    ExternalComparison,
    ExternalSource,
    HeldOutMode,
    HeldOutThreshold,
    JobStatus,
    MarginTable,
    Mix,
)
from .manifests import code_version

logger = logging.getLogger(__name__)

LABEL_RULE = (
    "Majority vote of the eligible ratings (annotation.voting): the response more raters chose; strength = the "
    "median strength of its supporters (the weaker middle value when even); safety = their most common bin. "
    "Agreement = share of eligible raters who chose the majority response. Gold comparisons: the known answer "
    "(its strength, else the supporters' median), from the ratings given before it was marked gold; the "
    "agreement filters do not apply to them."
)
DAWID_SKENE_LABEL_RULE = (
    "Dawid-Skene (agreement.aggregation, Dawid & Skene 1979), fitted per batch on the eligible ratings (the rater "
    "filters applied; repeats and ratings of gold made after it was marked left out), EM run until no posterior "
    "moves by more than 1e-4: the label is the response with the larger posterior; pairs whose posterior is below "
    "the minimum posterior are left out; a tied vote is decided by the estimate. Strength = the median strength of "
    "the raters who chose the label (unknown, margin 0, when none did); safety = their most common bin. Agreement = "
    "share of eligible raters who chose the label. Gold comparisons: the known answer, as with majority labels."
)


def mix_ratios() -> rules.MixRatios:
    return rules.MixRatios(
        helpfulness_other_ratio=settings.PREFLAB_MIX_HELPFULNESS_OTHER_RATIO,
        safety_share=settings.PREFLAB_MIX_SAFETY_SHARE,
    )


def _ids(values: Iterable | None, field: str) -> list[int]:
    try:
        return sorted({int(v) for v in values or ()})
    except (TypeError, ValueError):
        raise InvalidInput(f"{field} must be a list of ids.", field=field) from None


def _resolve(model, ids: list[int], field: str, what: str) -> list:
    found = {obj.pk: obj for obj in model.objects.filter(pk__in=ids)}
    missing = [i for i in ids if i not in found]
    if missing:
        raise InvalidInput(f"No {what} with id {', '.join(map(str, missing))}.", field=field)
    return [found[i] for i in ids]


def _weeks(weeks: Iterable | None) -> list[date]:
    parsed = []
    for week in weeks or ():
        try:
            parsed.append(week if isinstance(week, date) else date.fromisoformat(str(week)))
        except ValueError:
            raise InvalidInput(
                f"{week!r} is not a date (YYYY-MM-DD, the Monday of a batch's week).", field="weeks"
            ) from None
    return sorted(set(parsed))


def dataset_build_create(
    *,
    created_by: User | None,
    name: str,
    batch_ids: Iterable[int] | None = None,
    focus: str = "",
    weeks: Iterable | None = None,
    vendor_ids: Iterable[int] | None = None,
    min_agreement: float | None = None,
    unanimous_only: bool = False,
    pair_selections: Iterable[str] | None = None,
    exclude_annotator_ids: Iterable[int] | None = None,
    external_source_ids: Iterable[int] | None = None,
    mix: str = Mix.NONE,
    margin_table: str = MarginTable.SMALL,
    seed: int | None = None,
    held_out_mode: str = HeldOutMode.COUNT,
    test_count: int | None = None,
    test_fraction: float | None = None,
    label_source: str = rules.MAJORITY,
    min_posterior: float | None = None,
    enqueue: bool = True,
) -> DatasetBuild:
    """Record a build (selection resolved now: "all batches" means the batches that exist now) and queue it.

    No batch ids means every batch that passes the focus and week filters. Imported sources are
    only used when named. Raises InvalidInput for a selection that cannot make the asked-for mix.
    `enqueue=False` leaves the build queued for a caller that runs it itself (the management command).
    """
    name = (name or "").strip()
    if not name:
        raise InvalidInput("Give the dataset a name.", field="name")
    if mix not in Mix.values:
        raise InvalidInput(f"Unknown mix {mix!r}; use one of: {', '.join(Mix.values)}.", field="mix")
    if margin_table not in MarginTable.values:
        raise InvalidInput(
            f"Unknown margin table {margin_table!r}; use one of: {', '.join(MarginTable.values)}.", field="margin_table"
        )
    if held_out_mode not in HeldOutMode.values:
        raise InvalidInput("The held-out mode is 'count' or 'fraction'.", field="held_out_mode")
    if focus and focus not in Focus.values:
        raise InvalidInput(f"Unknown focus {focus!r}; use helpfulness or safety.", field="focus")
    if min_agreement is not None and not 0.5 <= min_agreement <= 1.0:
        raise InvalidInput(
            "Minimum agreement is the share of raters who chose the majority response: from 0.5 to 1.",
            field="min_agreement",
        )
    if label_source not in rules.LABEL_SOURCES:
        raise InvalidInput(
            f"Unknown label source {label_source!r}; use one of: {', '.join(rules.LABEL_SOURCES)}.",
            field="label_source",
        )
    if min_posterior is not None:
        if label_source != rules.DAWID_SKENE:
            raise InvalidInput(
                "A minimum posterior needs Dawid-Skene labels: majority votes have no posterior.",
                field="min_posterior",
            )
        if not 0.5 <= min_posterior <= 1.0:
            raise InvalidInput(
                "The minimum posterior is the probability of the label: from 0.5 to 1.", field="min_posterior"
            )
    wanted_selections = sorted(set(pair_selections or []))
    if unknown := [rule for rule in wanted_selections if rule not in PairSelection.values]:
        raise InvalidInput(
            f"Unknown pair selection {unknown[0]!r}; use {', '.join(PairSelection.values)}.", field="pair_selections"
        )
    test_count = settings.PREFLAB_TEST_COUNT_PER_BATCH if test_count is None else test_count
    test_fraction = settings.PREFLAB_TEST_FRACTION if test_fraction is None else test_fraction
    if test_count < 0:
        raise InvalidInput("The test count per batch cannot be negative.", field="test_count")
    if not 0.0 <= test_fraction <= 0.9:
        raise InvalidInput("The test fraction must be between 0 and 0.9.", field="test_fraction")

    batch_ids = _ids(batch_ids, "batches")
    batches = _resolve(Batch, batch_ids, "batches", "batch") if batch_ids else list(Batch.objects.order_by("id"))
    week_list = _weeks(weeks)
    batches = [b for b in batches if (not focus or b.focus == focus) and (not week_list or b.week in week_list)]
    vendors = _resolve(Vendor, _ids(vendor_ids, "vendors"), "vendors", "vendor")
    excluded = _resolve(User, _ids(exclude_annotator_ids, "exclude_annotators"), "exclude_annotators", "person")
    sources = _resolve(ExternalSource, _ids(external_source_ids, "external_sources"), "external_sources", "source")
    if not batches and not sources:
        raise InvalidInput("The selection holds no batch and no imported source: widen the filters.", field="batches")
    if mix == Mix.HELPFULNESS and not any(b.focus == Focus.HELPFULNESS for b in batches):
        raise InvalidInput("The helpfulness mix needs at least one helpfulness batch in the selection.", field="mix")
    if (
        mix == Mix.SAFETY
        and not any(b.focus == Focus.SAFETY for b in batches)
        and not any(s.focus == Focus.SAFETY for s in sources)
    ):
        raise InvalidInput(
            "The safety mix needs a safety batch or an imported harmless-style (safety) source.", field="mix"
        )

    selection = {
        "batches": [{"id": b.id, "name": b.name, "focus": b.focus, "week": b.week.isoformat()} for b in batches],
        "focus": focus,
        "weeks": [w.isoformat() for w in week_list],
        "vendors": [{"id": v.id, "name": v.name} for v in vendors],
        "min_agreement": min_agreement,
        "unanimous_only": bool(unanimous_only),
        "pair_selections": wanted_selections,
        "label_source": label_source,
        "min_posterior": min_posterior,
        "exclude_annotators": [{"id": u.id, "pseudonym": u.pseudonym} for u in excluded],
        "external_sources": [
            {
                "id": s.id,
                "name": s.name,
                "focus": s.focus,
                "format": s.format,
                "sha256": s.sha256,
                "rows": s.row_count,
                "usage": s.usage,
                "test_fraction": s.test_fraction,
                "split_seed": s.split_seed,
            }
            for s in sources
        ],
    }
    with transaction.atomic():
        build = DatasetBuild.objects.create(
            name=name,
            selection=selection,
            mix=mix,
            margin_table=margin_table,
            seed=settings.PREFLAB_DATASET_SEED if seed is None else seed,
            held_out_mode=held_out_mode,
            test_count=test_count,
            test_fraction=test_fraction,
            created_by=created_by,
        )
        if enqueue:
            jobs.enqueue(BUILD, [build.pk])
    return build


BUILD = "rewardmodel.build"


def dataset_build_run(*, build_id: int) -> DatasetBuild:
    """Run a queued build (the Celery task's body). A second delivery of a finished build, or of one
    that a live worker is building, does nothing."""
    claimed = jobs.claim(BUILD, build_id, started_at=timezone.now(), error="", progress_done=0)
    build = DatasetBuild.objects.filter(pk=build_id).first()
    if build is None:
        raise NotFound(f"No dataset build {build_id}.")
    if claimed is None:
        return build
    try:
        with jobs.heartbeat(BUILD, [build_id]):
            _run(build)
    except Exception as exc:
        if not isinstance(exc, DomainError):
            logger.exception("dataset build %s failed", build_id)
        detail = exc.detail if isinstance(exc, DomainError) else f"{type(exc).__name__}: {exc}"
        DatasetBuild.objects.filter(pk=build_id).update(
            status=JobStatus.FAILED, error=detail, finished_at=timezone.now()
        )
    build.refresh_from_db()
    return build


def label_rules(selection: dict) -> rules.LabelRules:
    """The label rules (agreement floor, unanimity, excluded people, vendors) a build's selection names."""
    vendors = selection.get("vendors") or []
    return rules.LabelRules(
        min_agreement=selection.get("min_agreement"),
        unanimous_only=bool(selection.get("unanimous_only")),
        exclude_annotators=frozenset(a["id"] for a in selection.get("exclude_annotators") or []),
        vendors=frozenset(v["id"] for v in vendors) if vendors else None,
        label_source=selection.get("label_source") or rules.MAJORITY,  # builds made before the option: majority
        min_posterior=selection.get("min_posterior"),
    )


def _count_threshold(build: DatasetBuild, batch_id: int) -> HeldOutThreshold:
    """The batch's count-mode threshold: the stored one, or computed and stored now (first build)."""
    key = {
        "batch_id": batch_id,
        "seed": build.seed,
        "test_count": build.test_count,
        "max_fraction": build.test_fraction,
    }
    stored = HeldOutThreshold.objects.filter(**key).first()
    if stored is not None:
        return stored
    # Every comparison of the batch counts, labelled or not: in pool mode they all exist from the start,
    # so a build made early in the week already fixes the threshold the finished batch needs.
    dialogues = Comparison.objects.filter(batch_id=batch_id, repeat_of__isnull=True).values_list(
        "dialogue_id", flat=True
    )
    seen = 0

    def hashes():
        nonlocal seen
        for dialogue_id in dialogues.iterator(chunk_size=10_000):
            seen += 1
            yield rules.unit_hash(build.seed, rules.split_key(dialogue_id))

    threshold = rules.count_threshold(hashes(), build.test_count, build.test_fraction)
    if seen == 0:  # nothing to keep on one side yet: fix it when the batch has comparisons
        return HeldOutThreshold(**key, threshold=threshold, comparisons_seen=0)
    try:
        with transaction.atomic():
            return HeldOutThreshold.objects.create(**key, threshold=threshold, comparisons_seen=seen)
    except IntegrityError:  # a concurrent build fixed it first: theirs stands
        return HeldOutThreshold.objects.get(**key)


def _held_out(build: DatasetBuild, batches: Sequence[dict]) -> tuple[dict[int, float], dict]:
    thresholds: dict[int, float] = {}
    report = {
        "mode": build.held_out_mode,
        "seed": build.seed,
        "split_key": "dialogue (every comparison of a dialogue is on the same side)",
        "imported_sources": "training only",
        "batches": {},
    }
    if build.held_out_mode == HeldOutMode.FRACTION:
        report["fraction"] = build.test_fraction
        for batch in batches:
            thresholds[batch["id"]] = build.test_fraction
            report["batches"][batch["name"]] = {"threshold": build.test_fraction}
    else:
        report.update(count=build.test_count, max_fraction=build.test_fraction)
        for batch in batches:
            stored = _count_threshold(build, batch["id"])
            thresholds[batch["id"]] = stored.threshold
            report["batches"][batch["name"]] = {
                "threshold": stored.threshold,
                "fixed_at": stored.created_at.isoformat() if stored.pk else None,
                "comparisons_when_fixed": stored.comparisons_seen,
            }
    return thresholds, report


def _write(build: DatasetBuild, new_pairs: list[DatasetPair], processed: int) -> None:
    with transaction.atomic():
        DatasetPair.objects.bulk_create(new_pairs, batch_size=2_000)
        DatasetBuild.objects.filter(pk=build.pk).update(progress_done=F("progress_done") + processed)


def _estimated_labels(batches: Sequence[dict], label_settings: rules.LabelRules) -> dict[int, rules.EstimatedLabels]:
    """Dawid-Skene labels per batch, fitted on the batch's eligible regular ratings."""
    estimates = {}
    fields = ("comparison_id", "annotator_id", "annotator__vendor_id", "chosen", "strength", "safety_label")
    for batch in batches:
        ratings = (
            Rating.objects.filter(comparison__batch_id=batch["id"], comparison__repeat_of__isnull=True)
            # Ratings of a gold comparison made after it was marked test the annotator; they are no label.
            .exclude(comparison__is_gold=True, created_at__gte=F("comparison__gold_marked_at"))
            .order_by()
            .values_list(*fields)
        )
        votes = (
            (comparison_id, rules.RatingVote(annotator_id, chosen, strength, safety, vendor_id))
            for comparison_id, annotator_id, vendor_id, chosen, strength, safety in ratings.iterator(chunk_size=10_000)
        )
        fitted = rules.dawid_skene_labels(votes, label_settings)
        if fitted is not None:
            estimates[batch["id"]] = fitted
    return estimates


def pair_selection_filter(wanted: Sequence[str]) -> Q:
    """Comparisons whose pair was chosen by one of these rules (sampling.pair_rules; the rule is kept
    in each response's generation record). "random" also takes pairs with no record of a rule:
    random draws, and comparisons imported with their responses."""
    chosen_by = [rule for rule in wanted if rule != PairSelection.RANDOM]
    condition = Q(response_a__generation__pair_selection__rule__in=chosen_by) if chosen_by else Q(pk__in=[])
    if PairSelection.RANDOM in wanted:
        condition |= Q(response_a__generation__pair_selection__isnull=True) | Q(
            response_a__generation__pair_selection=None
        )
    return condition


def _preflab_pairs(
    build: DatasetBuild,
    batches: Sequence[dict],
    thresholds: dict[int, float],
    exclusions: Counter,
    labels_report: dict,
) -> int:
    """Stream the selected batches' comparisons in id order, decide each, write the pairs. Returns ratings left out."""
    label_settings = label_rules(build.selection)
    estimates: dict[int, rules.EstimatedLabels] = {}
    if label_settings.label_source == rules.DAWID_SKENE:
        estimates = _estimated_labels(batches, label_settings)
        names = {b["id"]: b["name"] for b in batches}
        labels_report["dawid_skene"] = {names[b]: fitted.convergence for b, fitted in estimates.items()}
    focus_of = {b["id"]: b["focus"] for b in batches}
    chunk = settings.PREFLAB_BUILD_CHUNK_COMPARISONS
    comparisons = Comparison.objects.filter(batch_id__in=list(focus_of)).order_by("id")
    if wanted := build.selection.get("pair_selections"):
        comparisons = comparisons.filter(pair_selection_filter(wanted))
    fields = (
        "id",
        "batch_id",
        "dialogue_id",
        "status",
        "repeat_of_id",
        "response_a_id",
        "response_b_id",
        "is_gold",
        "gold_choice",
        "gold_strength",
        "gold_marked_at",
    )
    rating_fields = (
        "comparison_id",
        "annotator_id",
        "annotator__vendor_id",
        "chosen",
        "strength",
        "safety_label",
        "created_at",
    )
    last_id, dropped = 0, 0
    while rows := list(comparisons.filter(id__gt=last_id).values_list(*fields)[:chunk]):
        first_id, last_id = rows[0][0], rows[-1][0]
        marked = {row[0]: row[10] for row in rows if row[7] and row[10]}
        votes: dict[int, list[rules.RatingVote]] = defaultdict(list)
        ratings = Rating.objects.filter(comparison_id__gte=first_id, comparison_id__lte=last_id).order_by()
        for comparison_id, annotator_id, vendor_id, chosen, strength, safety, at in ratings.values_list(*rating_fields):
            if comparison_id in marked and at >= marked[comparison_id]:
                continue  # rated after the comparison became gold: a test of the annotator, not a label
            votes[comparison_id].append(rules.RatingVote(annotator_id, chosen, strength, safety, vendor_id))
        new_pairs = []
        for row in rows:
            comparison_id, batch_id, dialogue_id, status, repeat_of, response_a, response_b = row[:7]
            is_gold, gold_choice, gold_strength = row[7:10]
            if is_gold and repeat_of is None:
                decision = rules.decide_gold(
                    votes.get(comparison_id, ()), label_settings, choice=gold_choice, strength=gold_strength
                )
            else:
                fitted = estimates.get(batch_id)
                decision = rules.decide(
                    votes.get(comparison_id, ()),
                    label_settings,
                    complete=status == ComparisonStatus.COMPLETE,
                    is_repeat=repeat_of is not None,
                    estimated=fitted.get(comparison_id) if fitted is not None else None,
                )
            dropped += decision.dropped_ratings
            if decision.exclusion is not None:
                exclusions[decision.exclusion.value] += 1
                continue
            label = decision.label
            chosen_id, rejected_id = (response_a, response_b) if label.choice == "a" else (response_b, response_a)
            u = rules.unit_hash(build.seed, rules.split_key(dialogue_id))
            new_pairs.append(
                DatasetPair(
                    build_id=build.pk,
                    split=rules.split_for(u, thresholds[batch_id]),
                    component=focus_of[batch_id],
                    comparison_id=comparison_id,
                    chosen_response_id=chosen_id,
                    rejected_response_id=rejected_id,
                    strength=label.strength,
                    margin=rules.margin_for(label.strength, build.margin_table),
                    safety_label=label.safety_label,
                    agreement=label.agreement,
                    n_ratings=label.n_ratings,
                    sample_key=rules.unit_hash(build.seed, rules.mix_key(f"comparison:{comparison_id}")),
                )
            )
        _write(build, new_pairs, len(rows))
    return dropped


def _external_pairs(build: DatasetBuild, sources: Sequence[dict], exclusions: Counter) -> None:
    chunk = settings.PREFLAB_BUILD_CHUNK_COMPARISONS
    for source in sources:
        component = f"external_{source['focus']}"
        rows_of_source = ExternalComparison.objects.filter(source_id=source["id"]).order_by("id")
        last_id = 0
        fields = ("id", "row", "strength", "safety_label")
        while rows := list(rows_of_source.filter(id__gt=last_id).values_list(*fields)[:chunk]):
            last_id = rows[-1][0]
            new_pairs = []
            for external_id, row, strength, safety in rows:
                if safety == rules.FORBIDDEN_SAFETY_LABEL:
                    exclusions[rules.Exclusion.CHOSEN_UNSAFE_OTHER_SAFE.value] += 1
                    continue
                split = rules.external_split(
                    source.get("usage", rules.TRAIN),  # builds made before sources had a usage: training
                    sha256=source["sha256"],
                    row=row,
                    seed=source.get("split_seed", 0),
                    test_fraction=source.get("test_fraction", 0.0),
                )
                new_pairs.append(
                    DatasetPair(
                        build_id=build.pk,
                        split=split,
                        component=component,
                        external_id=external_id,
                        strength=strength,
                        margin=rules.margin_for(strength, build.margin_table),
                        safety_label=safety,
                        sample_key=rules.unit_hash(build.seed, rules.mix_key(f"external:{external_id}")),
                    )
                )
            _write(build, new_pairs, len(rows))


def _apply_mix(build: DatasetBuild) -> dict:
    train = DatasetPair.objects.filter(build=build, split=rules.TRAIN)
    train_counts = dict(train.values_list("component").annotate(n=Count("id")).order_by())
    plan = rules.mix_plan(build.mix, train_counts, mix_ratios())
    if plan.sample_from:
        pool = train.filter(component__in=plan.sample_from)
        # rules.uniform_sample in SQL: the pool's pairs with the smallest sample keys.
        keep = pool.order_by("sample_key", "id").values("id")[: plan.sample_size]
        pool.exclude(id__in=keep).delete()
    return {
        "name": build.mix,
        "ratios": plan.ratios,
        "train_pairs_before_mix": train_counts,
        "kept_whole": list(plan.keep) if build.mix != Mix.NONE else "everything",
        "sampled_from": list(plan.sample_from),
        "pool": plan.available,
        "target": plan.target,
        "sampled": plan.sample_size,
        "shortfall": plan.shortfall,
    }


def _counts(build: DatasetBuild, batches: Sequence[dict]) -> dict:
    built = DatasetPair.objects.filter(build=build).order_by()
    counts = rules.summarize_counts(
        built.values_list("split", "component", "strength", "safety_label").annotate(n=Count("id"))
    )
    names = {b["id"]: b["name"] for b in batches}
    by_batch: dict[str, dict[str, int]] = {}
    for batch_id, split, n in (
        built.filter(comparison__isnull=False).values_list("comparison__batch_id", "split").annotate(n=Count("id"))
    ):
        by_batch.setdefault(names.get(batch_id, str(batch_id)), {})[split] = n
    counts["by_batch"] = by_batch
    by_source: dict[str, int] = {}
    for source_name, n in (
        built.filter(external__isnull=False).values_list("external__source__name").annotate(n=Count("id"))
    ):
        by_source[source_name] = n
    counts["by_source"] = by_source
    return counts


def _exclusion_report(preflab: Counter, external: Counter, ratings_left_out: int) -> dict:
    reasons = [reason.value for reason in rules.Exclusion]
    by_reason = {reason: preflab[reason] + external[reason] for reason in reasons}
    return {
        "total": sum(by_reason.values()),
        "by_reason": by_reason,
        "preflab": {reason: preflab[reason] for reason in reasons},
        "external": {reason: external[reason] for reason in reasons},
        "explanations": {reason: rules.EXCLUSION_EXPLANATIONS[reason] for reason in reasons},
        "ratings_left_out_by_rater_filters": ratings_left_out,
    }


def build_manifest(build: DatasetBuild) -> dict:
    return {
        "preflab_dataset_build": build.pk,
        "name": build.name,
        "created_by": build.created_by.username if build.created_by else None,
        "created_at": build.created_at.isoformat(),
        "finished_at": build.finished_at.isoformat() if build.finished_at else None,
        "code_version": code_version(),
        "seed": build.seed,
        "selection": build.selection,
        "label_rule": DAWID_SKENE_LABEL_RULE
        if label_rules(build.selection).label_source == rules.DAWID_SKENE
        else LABEL_RULE,
        "labels": build.manifest.get("labels", {"source": rules.MAJORITY, "min_posterior": None}),
        "margin_table": {"name": build.margin_table, "values": rules.MARGIN_TABLES[build.margin_table]},
        "held_out": build.manifest.get("held_out", {}),
        "mix": build.manifest.get("mix", {}),
        "counts": build.counts,
        "exclusions": build.exclusions,
    }


def _refresh_planner_statistics() -> None:
    """A build can add millions of pairs at once. Without fresh statistics PostgreSQL plans an export as
    if the build were tiny and sorts the whole result on disk before the first row; with them it walks
    the (build, id) index and streams."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(f"ANALYZE {connection.ops.quote_name(DatasetPair._meta.db_table)}")


def _run(build: DatasetBuild) -> None:
    DatasetPair.objects.filter(build=build).delete()  # an interrupted earlier attempt starts over
    selection = build.selection
    batches = selection.get("batches") or []
    sources = selection.get("external_sources") or []
    total = Comparison.objects.filter(batch_id__in=[b["id"] for b in batches]).count()
    total += ExternalComparison.objects.filter(source_id__in=[s["id"] for s in sources]).count()
    DatasetBuild.objects.filter(pk=build.pk).update(progress_total=total, progress_done=0)

    thresholds, held_out = _held_out(build, batches)
    preflab_exclusions, external_exclusions = Counter(), Counter()
    label_settings = label_rules(selection)
    labels = {"source": label_settings.label_source, "min_posterior": label_settings.min_posterior}
    ratings_left_out = _preflab_pairs(build, batches, thresholds, preflab_exclusions, labels)
    _external_pairs(build, sources, external_exclusions)
    _refresh_planner_statistics()
    with transaction.atomic():
        mix = _apply_mix(build)
        build.counts = _counts(build, batches)
        build.exclusions = _exclusion_report(preflab_exclusions, external_exclusions, ratings_left_out)
        build.finished_at = timezone.now()
        build.manifest = {"held_out": held_out, "mix": mix, "labels": labels}
        build.manifest = build_manifest(build)
        build.status = JobStatus.DONE
        build.progress_done = build.progress_total = total
        build.save(
            update_fields=[
                "counts",
                "exclusions",
                "manifest",
                "status",
                "finished_at",
                "progress_done",
                "progress_total",
            ]
        )
