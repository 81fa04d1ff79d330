import datetime

import pytest
from django.utils import timezone

from annotation import services
from annotation.models import Assignment, AssignmentStatus, Comparison, Dialogue, Prompt, Rating
from config.exceptions import Conflict, Gone, InvalidInput, NotAllowed
from tests.factories import AnnotatorFactory, BatchFactory, ComparisonFactory, UserFactory
from tests.helpers import rate

pytestmark = pytest.mark.django_db


def test_next_prefers_pairs_that_already_have_ratings():
    batch = BatchFactory()
    first, second = ComparisonFactory(batch=batch), ComparisonFactory(batch=batch)
    annotators = AnnotatorFactory.create_batch(2)
    lease = services.assignment_next(annotator=annotators[0], batch=batch)
    assert lease.assignment.comparison == first
    rate(annotators[0], lease.assignment)
    # second comparison has no ratings; the first has one: it is finished first
    assert services.assignment_next(annotator=annotators[1], batch=batch).assignment.comparison == first
    assert second.ratings.count() == 0


def test_overlap_bounds_slots_and_the_same_annotator_never_gets_a_pair_twice():
    batch = BatchFactory(overlap=2)
    comparison = ComparisonFactory(batch=batch)
    a, b, c = AnnotatorFactory.create_batch(3)
    rate(a, services.assignment_next(annotator=a, batch=batch).assignment)
    assert services.assignment_next(annotator=a, batch=batch) is None  # already rated it
    services.assignment_next(annotator=b, batch=batch)
    assert services.assignment_next(annotator=c, batch=batch) is None  # 1 rating + 1 live lease = overlap
    comparison.refresh_from_db()
    assert comparison.slots_taken == 2


def test_reload_returns_the_same_lease_with_the_same_sides():
    batch = BatchFactory()
    ComparisonFactory.create_batch(3, batch=batch)
    annotator = AnnotatorFactory()
    first = services.assignment_next(annotator=annotator, batch=batch)
    again = services.assignment_next(annotator=annotator, batch=batch)
    assert again.assignment.pk == first.assignment.pk and not again.created
    assert again.assignment.swapped == first.assignment.swapped
    prefetched = services.assignment_next(
        annotator=annotator, batch=batch, exclude_ids=frozenset({first.assignment.pk})
    )
    assert prefetched.assignment.pk != first.assignment.pk
    # at most two live leases: one on screen and one prefetched
    both = frozenset({first.assignment.pk, prefetched.assignment.pk})
    assert services.assignment_next(annotator=annotator, batch=batch, exclude_ids=both) is None


def test_expired_lease_returns_the_slot_and_its_rating_is_refused():
    batch = BatchFactory(overlap=1)
    comparison = ComparisonFactory(batch=batch)
    slow, fast = AnnotatorFactory.create_batch(2)
    lease = services.assignment_next(annotator=slow, batch=batch)
    later = timezone.now() + datetime.timedelta(minutes=11)
    taken = services.assignment_next(annotator=fast, batch=batch, now=later)
    assert taken.assignment.comparison == comparison
    with pytest.raises(Gone, match="expired after 10 minutes"):
        rate(slow, lease.assignment)
    assert Assignment.objects.get(pk=lease.assignment.pk).status == AssignmentStatus.RELEASED
    assert Rating.objects.count() == 0


def test_three_ratings_make_a_majority_label():
    batch = BatchFactory(overlap=3)
    comparison = ComparisonFactory(batch=batch)
    votes = [("a", "significantly_better"), ("b", "slightly_better"), ("a", "better")]
    for annotator, (choose, strength) in zip(AnnotatorFactory.create_batch(3), votes, strict=True):
        lease = services.assignment_next(annotator=annotator, batch=batch)
        rate(annotator, lease.assignment, choose=choose, strength=strength)
    comparison.refresh_from_db()
    assert (comparison.status, comparison.label_choice, comparison.label_vote) == ("complete", "a", "split")
    # lower middle of (better, significantly better)
    assert comparison.label_strength == "better"
    assert comparison.rating_count == 3
    # idempotent recomputation
    services.comparison_label_refresh(comparison=comparison)
    comparison.refresh_from_db()
    assert comparison.label_choice == "a" and comparison.rating_count == 3


def test_same_idempotency_key_returns_the_first_rating():
    batch = BatchFactory()
    ComparisonFactory(batch=batch)
    annotator = AnnotatorFactory()
    lease = services.assignment_next(annotator=annotator, batch=batch)
    first = rate(annotator, lease.assignment, key="click-1")
    again = rate(annotator, lease.assignment, key="click-1", choose="b")
    assert first.created and not again.created
    assert again.rating.pk == first.rating.pk and again.rating.chosen == "a"
    with pytest.raises(Conflict, match="already rated"):
        rate(annotator, lease.assignment, key="click-2")
    assert Rating.objects.count() == 1


@pytest.mark.parametrize(
    ("focus", "strength", "safety", "message"),
    [
        ("helpfulness", "", "", "Choose how much better"),
        ("helpfulness", "much_better", "", "Unknown strength"),
        ("helpfulness", "better", "both_safe", "only given in safety batches"),
        ("safety", "better", "", "give the safety label"),
        ("safety", "better", "chosen_unsafe_other_safe", "cannot be submitted"),
    ],
)
def test_invalid_ratings_are_refused_with_a_message_and_write_nothing(focus, strength, safety, message):
    batch = BatchFactory(focus=focus)
    ComparisonFactory(batch=batch)
    annotator = AnnotatorFactory()
    lease = services.assignment_next(annotator=annotator, batch=batch)
    with pytest.raises(InvalidInput, match=message):
        rate(annotator, lease.assignment, strength=strength, safety=safety)
    assert Rating.objects.count() == 0
    assert Assignment.objects.get(pk=lease.assignment.pk).status == AssignmentStatus.LEASED


def test_rating_someone_elses_pair_or_a_foreign_response_is_refused():
    batch = BatchFactory()
    ComparisonFactory(batch=batch)
    owner, other = AnnotatorFactory.create_batch(2)
    lease = services.assignment_next(annotator=owner, batch=batch)
    with pytest.raises(NotAllowed, match="another annotator"):
        rate(other, lease.assignment)
    with pytest.raises(InvalidInput, match="not one of this pair"):
        services.rating_submit(
            annotator=owner,
            assignment_id=lease.assignment.id,
            chosen_response_id=10**9,
            strength="better",
            idempotency_key="x",
        )


def test_non_annotators_and_closed_batches_get_no_work():
    batch = BatchFactory(is_open=False)
    ComparisonFactory(batch=batch)
    with pytest.raises(NotAllowed, match="closed"):
        services.assignment_next(annotator=AnnotatorFactory(), batch=batch)
    with pytest.raises(NotAllowed, match="Only annotators"):
        services.assignment_next(annotator=UserFactory(), batch=batch)


def test_import_is_all_or_nothing():
    batch = BatchFactory()
    good = (
        b'{"prompt": "p", "responses": [{"text": "x", "variant": "m1", "temperature": 0.6},'
        b' {"text": "y", "variant": "m2", "temperature": 0.9}]}\n'
    )
    with pytest.raises(InvalidInput) as err:
        services.comparisons_import(batch=batch, source=[good, b'{"prompt": ""}\n'])
    assert "line 2" in err.value.detail
    assert Comparison.objects.count() == 0 and Dialogue.objects.count() == 0
    assert services.comparisons_import(batch=batch, source=[good, good]) == 2
    assert Comparison.objects.filter(batch=batch).count() == 2
    assert services.prompts_import(batch=batch, source=[b'{"text": "hello"}']) == 1
    assert Prompt.objects.get().text == "hello"
