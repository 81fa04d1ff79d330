import shutil
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from accounts.models import User
from config.exceptions import DomainError
from preference_data.models import DatasetBuild, ExportFormat, FileType, HeldOutMode, JobStatus, MarginTable, Mix
from preference_data.services import (
    dataset_build_create,
    dataset_build_run,
    dataset_export_create,
    dataset_export_run,
)


class Command(BaseCommand):
    help = (
        "Export a comparison dataset with its manifest: an existing build (--build), or a new build of the "
        "given selection. Runs in this process, not on a worker."
    )

    def add_arguments(self, parser):
        parser.add_argument("--build", type=int, help="Export this finished build instead of building one.")
        parser.add_argument("--name", default="", help="Name of the new build.")
        parser.add_argument("--batch", type=int, action="append", default=[], help="Batch id (repeat; none = all).")
        parser.add_argument("--focus", choices=["helpfulness", "safety"], default="")
        parser.add_argument("--week", action="append", default=[], help="Batch week, YYYY-MM-DD (repeat).")
        parser.add_argument("--vendor", type=int, action="append", default=[], help="Only ratings by this vendor.")
        parser.add_argument("--source", type=int, action="append", default=[], help="Imported source id (repeat).")
        parser.add_argument("--exclude-annotator", type=int, action="append", default=[], help="Flagged annotator id.")
        parser.add_argument("--min-agreement", type=float, default=None)
        parser.add_argument("--unanimous-only", action="store_true")
        parser.add_argument("--labels", choices=["majority", "dawid_skene"], default="majority", help="Label source.")
        parser.add_argument("--min-posterior", type=float, default=None, help="Dawid-Skene labels only.")
        parser.add_argument("--mix", choices=Mix.values, default=Mix.NONE)
        parser.add_argument("--margin-table", choices=MarginTable.values, default=MarginTable.SMALL)
        parser.add_argument("--seed", type=int, default=None)
        parser.add_argument("--held-out-mode", choices=HeldOutMode.values, default=HeldOutMode.COUNT)
        parser.add_argument("--test-count", type=int, default=None)
        parser.add_argument("--test-fraction", type=float, default=None)
        parser.add_argument("--format", choices=ExportFormat.values, default=ExportFormat.TRL)
        parser.add_argument("--file-type", choices=FileType.values, default=FileType.JSONL)
        parser.add_argument("--user", default="", help="Username recorded as the creator.")
        parser.add_argument("--output", help="Also copy the files and manifest into this folder.")

    def handle(self, *args, **o):
        user = User.objects.filter(username=o["user"]).first() if o["user"] else None
        if o["user"] and user is None:
            raise CommandError(f"No user {o['user']!r}.")
        try:
            build = self._build(o, user)
            export = dataset_export_create(
                created_by=user, build=build, format=o["format"], file_type=o["file_type"], enqueue=False
            )
            export = dataset_export_run(export_id=export.pk)
        except DomainError as exc:
            raise CommandError(exc.detail) from None
        if export.status != JobStatus.DONE:
            raise CommandError(f"The export failed: {export.error}")
        for f in export.files:
            self.stdout.write(f"  {f['name']}: {f['rows']} rows, {f['bytes']} bytes, sha256 {f['sha256']}")
        self.stdout.write(f"  content hash {export.content_hash}")
        source = export.directory
        if o["output"]:
            target = Path(o["output"])
            target.mkdir(parents=True, exist_ok=True)
            for name in [f["name"] for f in export.files] + ["manifest.json"]:
                shutil.copy2(source / name, target / name)
            source = target
        self.stdout.write(self.style.SUCCESS(f"Exported build {build.pk} ({build.name!r}) to {source}"))

    def _build(self, o: dict, user) -> DatasetBuild:
        if o["build"]:
            build = DatasetBuild.objects.filter(pk=o["build"]).first()
            if build is None:
                raise CommandError(f"No dataset build {o['build']}.")
            return build
        build = dataset_build_create(
            created_by=user,
            name=o["name"] or f"{o['mix']} dataset ({o['margin_table']} margin)",
            batch_ids=o["batch"],
            focus=o["focus"],
            weeks=o["week"],
            vendor_ids=o["vendor"],
            min_agreement=o["min_agreement"],
            unanimous_only=o["unanimous_only"],
            label_source=o["labels"],
            min_posterior=o["min_posterior"],
            exclude_annotator_ids=o["exclude_annotator"],
            external_source_ids=o["source"],
            mix=o["mix"],
            margin_table=o["margin_table"],
            seed=o["seed"],
            held_out_mode=o["held_out_mode"],
            test_count=o["test_count"],
            test_fraction=o["test_fraction"],
            enqueue=False,
        )
        build = dataset_build_run(build_id=build.pk)
        if build.status != JobStatus.DONE:
            raise CommandError(f"The build failed: {build.error}")
        split, exclusions = build.counts["by_split"], build.exclusions
        reasons = {k: v for k, v in exclusions["by_reason"].items() if v}
        self.stdout.write(
            f"Built {build.name!r}: {split.get('train', 0)} train, {split.get('test', 0)} test pairs; "
            f"{exclusions['total']} comparisons excluded {reasons}"
        )
        return build
