"""API shapes of datasets, exports and imported sources. Validation of meaning lives in the services."""

from django.urls import reverse
from rest_framework import serializers

from annotation.models import Focus
from sampling.models import PairSelection

from .models import (
    DatasetBuild,
    DatasetExport,
    ExportFormat,
    ExternalSource,
    FileType,
    HeldOutMode,
    MarginTable,
    Mix,
    SourceUsage,
)


class DatasetBuildCreateSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=200)
    batches = serializers.ListField(child=serializers.IntegerField(), required=False, default=list)
    focus = serializers.ChoiceField(choices=Focus.choices, required=False, allow_blank=True, default="")
    weeks = serializers.ListField(child=serializers.DateField(), required=False, default=list)
    vendors = serializers.ListField(child=serializers.IntegerField(), required=False, default=list)
    min_agreement = serializers.FloatField(required=False, allow_null=True, default=None)
    unanimous_only = serializers.BooleanField(required=False, default=False)
    pair_selections = serializers.ListField(
        child=serializers.ChoiceField(choices=PairSelection.choices),
        required=False,
        default=list,
        help_text="Only comparisons whose pair was chosen by these rules (random: drawn at random or imported).",
    )
    label_source = serializers.ChoiceField(
        choices=["majority", "dawid_skene"],
        default="majority",
        help_text="Labels by majority vote, or by Dawid-Skene fitted per batch on the eligible ratings.",
    )
    min_posterior = serializers.FloatField(
        required=False,
        allow_null=True,
        default=None,
        help_text="Dawid-Skene only: leave out pairs whose label's posterior is below this (0.5 to 1).",
    )
    exclude_annotators = serializers.ListField(child=serializers.IntegerField(), required=False, default=list)
    external_sources = serializers.ListField(child=serializers.IntegerField(), required=False, default=list)
    mix = serializers.ChoiceField(choices=Mix.choices, default=Mix.NONE)
    margin_table = serializers.ChoiceField(choices=MarginTable.choices, default=MarginTable.SMALL)
    seed = serializers.IntegerField(required=False, allow_null=True, default=None)
    held_out_mode = serializers.ChoiceField(choices=HeldOutMode.choices, default=HeldOutMode.COUNT)
    test_count = serializers.IntegerField(required=False, allow_null=True, default=None, min_value=0)
    test_fraction = serializers.FloatField(required=False, allow_null=True, default=None)


class DatasetBuildSerializer(serializers.ModelSerializer):
    percent = serializers.FloatField(read_only=True)
    created_by = serializers.CharField(source="created_by.username", default=None, read_only=True)

    class Meta:
        model = DatasetBuild
        fields = [
            "id",
            "name",
            "status",
            "percent",
            "progress_done",
            "progress_total",
            "mix",
            "margin_table",
            "seed",
            "held_out_mode",
            "test_count",
            "test_fraction",
            "selection",
            "counts",
            "exclusions",
            "manifest",
            "error",
            "created_by",
            "created_at",
            "started_at",
            "finished_at",
        ]
        read_only_fields = fields


class DatasetExportCreateSerializer(serializers.Serializer):
    build = serializers.IntegerField()
    format = serializers.ChoiceField(choices=ExportFormat.choices, default=ExportFormat.TRL)
    file_type = serializers.ChoiceField(choices=FileType.choices, default=FileType.JSONL)


class DatasetExportSerializer(serializers.ModelSerializer):
    percent = serializers.FloatField(read_only=True)
    files = serializers.SerializerMethodField()
    manifest_url = serializers.SerializerMethodField()

    class Meta:
        model = DatasetExport
        fields = [
            "id",
            "build",
            "format",
            "file_type",
            "status",
            "percent",
            "rows_done",
            "rows_total",
            "files",
            "content_hash",
            "manifest_url",
            "manifest",
            "error",
            "created_at",
            "finished_at",
        ]
        read_only_fields = fields

    def _url(self, export: DatasetExport, name: str) -> str:
        path = reverse("dataset-export-file", kwargs={"pk": export.pk, "name": name})
        request = self.context.get("request")
        return request.build_absolute_uri(path) if request else path

    def get_files(self, export: DatasetExport) -> list[dict]:
        return [{**f, "url": self._url(export, f["name"])} for f in export.files]

    def get_manifest_url(self, export: DatasetExport) -> str | None:
        return self._url(export, "manifest.json") if export.status == "done" else None


class ExternalSourceSerializer(serializers.ModelSerializer):
    class Meta:
        model = ExternalSource
        fields = [
            "id",
            "name",
            "focus",
            "format",
            "file_type",
            "filename",
            "sha256",
            "row_count",
            "usage",
            "test_fraction",
            "split_seed",
            "created_at",
        ]
        read_only_fields = fields


class ExternalSourceImportSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=200)
    focus = serializers.ChoiceField(choices=Focus.choices)
    format = serializers.ChoiceField(choices=["auto", "hh_rlhf", "trl", "ultrafeedback"], default="auto")
    description = serializers.CharField(required=False, allow_blank=True, default="")
    usage = serializers.ChoiceField(
        choices=SourceUsage.choices,
        default=SourceUsage.TRAIN,
        help_text="train: training pairs only; test: an evaluation-only held-out set; split: test_fraction of the "
        "rows held out by a seeded hash of (split_seed, file, row).",
    )
    test_fraction = serializers.FloatField(default=0.0, min_value=0.0, max_value=1.0)
    split_seed = serializers.IntegerField(default=0, min_value=0, max_value=2**62)
    file = serializers.FileField()
