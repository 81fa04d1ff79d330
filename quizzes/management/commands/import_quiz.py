from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from config.exceptions import DomainError
from quizzes.services import quizzes_import


class Command(BaseCommand):
    help = "Import a quiz (or a bundle of quizzes) from a JSON file; an existing slug gets a new version."

    def add_arguments(self, parser):
        parser.add_argument("path", type=Path)
        parser.add_argument("--publish", action="store_true")

    def handle(self, *args, path: Path, publish: bool, **options):
        try:
            quizzes = quizzes_import(document=path.read_bytes(), created_by=None, publish=publish)
        except OSError as exc:
            raise CommandError(f"Cannot read {path}: {exc}") from None
        except DomainError as exc:
            lines = exc.extra.get("errors") or [exc.detail]
            raise CommandError("\n".join(["Nothing was imported:", *lines])) from None
        for quiz in quizzes:
            self.stdout.write(f"Imported {quiz.slug} v{quiz.version}: {quiz.title}")
