"""Reads of sampling, scoped by who asks. Annotators see their own jobs and never a model's name."""

from __future__ import annotations

from django.db.models import Count, OuterRef, Q, QuerySet, Subquery
from django.utils import timezone

from accounts.models import User
from annotation.models import Assignment, AssignmentStatus, Batch, Turn

from .models import SAMPLED_BACKENDS, Backend, GenerationJob, JobStatus, ModelVariant, PairPolicy


def variants_for(user: User) -> QuerySet[ModelVariant]:
    """Researchers see every variant and version; nobody else sees any."""
    if not user.is_researcher:
        return ModelVariant.objects.none()
    return ModelVariant.objects.select_related("created_by", "base_variant", "reward_run", "safety_run").annotate(
        n_responses=Count("responses", distinct=True)
    )


def variant_versions(variant: ModelVariant) -> QuerySet[ModelVariant]:
    return ModelVariant.objects.filter(name=variant.name).order_by("-version")


def variants_for_policy() -> QuerySet[ModelVariant]:
    """Variants a pair policy may list: active ones that sample (not imported responses)."""
    return ModelVariant.objects.filter(is_active=True, backend__in=SAMPLED_BACKENDS).order_by("name", "-version")


def policy_for(batch: Batch) -> PairPolicy | None:
    return (
        PairPolicy.objects.filter(batch=batch)
        .select_related("reward_run", "safety_run")
        .prefetch_related("variants")
        .first()
    )


def policies_for(user: User) -> QuerySet[PairPolicy]:
    if not user.is_researcher:
        return PairPolicy.objects.none()
    return PairPolicy.objects.select_related("batch").prefetch_related("variants").order_by("-batch__week", "-id")


def jobs_for(user: User) -> QuerySet[GenerationJob]:
    """Researchers see every job, annotators the jobs of their own prompts, others none."""
    jobs = GenerationJob.objects.select_related("batch", "requested_by")
    if user.is_researcher:
        return jobs
    if user.is_annotator:
        return jobs.filter(requested_by=user)
    return jobs.none()


def job_current_for(annotator: User, batch: Batch) -> GenerationJob | None:
    """The annotator's latest job in the batch while it still matters to the rating page: being
    sampled, failed, or done with the pair still to rate or to continue from."""
    job = GenerationJob.objects.filter(requested_by=annotator, batch=batch).order_by("-id").first()
    if job is None or job.status != JobStatus.DONE:
        return job
    assignment = writer_assignment(job)
    if assignment is None or assignment.status == AssignmentStatus.RELEASED:
        return None
    if assignment.status == AssignmentStatus.LEASED and assignment.expires_at < timezone.now():
        return None
    if assignment.status == AssignmentStatus.SUBMITTED and continuation_for(job) is None:
        return None
    return job


def jobs_ahead(job: GenerationJob) -> int:
    """Jobs queued before this one: how long the annotator may wait."""
    if job.status != JobStatus.QUEUED:
        return 0
    return GenerationJob.objects.filter(status=JobStatus.QUEUED, pk__lt=job.pk).count()


def job_context(job: GenerationJob) -> list[dict]:
    """The dialogue the pair answers, oldest turn first (the last one is the prompt)."""
    turns = Turn.objects.filter(dialogue_id=job.dialogue_id, index__lt=job.context_length).order_by("index")
    return [{"role": t.role, "content": t.content} for t in turns]


def writer_assignment(job: GenerationJob) -> Assignment | None:
    """The lease on the job's pair of the annotator who wrote the prompt."""
    if job.comparison_id is None or job.requested_by_id is None:
        return None
    return (
        Assignment.objects.select_related(
            "comparison__batch", "comparison__response_a", "comparison__response_b", "comparison__dialogue"
        )
        .filter(comparison_id=job.comparison_id, annotator_id=job.requested_by_id)
        .first()
    )


def continuation_for(job: GenerationJob) -> list[dict] | None:
    """The dialogue with the writer's chosen response appended, when they rated the job's pair and
    have not continued yet: what the page shows above the box for their next message."""
    assignment = writer_assignment(job)
    if assignment is None or assignment.status != AssignmentStatus.SUBMITTED:
        return None
    comparison = assignment.comparison
    if Turn.objects.filter(dialogue_id=comparison.dialogue_id).count() != comparison.context_length:
        return None
    rating = assignment.rating
    chosen = comparison.response_for(rating.chosen)
    return [*job_context(job), {"role": Turn.Role.ASSISTANT, "content": chosen.text}]


# --- for the researchers' sampling pages --------------------------------------------------------


def variants_with_open_policy_counts(*, user: User) -> list[ModelVariant]:
    """The user's variants, each with `n_policies` (open batches whose pair policy lists it): those
    that sample first, those registered by comparison imports after them; by name, newest version first."""
    variants = variants_for(user).annotate(
        n_policies=Count("pair_policies", filter=Q(pair_policies__batch__is_open=True), distinct=True)
    )
    return sorted(variants, key=lambda v: (v.backend == Backend.EXTERNAL, v.name, -v.version))


def variant_versions_for(*, user: User, variant: ModelVariant) -> QuerySet[ModelVariant]:
    """Every version of the variant's name that the user may see, newest first."""
    return variants_for(user).filter(name=variant.name).order_by("-version")


def policies_using(*, user: User, variant: ModelVariant) -> QuerySet[PairPolicy]:
    """The pair policies that list this variant, newest batch week first."""
    if not user.is_researcher:
        return PairPolicy.objects.none()
    return variant.pair_policies.select_related("batch").order_by("-batch__week")


def batch_jobs(*, user: User, batch: Batch) -> QuerySet[GenerationJob]:
    """A batch's generation jobs, newest first, each with `prompt_text` (the turn the pair answers)."""
    prompt = Turn.objects.filter(dialogue=OuterRef("dialogue"), index=OuterRef("context_length") - 1)
    return (
        jobs_for(user).filter(batch=batch).annotate(prompt_text=Subquery(prompt.values("content")[:1])).order_by("-id")
    )


def batch_job_counts(*, user: User, batch: Batch) -> dict[str, int]:
    """How many of the batch's generation jobs are in each status."""
    return dict(jobs_for(user).filter(batch=batch).order_by().values_list("status").annotate(n=Count("id")))


def unused_prompt_count(*, batch: Batch) -> int:
    """Prompts of the batch's pool not sampled yet."""
    return batch.prompts.filter(used_at__isnull=True).count()
