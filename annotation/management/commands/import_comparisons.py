from django.core.management.base import BaseCommand, CommandError

from annotation.models import Batch
from annotation.services import comparisons_import
from config.exceptions import DomainError
from core.text import control_character_problem


class Command(BaseCommand):
    help = "Import ready-made comparisons from JSONL into a batch; the whole file validates or nothing is written."

    def add_arguments(self, parser):
        parser.add_argument("batch", help="Batch id or name")
        parser.add_argument("path", help="JSONL file")
        parser.add_argument(
            "--allow-markup",
            action="store_true",
            help="Accept chat-template markup ([INST], <<SYS>>, <|im_start|> …) in the file's texts.",
        )

    def handle(self, *args, batch, path, allow_markup=False, **options):
        if problem := control_character_problem(batch):
            raise CommandError(f"The batch argument {problem}.")
        target = (
            Batch.objects.filter(pk=int(batch)).first() if batch.isdigit() else Batch.objects.filter(name=batch).first()
        )
        if target is None:
            raise CommandError(f"No batch {batch!r}.")
        try:
            with open(path, "rb") as fh:
                count = comparisons_import(batch=target, source=fh, allow_markup=allow_markup)
        except OSError as exc:
            raise CommandError(f"Cannot read {path}: {exc.strerror}") from None
        except DomainError as exc:
            raise CommandError(exc.detail) from None
        self.stdout.write(self.style.SUCCESS(f"Imported {count} comparisons into {target.name!r}."))
