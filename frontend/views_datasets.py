"""Dataset pages (researchers only): build comparison datasets, import open-source data, export and download.

Forms post to these views, which validate input and call one service; the progress of a running
build or export is polled from the API by datasets.js.
"""

import json
import re

from django import forms
from django.contrib import messages
from django.http import FileResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from accounts.selectors import vendors_for
from annotation import selectors as annotation_selectors
from config.exceptions import DomainError
from preference_data import selectors, services
from preference_data.models import (
    DatasetBuild,
    ExportFormat,
    FileType,
    HeldOutMode,
    MarginTable,
    Mix,
    SourceUsage,
)
from sampling.models import PairSelection

from .views import researcher_required

_PSEUDONYM = re.compile(r"^(?:annotator-)?0*(\d+)$")


class BuildForm(forms.Form):
    name = forms.CharField(max_length=200)
    mix = forms.ChoiceField(choices=Mix.choices, initial=Mix.NONE)
    margin_table = forms.ChoiceField(choices=MarginTable.choices, initial=MarginTable.SMALL)
    batches = forms.TypedMultipleChoiceField(coerce=int, required=False, widget=forms.CheckboxSelectMultiple)
    focus = forms.ChoiceField(
        choices=[("", "Any focus"), ("helpfulness", "Helpfulness only"), ("safety", "Safety only")], required=False
    )
    weeks = forms.MultipleChoiceField(required=False, widget=forms.CheckboxSelectMultiple)
    vendors = forms.TypedMultipleChoiceField(coerce=int, required=False, widget=forms.CheckboxSelectMultiple)
    external_sources = forms.TypedMultipleChoiceField(coerce=int, required=False, widget=forms.CheckboxSelectMultiple)
    min_agreement = forms.FloatField(required=False, min_value=0.5, max_value=1.0)
    unanimous_only = forms.BooleanField(required=False)
    pair_selections = forms.MultipleChoiceField(
        choices=PairSelection.choices, required=False, widget=forms.CheckboxSelectMultiple
    )
    label_source = forms.ChoiceField(
        choices=[("majority", "Majority vote"), ("dawid_skene", "Dawid-Skene")], initial="majority"
    )
    min_posterior = forms.FloatField(required=False, min_value=0.5, max_value=1.0)
    exclude_annotators = forms.CharField(required=False)
    held_out_mode = forms.ChoiceField(choices=HeldOutMode.choices, initial=HeldOutMode.COUNT)
    test_count = forms.IntegerField(min_value=0, required=False)
    test_fraction = forms.FloatField(min_value=0.0, max_value=0.9, required=False)
    seed = forms.IntegerField(required=False)

    def __init__(self, *args, user, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["batches"].choices = [(b.id, b.name) for b in annotation_selectors.batches_newest_first(user=user)]
        weeks = annotation_selectors.batch_weeks(user=user)
        self.fields["weeks"].choices = [(w.isoformat(), w.isoformat()) for w in weeks]
        self.fields["vendors"].choices = [(v.id, v.name) for v in vendors_for(user=user)]
        self.fields["external_sources"].choices = [(s.id, s.name) for s in selectors.external_sources_for(user)]

    def clean_exclude_annotators(self) -> list[int]:
        ids = []
        for item in re.split(r"[\s,]+", self.cleaned_data["exclude_annotators"].strip()):
            if not item:
                continue
            match = _PSEUDONYM.match(item)
            if not match:
                raise forms.ValidationError(f"{item!r} is neither an annotator pseudonym (annotator-00012) nor an id.")
            ids.append(int(match.group(1)))
        return ids


class ImportForm(forms.Form):
    name = forms.CharField(max_length=200)
    focus = forms.ChoiceField(
        choices=[("helpfulness", "Helpful-style (helpfulness)"), ("safety", "Harmless-style (safety)")]
    )
    format = forms.ChoiceField(
        choices=[
            ("auto", "Detect"),
            ("hh_rlhf", "HH-RLHF transcripts"),
            ("trl", "TRL prompt/chosen/rejected"),
            ("ultrafeedback", "UltraFeedback-binarized (scores map to strengths)"),
        ]
    )
    usage = forms.ChoiceField(choices=SourceUsage.choices, initial=SourceUsage.TRAIN, required=False)
    test_fraction = forms.FloatField(min_value=0, max_value=1, required=False, initial=0.1)
    split_seed = forms.IntegerField(min_value=0, required=False, initial=0)
    file = forms.FileField()


class ExportForm(forms.Form):
    format = forms.ChoiceField(choices=ExportFormat.choices)
    file_type = forms.ChoiceField(choices=FileType.choices)


def _index(request, build_form: BuildForm | None = None, import_form: ImportForm | None = None, status: int = 200):
    builds = selectors.builds_with_exports(user=request.user)
    return render(
        request,
        "frontend/datasets/index.html",
        {
            "builds": builds,
            "sources": selectors.external_sources_for(request.user),
            "form": build_form or BuildForm(initial={"held_out_mode": HeldOutMode.COUNT}, user=request.user),
            "import_form": import_form or ImportForm(),
            "batches": annotation_selectors.batches_newest_first(user=request.user),
        },
        status=status,
    )


@researcher_required
def datasets(request):
    if request.method != "POST":
        return _index(request)
    form = BuildForm(request.POST, user=request.user)
    if not form.is_valid():
        return _index(request, build_form=form, status=400)
    data = form.cleaned_data
    try:
        build = services.dataset_build_create(
            created_by=request.user,
            name=data["name"],
            batch_ids=data["batches"],
            focus=data["focus"],
            weeks=data["weeks"],
            vendor_ids=data["vendors"],
            min_agreement=data["min_agreement"],
            unanimous_only=data["unanimous_only"],
            pair_selections=data["pair_selections"],
            label_source=data["label_source"],
            min_posterior=data["min_posterior"],
            exclude_annotator_ids=data["exclude_annotators"],
            external_source_ids=data["external_sources"],
            mix=data["mix"],
            margin_table=data["margin_table"],
            seed=data["seed"],
            held_out_mode=data["held_out_mode"],
            test_count=data["test_count"],
            test_fraction=data["test_fraction"],
        )
    except DomainError as exc:
        form.add_error(exc.field if exc.field in form.fields else None, exc.detail)
        return _index(request, build_form=form, status=exc.status_code)
    return redirect("research-dataset", build_id=build.pk)


@researcher_required
@require_POST
def import_source(request):
    form = ImportForm(request.POST, request.FILES)
    if not form.is_valid():
        return _index(request, import_form=form, status=400)
    data = form.cleaned_data
    try:
        source = services.external_source_import(
            name=data["name"],
            focus=data["focus"],
            format=data["format"],
            usage=data["usage"] or SourceUsage.TRAIN,
            test_fraction=data["test_fraction"] or 0.0,
            split_seed=data["split_seed"] or 0,
            source=data["file"],
            filename=data["file"].name,
            created_by=request.user,
        )
    except DomainError as exc:
        form.add_error(exc.field if exc.field in form.fields else None, exc.detail)
        errors = exc.extra.get("errors", [])
        return render(
            request,
            "frontend/datasets/import_failed.html",
            {"form": form, "detail": exc.detail, "errors": errors[:50], "more": max(0, len(errors) - 50)},
            status=exc.status_code,
        )
    messages.success(request, f"Imported {source.row_count} pairs from {source.filename} as {source.name!r}.")
    return redirect(reverse("research-datasets") + "#sources")


@researcher_required
def dataset(request, build_id: int):
    build = get_object_or_404(selectors.builds_for(request.user), pk=build_id)
    if request.method == "POST":
        form = ExportForm(request.POST)
        if form.is_valid():
            try:
                services.dataset_export_create(created_by=request.user, build=build, **form.cleaned_data)
            except DomainError as exc:
                messages.error(request, exc.detail)
        else:
            messages.error(request, "Choose a format and a file type.")
        return redirect(reverse("research-dataset", args=[build.pk]) + "#exports")
    return render(
        request,
        "frontend/datasets/detail.html",
        {
            "build": build,
            "tables": selectors.build_tables(build),
            "exports": selectors.build_exports(user=request.user, build=build),
            "export_form": ExportForm(initial={"format": ExportFormat.TRL, "file_type": FileType.JSONL}),
            "manifest_json": json.dumps(build.manifest or {"selection": build.selection}, indent=2, ensure_ascii=False),
        },
    )


@researcher_required
def export_file(request, export_id: int, name: str):
    export = get_object_or_404(selectors.exports_for(request.user), pk=export_id)
    try:
        path = selectors.export_file_path(export, name)
    except DomainError as exc:
        return render(request, "frontend/datasets/unavailable.html", {"reason": exc.detail}, status=exc.status_code)
    return FileResponse(open(path, "rb"), as_attachment=True, filename=f"{_slug(export.build)}-{path.name}")


def _slug(build: DatasetBuild) -> str:
    return f"preflab-dataset-{build.pk}-" + re.sub(r"[^a-z0-9]+", "-", build.name.lower()).strip("-")[:60]
