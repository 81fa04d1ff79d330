from django.core.management.base import BaseCommand

from annotation.demo import DEMO_PASSWORD, load_demo


class Command(BaseCommand):
    help = "Load the demo workspace (idempotent) and print the log-ins."

    def handle(self, *args, **options):
        result = load_demo()
        self.stdout.write(self.style.SUCCESS("Preflab demo is ready."))
        for batch in result["batches"]:
            self.stdout.write(f"  batch {batch.name!r}: {batch.comparisons.count()} comparisons")
        if result["simulated_ratings"]:
            self.stdout.write(f"  {result['simulated_ratings']} simulated ratings so labels show up")
        self.stdout.write(result["quizzes"]["summary"])
        self.stdout.write(f"\nLog in at http://127.0.0.1:8000/ with (password for all: {DEMO_PASSWORD}):")
        for user in result["people"]:
            vendor = f" ({user.vendor})" if user.vendor else ""
            self.stdout.write(f"  {user.username:<18} {user.get_role_display()}{vendor}")
