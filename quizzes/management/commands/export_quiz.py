import json

from django.core.management.base import BaseCommand, CommandError

from quizzes.documents import quiz_document
from quizzes.models import Quiz


class Command(BaseCommand):
    help = "Print a quiz in the JSON import format (the newest version unless --quiz-version is given)."

    def add_arguments(self, parser):
        parser.add_argument("slug")
        parser.add_argument("--quiz-version", type=int, dest="quiz_version")

    def handle(self, *args, slug: str, quiz_version: int | None, **options):
        quizzes = Quiz.objects.filter(slug=slug).order_by("-version")
        quiz = quizzes.filter(version=quiz_version).first() if quiz_version else quizzes.first()
        if quiz is None:
            raise CommandError(f"No quiz {slug!r}" + (f" version {quiz_version}" if quiz_version else "") + ".")
        self.stdout.write(json.dumps(quiz_document(quiz), indent=2, ensure_ascii=False))
