"""Sampling pages (researchers only): model variants and their versions, and each batch's pair policy,
prompt-pool fill and generation jobs. Forms post here; the views validate input and call one service."""

import re

from django import forms
from django.conf import settings
from django.contrib import messages
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from annotation import selectors as annotation_selectors
from config.exceptions import DomainError
from rewardmodel import selectors as rewardmodel_selectors
from sampling import selectors, services
from sampling.models import Backend, ChatTemplate, JobStatus, PairSelection, TemperatureMode
from sampling.variant_backends import EMBEDDED_CHECKPOINT

from .views import researcher_required

BACKEND_CHOICES = [(Backend.TRANSFORMERS, Backend.TRANSFORMERS.label), (Backend.OPENAI, Backend.OPENAI.label)]


class VariantForm(forms.Form):
    name = forms.CharField(max_length=120, help_text="Versions share the name, e.g. llama2-70b-rlhf.")
    description = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 2}))
    backend = forms.ChoiceField(choices=BACKEND_CHOICES, widget=forms.RadioSelect, initial=Backend.TRANSFORMERS)
    checkpoint_path = forms.CharField(
        required=False,
        max_length=500,
        help_text=f"A checkpoint directory or .gguf file on the worker, or {EMBEDDED_CHECKPOINT}.",
    )
    base_url = forms.CharField(required=False, max_length=200, help_text="e.g. http://gpu-1:8000/v1")
    api_model = forms.CharField(required=False, max_length=200, help_text="The `model` the endpoint serves.")
    api_key_env = forms.CharField(
        required=False, max_length=100, help_text="Name of the worker's environment variable holding the key."
    )
    system_prompt = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 3}), strip=False)
    chat_template = forms.ChoiceField(choices=ChatTemplate.choices, initial=ChatTemplate.MODEL)
    max_new_tokens = forms.IntegerField(min_value=1, max_value=services.MAX_NEW_TOKENS_LIMIT, initial=256)
    top_p = forms.FloatField(min_value=0.01, max_value=1.0, initial=0.9)


class VariantEditForm(VariantForm):
    is_active = forms.BooleanField(required=False, help_text="Retired versions are not offered to pair policies.")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        del self.fields["name"]


class PolicyForm(forms.Form):
    variants = forms.TypedMultipleChoiceField(coerce=int, widget=forms.CheckboxSelectMultiple)
    temperature_mode = forms.ChoiceField(
        choices=TemperatureMode.choices, widget=forms.RadioSelect, initial=TemperatureMode.SET
    )
    temperatures = forms.CharField(
        initial="0.6, 0.8, 1.0",
        help_text="A set, e.g. 0.6, 0.8, 1.0; or for a range the lowest and highest, e.g. 0.5, 1.2.",
    )
    max_new_tokens = forms.IntegerField(
        required=False, min_value=1, max_value=services.MAX_NEW_TOKENS_LIMIT, help_text="Empty: each variant's own."
    )
    max_resample_attempts = forms.IntegerField(min_value=0, max_value=services.MAX_RESAMPLE_ATTEMPTS, initial=3)
    selection = forms.ChoiceField(choices=PairSelection.choices, initial=PairSelection.RANDOM, required=False)
    candidates = forms.IntegerField(min_value=3, max_value=settings.PREFLAB_BEST_OF_K_MAX, initial=4, required=False)
    reward_run = forms.TypedChoiceField(coerce=int, required=False, empty_value=None)
    safety_run = forms.TypedChoiceField(coerce=int, required=False, empty_value=None)

    def __init__(self, *args, variants, reward_runs, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["variants"].choices = [(v.pk, str(v)) for v in variants]
        self.reward_runs = {run.pk: run for run in reward_runs}
        runs = [(run.pk, f"{run.name} ({run.kind})") for run in reward_runs]
        self.fields["reward_run"].choices = [("", "None"), *runs]
        self.fields["safety_run"].choices = [("", "None"), *runs]

    def clean_temperatures(self) -> list[float]:
        try:
            return [float(t) for t in re.split(r"[\s,;]+", self.cleaned_data["temperatures"].strip()) if t]
        except ValueError:
            raise forms.ValidationError("Write numbers separated by commas, e.g. 0.6, 0.8, 1.0.") from None


class FillForm(forms.Form):
    count = forms.IntegerField(min_value=1, initial=10)


class BestOfKForm(forms.Form):
    """A best-of-K variant: K samples of a base variant, the best by a reward model."""

    name = forms.CharField(max_length=120)
    description = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 2}))
    base_variant = forms.TypedChoiceField(coerce=int)
    reward_run = forms.TypedChoiceField(coerce=int)
    safety_run = forms.TypedChoiceField(coerce=int, required=False, empty_value=None)
    best_of_k = forms.IntegerField(min_value=2, max_value=settings.PREFLAB_BEST_OF_K_MAX, initial=4)

    def __init__(self, *args, bases, reward_runs, **kwargs):
        super().__init__(*args, **kwargs)
        self.bases = {v.pk: v for v in bases}
        self.reward_runs = {run.pk: run for run in reward_runs}
        self.fields["base_variant"].choices = [(v.pk, str(v)) for v in bases]
        runs = [(run.pk, f"{run.name} ({run.kind})") for run in reward_runs]
        self.fields["reward_run"].choices = runs
        self.fields["safety_run"].choices = [("", "None"), *runs]


def _form_error(form: forms.Form, exc: DomainError) -> None:
    form.add_error(exc.field if exc.field in form.fields else None, exc.detail)


def _variant_values(data: dict) -> dict:
    return {key: value for key, value in data.items() if key != "name"}


@researcher_required
def variants(request):
    best_of_k_post = request.method == "POST" and request.POST.get("kind") == "best_of_k"
    form = VariantForm(request.POST if request.method == "POST" and not best_of_k_post else None)
    best_of_k_form = BestOfKForm(
        request.POST if best_of_k_post else None,
        bases=[v for v in selectors.variants_for_policy() if v.backend in (Backend.TRANSFORMERS, Backend.OPENAI)],
        reward_runs=list(rewardmodel_selectors.scorable_runs(request.user)),
    )
    if request.method == "POST" and best_of_k_post and best_of_k_form.is_valid():
        data = best_of_k_form.cleaned_data
        try:
            variant = services.variant_create(
                created_by=request.user,
                name=data["name"],
                description=data["description"],
                backend=Backend.BEST_OF_K,
                base_variant=best_of_k_form.bases[data["base_variant"]],
                reward_run=best_of_k_form.reward_runs[data["reward_run"]],
                safety_run=best_of_k_form.reward_runs.get(data["safety_run"]),
                best_of_k=data["best_of_k"],
            )
        except DomainError as exc:
            _form_error(best_of_k_form, exc)
        else:
            messages.success(request, f"Registered {variant}.")
            return redirect("research-variant", variant_id=variant.pk)
    if request.method == "POST" and not best_of_k_post and form.is_valid():
        try:
            variant = services.variant_create(
                created_by=request.user, name=form.cleaned_data["name"], **_variant_values(form.cleaned_data)
            )
        except DomainError as exc:
            _form_error(form, exc)
        else:
            messages.success(request, f"Registered {variant}.")
            return redirect("research-variant", variant_id=variant.pk)
    return render(
        request,
        "frontend/sampling/variants.html",
        {
            "variants": selectors.variants_with_open_policy_counts(user=request.user),
            "form": form,
            "best_of_k_form": best_of_k_form,
            "embedded": EMBEDDED_CHECKPOINT,
        },
        status=400 if request.method == "POST" else 200,
    )


@researcher_required
def variant(request, variant_id: int):
    current = get_object_or_404(selectors.variants_for(request.user), pk=variant_id)
    initial = {name: getattr(current, name) for name in VariantEditForm.base_fields if hasattr(current, name)}
    form = VariantEditForm(request.POST or None, initial=initial)
    if request.method == "POST" and form.is_valid():
        changes = {name: form.cleaned_data[name] for name in form.changed_data}
        try:
            change = services.variant_update(variant=current, updated_by=request.user, **changes)
        except DomainError as exc:
            _form_error(form, exc)
        else:
            if change.new_version:
                messages.success(
                    request,
                    f"Generation settings changed, so this is a new version: {change.variant}. "
                    f"v{current.version} is retired and keeps its responses; open batches now sample from the new one.",
                )
            else:
                messages.success(request, "Saved.")
            return redirect("research-variant", variant_id=change.variant.pk)
    return render(
        request,
        "frontend/sampling/variant.html",
        {
            "variant": current,
            "form": form,
            "versions": selectors.variant_versions_for(user=request.user, variant=current),
            "policies": selectors.policies_using(user=request.user, variant=current),
            "embedded": EMBEDDED_CHECKPOINT,
        },
        status=400 if request.method == "POST" else 200,
    )


@researcher_required
def batch_sampling(request, batch_id: int):
    batch = get_object_or_404(annotation_selectors.batches_for(request.user), pk=batch_id)
    policy = selectors.policy_for(batch)
    offered = list(selectors.variants_for_policy())
    if policy is not None:
        offered += [v for v in policy.variants.all() if v not in offered]
    initial = {"temperature_mode": TemperatureMode.SET, "temperatures": "0.6, 0.8, 1.0", "max_resample_attempts": 3}
    if policy is not None:
        initial = {
            "variants": [v.pk for v in policy.variants.all()],
            "temperature_mode": policy.temperature_mode,
            "temperatures": ", ".join(f"{t:g}" for t in policy.temperatures),
            "max_new_tokens": policy.max_new_tokens,
            "max_resample_attempts": policy.max_resample_attempts,
            "selection": policy.selection,
            "candidates": policy.candidates,
            "reward_run": policy.reward_run_id,
            "safety_run": policy.safety_run_id,
        }
    reward_runs = list(rewardmodel_selectors.scorable_runs(request.user))
    form = PolicyForm(request.POST or None, initial=initial, variants=offered, reward_runs=reward_runs)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            services.pair_policy_set(
                batch=batch,
                variant_ids=data["variants"],
                temperature_mode=data["temperature_mode"],
                temperatures=data["temperatures"],
                max_new_tokens=data["max_new_tokens"],
                max_resample_attempts=data["max_resample_attempts"],
                selection=data["selection"] or PairSelection.RANDOM,
                candidates=data["candidates"] or 4,
                reward_run=form.reward_runs.get(data["reward_run"]),
                safety_run=form.reward_runs.get(data["safety_run"]),
                updated_by=request.user,
            )
        except DomainError as exc:
            _form_error(form, exc)
        else:
            messages.success(request, "Pair policy saved: new pairs of this batch are sampled with it.")
            return redirect("research-batch-sampling", batch_id=batch.pk)
    return render(
        request,
        "frontend/sampling/batch.html",
        {
            "batch": batch,
            "policy": policy,
            "form": form,
            "fill_form": FillForm(),
            "unused_prompts": selectors.unused_prompt_count(batch=batch),
            "jobs": selectors.batch_jobs(user=request.user, batch=batch)[:50],
            "job_counts": selectors.batch_job_counts(user=request.user, batch=batch),
            "statuses": JobStatus,
        },
        status=400 if request.method == "POST" else 200,
    )


@researcher_required
@require_POST
def batch_fill(request, batch_id: int):
    batch = get_object_or_404(annotation_selectors.batches_for(request.user), pk=batch_id)
    form = FillForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Give how many pairs to sample (at least 1).")
    else:
        try:
            jobs = services.batch_fill_from_pool(
                batch=batch, count=form.cleaned_data["count"], requested_by=request.user
            )
        except DomainError as exc:
            messages.error(request, exc.detail)
        else:
            messages.success(request, f"Queued {len(jobs)} pair(s) on the sampling queue.")
    return redirect(reverse("research-batch-sampling", kwargs={"batch_id": batch.pk}) + "#jobs")


@researcher_required
@require_POST
def job_retry(request, job_id: int):
    job = get_object_or_404(selectors.jobs_for(request.user), pk=job_id)
    try:
        services.job_retry(user=request.user, job_id=job.pk)
    except DomainError as exc:
        messages.error(request, exc.detail)
    else:
        messages.success(request, f"Job {job.pk} queued again.")
    return redirect(reverse("research-batch-sampling", kwargs={"batch_id": job.batch_id}) + "#jobs")
