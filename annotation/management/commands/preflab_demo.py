import time

from django.conf import settings
from django.core.management.base import BaseCommand

from annotation.demo import DEMO_PASSWORD, load_demo


class Command(BaseCommand):
    help = "Load the demo workspace (idempotent), convert the embedded model once, and print the log-ins."

    def handle(self, *args, **options):
        started = time.monotonic()
        result = load_demo()
        self.stdout.write(self.style.SUCCESS(f"Preflab demo workspace ready ({time.monotonic() - started:.1f} s)."))
        for batch in result["batches"]:
            self.stdout.write(f"  batch {batch.name!r}: {batch.comparisons.count()} comparisons")
        if result["simulated_ratings"]:
            self.stdout.write(f"  {result['simulated_ratings']} simulated ratings so labels show up")
        self.stdout.write(result["quizzes"]["summary"])

        from sampling.embedded import ensure_embedded_checkpoint

        started = time.monotonic()
        path = ensure_embedded_checkpoint(settings.PREFLAB_MODEL_CACHE)
        self.stdout.write(f"\nEmbedded SmolLM2-135M-Instruct at {path} ({time.monotonic() - started:.1f} s).")

        from annotation.demo import HELPFULNESS_GUIDELINES
        from annotation.models import Batch
        from leaderboard.demo import load_loop_demo

        started = time.monotonic()
        loop = load_loop_demo(
            researcher=next(u for u in result["people"] if u.username == "researcher"),
            helpful_batch=Batch.objects.get(name="Week 1 · helpfulness"),
            guidelines=HELPFULNESS_GUIDELINES,
        )
        self.stdout.write(
            f"\nThe RLHF loop ({time.monotonic() - started:.1f} s): reward model {loop['run'].name!r}, "
            f"variant {loop['best_of_k']}, batches "
            + ", ".join(repr(b.name) for b in loop["batches"])
            + f" ({loop['queued']} pairs queued for the worker); see Leaderboard."
        )

        self.stdout.write(f"\nDemo accounts (password for all: {DEMO_PASSWORD}):")
        for user in result["people"]:
            vendor = f" ({user.vendor})" if user.vendor else ""
            self.stdout.write(f"  {user.username:<18} {user.get_role_display()}{vendor}")
