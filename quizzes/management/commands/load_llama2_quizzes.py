from django.core.management.base import BaseCommand

from quizzes.services import LLAMA2_TEMPLATE, llama2_template_load


class Command(BaseCommand):
    help = "Load the four Llama 2 selection tests (quizzes/fixtures/llama2_selection.json) with the paper's thresholds."

    def add_arguments(self, parser):
        parser.add_argument("--publish", action="store_true", help="Open them to candidates right away.")
        parser.add_argument(
            "--new-version", action="store_true", help="Add new versions even when the quizzes already exist."
        )

    def handle(self, *args, publish: bool, new_version: bool, **options):
        quizzes = llama2_template_load(created_by=None, publish=publish, if_missing=not new_version)
        self.stdout.write(self.style.SUCCESS(f"Loaded from {LLAMA2_TEMPLATE.name}:"))
        for quiz in quizzes:
            state = "published" if quiz.is_published else "not published"
            self.stdout.write(f"  {quiz.slug} v{quiz.version}: {quiz.title} ({state})")
