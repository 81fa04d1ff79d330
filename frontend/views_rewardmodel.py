"""Reward-model pages (researchers only): start a training run, follow it live, read its evaluation in
Llama 2's table layouts, compare runs, download the model, score responses with one model or the
hybrid reward, and preview best-of-K sampling.

Forms post here; each view validates input and calls one service. The live run page polls the API
(rewardmodel.js) and swaps in the server-drawn curves. A best-of-K preview is queued for a sampling
worker (no request generates); its page follows it through the API until the ranking is there.
"""

import json
import uuid
from collections import defaultdict

from django import forms
from django.conf import settings
from django.contrib import messages
from django.http import HttpResponse, StreamingHttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from annotation.models import Focus
from config.exceptions import DomainError
from core import csv_safe
from preference_data.models import MarginTable
from rewardmodel import plots, selectors
from rewardmodel.archives import stream_zip
from rewardmodel.models import ModelKind, RunStatus
from rewardmodel.services import rewards, runs
from rewardmodel.streams import pair_rewards_response
from sampling import selectors as sampling_selectors

from .views import researcher_required

# The start-run form's hyper-parameters, in the order shown: (name, label, what Llama 2 says).
MAIN_HYPERPARAMETERS = [
    ("learning_rate", "Max learning rate", "Llama 2: 1e-5 (5e-6 for the largest models)"),
    ("batch_pairs", "Effective batch (pairs)", "Llama 2: 512 pairs, i.e. 1,024 rows"),
    ("epochs", "Epochs", "Llama 2: 1 (longer overfits)"),
    ("max_length", "Max tokens per input", "dialogue + response; the context is cut from the left"),
    ("warmup_ratio", "Warm-up share of steps", "Llama 2: 3%"),
    ("min_warmup_steps", "Minimum warm-up steps", "Llama 2: 5"),
    ("min_lr_ratio", "Cosine floor (share of max)", "Llama 2: 10% of the maximum"),
    ("micro_batch_pairs", "Pairs per forward pass", "memory only: gradients are accumulated to the batch"),
]
MORE_HYPERPARAMETERS = [
    ("weight_decay", "Weight decay", "AdamW, as in pre-training: 0.1"),
    ("adam_beta1", "Adam β1", "0.9"),
    ("adam_beta2", "Adam β2", "0.95"),
    ("adam_eps", "Adam ε", "1e-5"),
    ("max_grad_norm", "Gradient clipping (norm)", "1.0; empty: no clipping"),
    ("seed", "Seed", "data order and the new head's initialisation"),
    ("checkpoint_every", "Checkpoint every N steps", "0: only when cancelled"),
    ("keep_checkpoints", "Checkpoints kept", "older ones are deleted"),
    ("eval_batch_size", "Evaluation batch size", "held-out scoring"),
    ("bf16", "bf16 autocast on CUDA", "ignored on a CPU"),
    ("gradient_checkpointing", "Gradient checkpointing", "less memory, slower steps"),
    ("disable_dropout", "Disable dropout", "as TRL's reward trainer does"),
]
_PALETTE = ["#2f5bd3", "#b54708", "#1c7c54", "#7a2fd3", "#b42318", "#0e7490"]


def _field_for(name: str, default, label: str, help_text: str) -> forms.Field:
    if isinstance(default, bool):
        return forms.BooleanField(required=False, label=label, help_text=help_text)
    if isinstance(default, int):
        return forms.IntegerField(required=True, label=label, help_text=help_text)
    return forms.FloatField(required=name != "max_grad_norm", label=label, help_text=help_text)


class RunForm(forms.Form):
    # Querysets come from the selectors, per request (__init__).
    dataset = forms.ModelChoiceField(queryset=None, empty_label=None)
    base_checkpoint = forms.ModelChoiceField(queryset=None, empty_label=None)
    kind = forms.ChoiceField(choices=[("", "From the dataset's mix"), *Focus.choices], required=False)
    margin_table = forms.ChoiceField(choices=[("", "The dataset's"), *MarginTable.choices], required=False)
    name = forms.CharField(max_length=200, required=False)
    # One key per rendered form: a double click or a resubmitted page starts one run, not two.
    request_key = forms.CharField(max_length=64, required=False, widget=forms.HiddenInput)

    def __init__(self, *args, user, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["request_key"].initial = uuid.uuid4().hex
        self.fields["dataset"].queryset = selectors.trainable_datasets()
        self.fields["base_checkpoint"].queryset = selectors.base_checkpoints_to_train_from(user=user)
        self.llama2 = runs.llama2_defaults()
        for name, label, help_text in MAIN_HYPERPARAMETERS + MORE_HYPERPARAMETERS:
            self.fields[name] = _field_for(name, self.llama2[name], label, help_text)

    def hyperparameter_fields(self, group):
        return [self[name] for name, _, _ in group]

    def main_fields(self):
        return self.hyperparameter_fields(MAIN_HYPERPARAMETERS)

    def more_fields(self):
        return self.hyperparameter_fields(MORE_HYPERPARAMETERS)

    def hyperparameters(self) -> dict:
        return {name: self.cleaned_data[name] for name, _, _ in MAIN_HYPERPARAMETERS + MORE_HYPERPARAMETERS}


class BaseCheckpointForm(forms.Form):
    name = forms.CharField(max_length=200)
    path = forms.CharField(max_length=500, help_text=f"A checkpoint directory on the workers, or {runs.MINILM}.")
    kind = forms.ChoiceField(choices=ModelKind.choices)
    description = forms.CharField(required=False, max_length=500)


class EvaluateForm(forms.Form):
    dataset = forms.ModelChoiceField(queryset=None, empty_label=None)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["dataset"].queryset = selectors.evaluable_datasets()


def _run_choices(user, kind=None):
    return [(r.pk, f"#{r.pk} {r.name}") for r in selectors.scorable_runs(user, kind)]


class ScoreForm(forms.Form):
    mode = forms.ChoiceField(
        choices=[("single", "One reward model"), ("hybrid", "Hybrid reward (helpfulness + safety)")],
        widget=forms.RadioSelect,
        initial="single",
    )
    run = forms.TypedChoiceField(coerce=int, required=False, empty_value=None)
    helpfulness_run = forms.TypedChoiceField(coerce=int, required=False, empty_value=None)
    safety_run = forms.TypedChoiceField(coerce=int, required=False, empty_value=None)
    is_safety_prompt = forms.BooleanField(required=False)
    dialogue = forms.CharField(widget=forms.Textarea(attrs={"rows": 6}), strip=False)
    response = forms.CharField(widget=forms.Textarea(attrs={"rows": 6}), strip=False)

    def __init__(self, *args, user, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["run"].choices = [("", "—"), *_run_choices(user)]
        self.fields["helpfulness_run"].choices = [("", "—"), *_run_choices(user, Focus.HELPFULNESS)]
        self.fields["safety_run"].choices = [("", "—"), *_run_choices(user, Focus.SAFETY)]

    def clean(self):
        data = super().clean()
        if data.get("mode") == "hybrid":
            for name in ("helpfulness_run", "safety_run"):
                if not data.get(name):
                    self.add_error(name, "Choose a model.")
        elif not data.get("run"):
            self.add_error("run", "Choose a reward model.")
        return data


class BestOfKForm(forms.Form):
    variant = forms.TypedChoiceField(coerce=int)
    k = forms.IntegerField(min_value=1, initial=4, label="K")
    temperature = forms.FloatField(min_value=0, max_value=2, initial=0.8)
    max_new_tokens = forms.IntegerField(min_value=1, max_value=2048, initial=96, required=False)
    run = forms.TypedChoiceField(coerce=int, label="Reward model")
    safety_run = forms.TypedChoiceField(
        coerce=int, required=False, empty_value=None, label="Safety model (hybrid reward)"
    )
    is_safety_prompt = forms.BooleanField(required=False)
    dialogue = forms.CharField(widget=forms.Textarea(attrs={"rows": 5}), strip=False)

    def __init__(self, *args, user, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["k"] = forms.IntegerField(
            min_value=1, max_value=settings.PREFLAB_BEST_OF_K_MAX, initial=4, label="K"
        )
        self.fields["variant"].choices = [(v.pk, str(v)) for v in sampling_selectors.variants_for_policy()]
        self.fields["run"].choices = _run_choices(user)
        self.fields["safety_run"].choices = [
            ("", "None: rank by the reward model alone"),
            *_run_choices(user, "safety"),
        ]


# --- runs ---------------------------------------------------------------------------------------


@researcher_required
def runs_index(request):
    return render(
        request,
        "frontend/rewardmodel/index.html",
        {
            "runs": selectors.runs_with_own_evaluation(user=request.user),
            "checkpoints": selectors.base_checkpoints_with_run_counts(user=request.user),
            "checkpoint_form": BaseCheckpointForm(),
            "stale_seconds": settings.PREFLAB_TRAINING_STALE_SECONDS,
        },
    )


@researcher_required
@require_POST
def checkpoint_create(request):
    form = BaseCheckpointForm(request.POST)
    if form.is_valid():
        try:
            checkpoint = runs.base_checkpoint_create(created_by=request.user, **form.cleaned_data)
        except DomainError as exc:
            messages.error(request, exc.detail)
        else:
            messages.success(request, f"Registered {checkpoint.name}.")
    else:
        messages.error(request, "Give a name, a path and the kind of model.")
    return redirect(reverse("research-reward-models") + "#checkpoints")


def _suggestions(form: RunForm) -> dict:
    """Per base checkpoint, the values the form fills in: Llama 2's defaults under its suggestions."""
    return {str(c.pk): {**form.llama2, **c.suggested_hyperparameters} for c in form.fields["base_checkpoint"].queryset}


@researcher_required
def run_new(request):
    if request.method == "POST":
        form = RunForm(request.POST, user=request.user)
        if form.is_valid():
            data = form.cleaned_data
            try:
                run = runs.run_create_once(
                    created_by=request.user,
                    idempotency_key=data["request_key"] or uuid.uuid4().hex,
                    dataset=data["dataset"],
                    base_checkpoint=data["base_checkpoint"],
                    kind=data["kind"] or None,
                    name=data["name"],
                    margin_table=data["margin_table"] or None,
                    hyperparameters=form.hyperparameters(),
                ).run
            except DomainError as exc:
                form.add_error(exc.field if exc.field in form.fields else None, exc.detail)
            else:
                return redirect("research-reward-model", run_id=run.pk)
        status = 400
    else:
        form = RunForm(user=request.user)
        status = 200
        checkpoint = form.fields["base_checkpoint"].queryset.first()
        dataset = request.GET.get("dataset")
        initial = {**form.llama2, **(checkpoint.suggested_hyperparameters if checkpoint else {})}
        form = RunForm(initial={**initial, "dataset": dataset} if dataset else initial, user=request.user)
    suggestions = _suggestions(form)
    return render(
        request,
        "frontend/rewardmodel/new.html",
        {
            "form": form,
            "suggestions_json": json.dumps(suggestions),
            "llama2_json": json.dumps(form.llama2),
            "has_datasets": form.fields["dataset"].queryset.exists(),
            "has_checkpoints": bool(suggestions),
        },
        status=status,
    )


def _evaluation_context(evaluation) -> dict:
    report = evaluation.report or {}
    return {
        "evaluation": evaluation,
        "strengths": selectors.strength_table(report),
        "safety": selectors.safety_table(report),
        "batches": selectors.batch_table(report),
        "distribution_svg": plots.distribution_svg(report.get("distribution") or {}),
        "distribution": report.get("distribution") or {},
    }


def _curves(run) -> dict[str, str]:
    return plots.training_curves(selectors.run_curves(run), run.total_steps or None)


@researcher_required
def run_detail(request, run_id: int):
    run = get_object_or_404(selectors.runs_for(request.user), pk=run_id)
    evaluations = selectors.run_evaluations(run=run)
    stale = selectors.is_stale(run, settings.PREFLAB_TRAINING_STALE_SECONDS)
    return render(
        request,
        "frontend/rewardmodel/run.html",
        {
            "run": run,
            "stale": stale,
            "curves": _curves(run),
            "evaluations": [_evaluation_context(e) for e in evaluations],
            "evaluate_form": EvaluateForm(initial={"dataset": run.dataset_id}),
            "llama2_table_8": selectors.LLAMA2_TABLE_8,
            "hyperparameters": sorted(run.hyperparameters.items()),
            "llama2": runs.llama2_defaults(),
            "can_resume": run.status in (RunStatus.CANCELLED, RunStatus.FAILED) or stale,
        },
    )


@researcher_required
def run_curves(request, run_id: int):
    run = get_object_or_404(selectors.runs_for(request.user), pk=run_id)
    return render(request, "frontend/rewardmodel/_curves.html", {"curves": _curves(run), "run": run})


def _run_action(request, run_id: int, action, done: str):
    run = get_object_or_404(selectors.runs_for(request.user), pk=run_id)
    try:
        action(run=run, user=request.user)
    except DomainError as exc:
        messages.error(request, exc.detail)
    else:
        messages.success(request, done)
    return redirect("research-reward-model", run_id=run.pk)


@researcher_required
@require_POST
def run_cancel(request, run_id: int):
    return _run_action(request, run_id, runs.run_cancel, "Cancelling: the run stops before its next micro-batch.")


@researcher_required
@require_POST
def run_resume(request, run_id: int):
    return _run_action(request, run_id, runs.run_resume, "Queued again: it continues from its last checkpoint.")


@researcher_required
@require_POST
def run_evaluate(request, run_id: int):
    run = get_object_or_404(selectors.runs_for(request.user), pk=run_id)
    form = EvaluateForm(request.POST)
    if form.is_valid():
        try:
            runs.evaluation_create(run=run, dataset=form.cleaned_data["dataset"], created_by=request.user)
        except DomainError as exc:
            messages.error(request, exc.detail)
    else:
        messages.error(request, "Choose a dataset with a held-out split.")
    return redirect(reverse("research-reward-model", args=[run.pk]) + "#evaluations")


@researcher_required
def run_download(request, run_id: int):
    run = get_object_or_404(selectors.runs_for(request.user), pk=run_id)
    try:
        path, name = selectors.model_download(run)
    except DomainError as exc:
        return render(request, "frontend/datasets/unavailable.html", {"reason": exc.detail}, status=exc.status_code)
    response = StreamingHttpResponse(stream_zip(path, name, exclude=["optimizer.pt"]), content_type="application/zip")
    response["Content-Disposition"] = f'attachment; filename="{name}.zip"'
    return response


def _csv_response(rows: list[list], filename: str) -> HttpResponse:
    response = HttpResponse(content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    csv_safe.writer(response).writerows(rows)
    return response


@researcher_required
def run_metrics_csv(request, run_id: int):
    run = get_object_or_404(selectors.runs_for(request.user), pk=run_id)
    columns = ["step", "loss", "accuracy", "learning_rate", "grad_norm", "tokens_per_second", "elapsed_seconds"]
    rows = [columns] + [[row[c] for c in columns] for row in selectors.run_curves(run)]
    return _csv_response(rows, f"preflab-rm-{run.pk}-curves.csv")


@researcher_required
def evaluation_csv(request, evaluation_id: int, table: str):
    evaluation = get_object_or_404(selectors.evaluations_for(request.user), pk=evaluation_id)
    if table == "pairs":
        try:
            return pair_rewards_response(evaluation, selectors.evaluation_pair_rewards(evaluation), "csv")
        except DomainError as exc:
            return render(request, "frontend/datasets/unavailable.html", {"reason": exc.detail}, status=409)
    report = evaluation.report or {}
    rows = selectors.distribution_csv_rows(report) if table == "distribution" else selectors.evaluation_csv_rows(report)
    return _csv_response(rows, f"preflab-rm-{evaluation.run_id}-evaluation-{evaluation.pk}-{table}.csv")


@researcher_required
def runs_compare(request):
    ids = [int(i) for i in request.GET.getlist("runs") if i.isdigit()]
    chosen = selectors.runs_in_order(user=request.user, run_ids=ids)
    test_sets = defaultdict(list)
    for run in chosen:
        for evaluation in run.evaluations.all():
            if evaluation.status == "done":
                test_sets[evaluation.dataset].append(
                    {
                        "run": run,
                        "strengths": selectors.strength_table(evaluation.report),
                        "safety": selectors.safety_table(evaluation.report),
                    }
                )
    series = []
    for i, run in enumerate(chosen):
        rows = selectors.run_curves(run)
        points = list(zip([r["step"] for r in rows], plots.smooth([r["loss"] for r in rows]), strict=True))
        series.append(plots.Series(f"#{run.pk} {run.name[:40]}", _PALETTE[i % len(_PALETTE)], points, width=2))
    loss_svg = plots.curve_svg(
        series,
        title="Smoothed training loss",
        y_label="Ranking loss",
        width=760,
        height=280,
        empty="The chosen runs have no steps yet.",
    )
    return render(
        request,
        "frontend/rewardmodel/compare.html",
        {
            "runs": chosen,
            "test_sets": [(dataset, rows) for dataset, rows in test_sets.items()],
            "loss_svg": loss_svg,
            "llama2_table_8": selectors.LLAMA2_TABLE_8,
            "llama2_table_29": selectors.LLAMA2_TABLE_29,
            "all_runs": selectors.runs_for(request.user)[:50],
            "chosen_ids": ids,
        },
    )


# --- using a model ------------------------------------------------------------------------------


def _run(request, run_id):
    return get_object_or_404(selectors.runs_for(request.user), pk=run_id)


@researcher_required
def score(request):
    result = None
    if request.method == "POST":
        form = ScoreForm(request.POST, user=request.user)
        if form.is_valid():
            data = form.cleaned_data
            context = rewards.parse_dialogue(data["dialogue"])
            try:
                if data["mode"] == "hybrid":
                    result = rewards.hybrid_score(
                        helpfulness_run=_run(request, data["helpfulness_run"]),
                        safety_run=_run(request, data["safety_run"]),
                        context=context,
                        response=data["response"],
                        is_safety_prompt=data["is_safety_prompt"],
                    )
                    result["mode"] = "hybrid"
                else:
                    result = rewards.reward_score(
                        run=_run(request, data["run"]), context=context, response=data["response"]
                    )
                    result["mode"] = "single"
                result["context"] = context
            except DomainError as exc:
                form.add_error(exc.field if exc.field in form.fields else None, exc.detail)
    else:
        form = ScoreForm(user=request.user)
    return render(
        request,
        "frontend/rewardmodel/score.html",
        {"form": form, "result": result, "has_models": selectors.scorable_runs(request.user).exists()},
        status=400 if form.errors else 200,
    )


def _best_of_k_again(request) -> dict:
    """The form filled in with an earlier preview's settings (?again=<id>): sample it once more."""
    again = request.GET.get("again", "")
    preview = selectors.best_of_k_preview_for(user=request.user, preview_id=int(again)) if again.isdigit() else None
    if preview is None:
        return {}
    return {
        "variant": preview.variant_id,
        "k": preview.k,
        "temperature": preview.temperature,
        "max_new_tokens": preview.max_new_tokens,
        "run": preview.run_id,
        "safety_run": preview.safety_run_id,
        "is_safety_prompt": preview.is_safety_prompt,
        "dialogue": rewards.dialogue_text(preview.context),
    }


@researcher_required
def best_of_k(request):
    """The form: a valid one queues a preview for a sampling worker and goes to its page at once."""
    if request.method == "POST":
        form = BestOfKForm(request.POST, user=request.user)
        if form.is_valid():
            data = form.cleaned_data
            try:
                preview = rewards.best_of_k_preview_create(
                    created_by=request.user,
                    variant=get_object_or_404(sampling_selectors.variants_for(request.user), pk=data["variant"]),
                    context=rewards.parse_dialogue(data["dialogue"]),
                    k=data["k"],
                    run=_run(request, data["run"]),
                    safety_run=_run(request, data["safety_run"]) if data["safety_run"] else None,
                    is_safety_prompt=data["is_safety_prompt"],
                    temperature=data["temperature"],
                    max_new_tokens=data["max_new_tokens"],
                )
            except DomainError as exc:
                form.add_error(exc.field if exc.field in form.fields else None, exc.detail)
            else:
                return redirect("research-best-of-k-preview", preview_id=preview.pk)
    else:
        form = BestOfKForm(user=request.user, initial=_best_of_k_again(request))
    return render(
        request,
        "frontend/rewardmodel/best_of_k.html",
        {
            "form": form,
            "previews": selectors.best_of_k_previews_for(request.user)[:10],
            "k_max": settings.PREFLAB_BEST_OF_K_MAX,
            "has_models": selectors.scorable_runs(request.user).exists(),
        },
        status=400 if form.errors else 200,
    )


@researcher_required
def best_of_k_preview(request, preview_id):
    """One preview: its settings, "sampling…" while a worker has it, then the ranked responses or the error."""
    preview = get_object_or_404(selectors.best_of_k_previews_for(request.user), pk=preview_id)
    return render(request, "frontend/rewardmodel/best_of_k_preview.html", {"preview": preview})
