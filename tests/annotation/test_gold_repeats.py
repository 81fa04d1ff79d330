"""Gold comparisons and swapped repeats mixed into annotators' queues, through the real services."""

import random

import pytest

from annotation import services
from annotation.models import Assignment, Comparison, ComparisonStatus, Rating
from annotation.selectors import batch_progress, comparisons_for_researcher
from annotation.serializers import AnnotatorAssignmentSerializer
from config.exceptions import Conflict, InvalidInput
from tests import helpers
from tests.factories import AnnotatorFactory, BatchFactory, ComparisonFactory

pytestmark = pytest.mark.django_db


def rate(annotator, assignment, **options):
    return helpers.rate(annotator, assignment, seconds_spent=20, **options)


def take(annotator, batch, rng, *, choose="a"):
    lease = services.assignment_next(annotator=annotator, batch=batch, rng=rng)
    if lease is None:
        return None
    rate(annotator, lease.assignment, choose=choose)
    return lease.assignment


def test_gold_is_mixed_in_at_its_rate_once_per_annotator_and_never_labelled_by_raters():
    batch = BatchFactory(overlap=3, gold_rate=0.3)
    regular = ComparisonFactory.create_batch(40, batch=batch)
    gold = ComparisonFactory.create_batch(5, batch=batch)
    for comparison in gold:
        services.comparison_gold_mark(comparison_id=comparison.pk, choice="b", strength="better")
    annotator = AnnotatorFactory()
    rng = random.Random(4)
    seen = [take(annotator, batch, rng, choose="a") for _ in range(30)]
    gold_seen = [a.comparison_id for a in seen if a.comparison.is_gold]
    assert sorted(gold_seen) == sorted(c.pk for c in gold)  # every gold item once, none twice
    assert len(gold_seen) == 5  # the rate asks for about 9 of 30, but there are only five
    for comparison in Comparison.objects.filter(pk__in=[c.pk for c in gold]):
        # Rated "a" against a gold answer of "b": the label stays the answer.
        assert (comparison.status, comparison.label_choice, comparison.rating_count) == ("complete", "b", 1)
    # Gold never enters the overlap queue: a second annotator with gold_rate 0 never sees it.
    batch.gold_rate = 0
    batch.save()
    other = AnnotatorFactory()
    taken = [take(other, batch, rng) for _ in range(len(regular))]
    assert not any(a.comparison.is_gold for a in taken)
    progress = batch_progress(batch)
    assert (progress["comparisons"], progress["gold"]) == (40, 5)


def test_gold_mixing_rate_is_close_to_the_setting():
    batch = BatchFactory(overlap=1, gold_rate=0.2)
    ComparisonFactory.create_batch(60, batch=batch)
    for comparison in ComparisonFactory.create_batch(30, batch=batch):
        services.comparison_gold_mark(comparison_id=comparison.pk, choice="a")
    annotator = AnnotatorFactory()
    rng = random.Random(11)
    handed = [take(annotator, batch, rng) for _ in range(60)]
    share = sum(a.comparison.is_gold for a in handed) / len(handed)
    assert 0.1 <= share <= 0.3


def test_a_repeat_shows_an_earlier_pair_mirrored_and_stays_out_of_labels():
    batch = BatchFactory(overlap=1, repeat_rate=0.5)
    ComparisonFactory.create_batch(30, batch=batch)
    annotator = AnnotatorFactory()
    rng = random.Random(2)
    handed = []
    while len(handed) < 25:
        handed.append(take(annotator, batch, rng, choose="a"))
    repeats = [a for a in handed if a.comparison.repeat_of_id]
    assert repeats, "with repeat_rate 0.5 some pairs come back"
    first_showing = {a.comparison_id: a for a in handed if not a.comparison.repeat_of_id}
    order = [a.comparison_id for a in handed]
    for assignment in repeats:
        repeat, original = assignment.comparison, Comparison.objects.get(pk=assignment.comparison.repeat_of_id)
        first = first_showing[original.pk]
        assert (repeat.response_a_id, repeat.response_b_id) == (original.response_b_id, original.response_a_id)
        assert (repeat.dialogue_id, repeat.context_length, repeat.batch_id) == (
            original.dialogue_id,
            original.context_length,
            batch.pk,
        )
        # Each response appears on the other side than at the first showing.
        assert repeat.response_for(assignment.left_side) == original.response_for(
            "b" if first.left_side == "a" else "a"
        )
        # Never one of the annotator's last five pairs.
        assert order.index(repeat.pk) - order.index(original.pk) > services.REPEAT_MIN_GAP
        repeat.refresh_from_db()
        assert repeat.status == ComparisonStatus.REPEAT and repeat.label_choice == "" and repeat.rating_count == 1
        original.refresh_from_db()
        assert original.rating_count == 1  # the repeat's rating is not the original's
    assert len({a.comparison.repeat_of_id for a in repeats}) == len(repeats)  # each pair repeated at most once
    assert not comparisons_for_researcher(batch.pk).filter(repeat_of__isnull=False).exists()
    assert batch_progress(batch)["repeats"] == len(repeats)


def test_one_repeat_row_serves_every_annotator_and_looks_like_any_pair():
    batch = BatchFactory(overlap=2, repeat_rate=0.5)
    ComparisonFactory.create_batch(20, batch=batch)
    first, second = AnnotatorFactory.create_batch(2)
    rng = random.Random(8)
    for _ in range(20):
        take(first, batch, rng)
        take(second, batch, rng)
    repeat_rows = Comparison.objects.filter(repeat_of__isnull=False)
    per_original = {}
    for row in repeat_rows:
        per_original.setdefault(row.repeat_of_id, []).append(row.pk)
    assert all(len(rows) == 1 for rows in per_original.values())
    shown = Assignment.objects.filter(comparison__repeat_of__isnull=False).values_list("comparison_id", "annotator_id")
    both = {c for c, a in shown if a == first.pk} & {c for c, a in shown if a == second.pk}
    assert both, "a repeat row was shown to both annotators"
    ordinary = Assignment.objects.filter(comparison__repeat_of__isnull=True).first()
    repeated = Assignment.objects.filter(comparison__repeat_of__isnull=False).first()
    as_shown = [AnnotatorAssignmentSerializer(a).data for a in (ordinary, repeated)]
    assert as_shown[0].keys() == as_shown[1].keys()
    assert as_shown[0]["batch"] == as_shown[1]["batch"]


def test_promote_unanimous_marks_the_clearest_first():
    batch = BatchFactory(overlap=2)
    pairs = ComparisonFactory.create_batch(4, batch=batch)
    annotators = AnnotatorFactory.create_batch(2)
    votes = {
        pairs[0].pk: (("a", "slightly_better"), ("a", "slightly_better")),
        pairs[1].pk: (("b", "significantly_better"), ("b", "significantly_better")),
        pairs[2].pk: (("a", "better"), ("b", "better")),  # split: never gold
        pairs[3].pk: (("a", "better"), ("a", "negligibly_better")),
    }
    for index, annotator in enumerate(annotators):
        for _ in pairs:
            lease = services.assignment_next(annotator=annotator, batch=batch)
            choose, strength = votes[lease.assignment.comparison_id][index]
            rate(annotator, lease.assignment, choose=choose, strength=strength)
    assert services.gold_promote_unanimous(batch=batch, limit=1) == 1
    first = Comparison.objects.get(is_gold=True)
    assert (first.pk, first.gold_choice, first.gold_strength) == (pairs[1].pk, "b", "significantly_better")
    assert services.gold_promote_unanimous(batch=batch, min_strength="slightly_better") == 1  # pair 0 only
    assert services.gold_promote_unanimous(batch=batch) == 1  # pair 3 (negligibly better)
    assert set(Comparison.objects.filter(is_gold=True).values_list("pk", flat=True)) == {
        pairs[0].pk,
        pairs[1].pk,
        pairs[3].pk,
    }
    # Ratings made before promotion are not gold checks: they defined the answer.
    gold = Comparison.objects.get(pk=pairs[1].pk)
    assert all(r.created_at < gold.gold_marked_at for r in Rating.objects.filter(comparison=gold))
    with pytest.raises(InvalidInput):
        services.gold_promote_unanimous(batch=batch, limit=0)


def test_marking_and_unmarking_gold():
    batch = BatchFactory(overlap=3)
    comparison = ComparisonFactory(batch=batch)
    annotator = AnnotatorFactory()
    rate(annotator, services.assignment_next(annotator=annotator, batch=batch).assignment, choose="a")
    marked = services.comparison_gold_mark(comparison_id=comparison.pk, choice="b", strength="better")
    assert (marked.status, marked.label_choice, marked.is_gold) == ("complete", "b", True)
    with pytest.raises(InvalidInput, match="choice 'a' or 'b'"):
        services.comparison_gold_mark(comparison_id=comparison.pk, choice="left")
    unmarked = services.comparison_gold_unmark(comparison_id=comparison.pk)
    unmarked.refresh_from_db()
    assert (unmarked.is_gold, unmarked.status, unmarked.label_choice, unmarked.rating_count) == (False, "open", "", 1)
    with pytest.raises(Conflict, match="not gold"):
        services.comparison_gold_unmark(comparison_id=comparison.pk)
    repeat = Comparison.objects.create(
        batch=batch,
        dialogue=comparison.dialogue,
        context_length=1,
        response_a=comparison.response_b,
        response_b=comparison.response_a,
        status=ComparisonStatus.REPEAT,
        repeat_of=comparison,
    )
    with pytest.raises(InvalidInput, match="repeat cannot be gold"):
        services.comparison_gold_mark(comparison_id=repeat.pk, choice="a")


def test_check_rates_are_shares_that_leave_most_of_the_work_real():
    services.check_rates_validate(gold_rate=0.25, repeat_rate=0.25)
    with pytest.raises(InvalidInput, match=r"add up to 0\.6"):
        services.check_rates_validate(gold_rate=0.3, repeat_rate=0.3)
    with pytest.raises(InvalidInput, match="gold_rate"):
        services.check_rates_validate(gold_rate=-0.1, repeat_rate=0)


def test_batches_without_checks_draw_sides_exactly_as_before():
    batch = BatchFactory()
    ComparisonFactory.create_batch(2, batch=batch)
    rng, twin = random.Random(5), random.Random(5)
    lease = services.assignment_next(annotator=AnnotatorFactory(), batch=batch, rng=rng)
    assert lease.assignment.swapped == (twin.random() < 0.5)  # one draw, for the sides only
