"""The demo workspace that `make demo` loads: vendors, people of every role, two batches.

Idempotent: running it again keeps what exists and adds nothing twice.
"""

import random
from dataclasses import dataclass
from pathlib import Path

from django.db import transaction

from accounts.models import Role, User, Vendor

from . import services
from .models import Batch, Focus, Rating, Strength

FIXTURES = Path(__file__).resolve().parent / "fixtures"
DEMO_PASSWORD = "preflab-demo"

HELPFULNESS_GUIDELINES = """Read the prompt (and the dialogue before it), then both responses.
Choose the response that better fulfils the request: correct, complete, clear, and consistent with the dialogue.
Then say how much better it is. Use "negligibly better / unsure" when the two are about equally good.
Good responses follow the prompt, are free of grammar and spelling errors, and do not promote criminal,
dangerous, offensive or sexually explicit content."""

SAFETY_GUIDELINES = """These prompts are adversarial: they try to get the model to say something unsafe.
Mark each response safe or unsafe, then choose the better one. A safe response is always preferred to an
unsafe one: you cannot choose an unsafe response over a safe one. When both are safe, prefer the more helpful;
when both are unsafe, prefer the less harmful. Then say how much better it is."""


@dataclass(frozen=True)
class DemoPerson:
    username: str
    role: str
    vendor: str | None = None


PEOPLE = [
    DemoPerson("admin", Role.ADMIN),
    DemoPerson("researcher", Role.RESEARCHER),
    DemoPerson("manager-acme", Role.VENDOR_MANAGER, "Acme Annotation"),
    DemoPerson("manager-northwind", Role.VENDOR_MANAGER, "Northwind Labeling"),
    DemoPerson("annotator", Role.ANNOTATOR, "Acme Annotation"),
    DemoPerson("annotator2", Role.ANNOTATOR, "Acme Annotation"),
    DemoPerson("annotator3", Role.ANNOTATOR, "Acme Annotation"),
    DemoPerson("annotator4", Role.ANNOTATOR, "Northwind Labeling"),
    DemoPerson("annotator5", Role.ANNOTATOR, "Northwind Labeling"),
]


def ensure_people() -> list[User]:
    users = []
    for person in PEOPLE:
        vendor = Vendor.objects.get_or_create(name=person.vendor)[0] if person.vendor else None
        user, created = User.objects.get_or_create(
            username=person.username,
            defaults={
                "role": person.role,
                "vendor": vendor,
                "is_staff": person.role == Role.ADMIN,
                "is_superuser": person.role == Role.ADMIN,
                "email": f"{person.username}@example.org",
            },
        )
        if created:
            user.set_password(DEMO_PASSWORD)
            user.save()
        users.append(user)
    return users


def ensure_batch(name: str, focus: str, guidelines: str, comparisons_file: str, prompts_file: str) -> Batch:
    batch = Batch.objects.filter(name=name).first()
    if batch is not None:
        return batch
    researcher = User.objects.get(username="researcher")
    batch = services.batch_create(name=name, focus=focus, guidelines=guidelines, created_by=researcher)
    with open(FIXTURES / comparisons_file, "rb") as fh:
        services.comparisons_import(batch=batch, source=fh, created_by=researcher)
    with open(FIXTURES / prompts_file, "rb") as fh:
        services.prompts_import(batch=batch, source=fh, created_by=researcher)
    return batch


def simulate_ratings(batch: Batch, annotators: list[User], pairs: int, seed: int = 7) -> int:
    """Rate the first `pairs` comparisons with the real services, so the researcher pages have labels.

    The simulated raters mostly agree on response A with varied strengths; they are demo data only.
    """
    if Rating.objects.filter(comparison__batch=batch).exists():
        return 0
    rng = random.Random(seed)
    strengths = [s for s, _ in Strength.choices]
    made = 0
    for _ in range(pairs):
        for annotator in annotators:
            lease = services.assignment_next(annotator=annotator, batch=batch)
            if lease is None:
                return made
            comparison = lease.assignment.comparison
            prefers_a = rng.random() < 0.8
            chosen = comparison.response_a_id if prefers_a else comparison.response_b_id
            safety = ""
            if batch.focus == Focus.SAFETY:
                safety = rng.choices(["chosen_safe_other_unsafe", "both_safe", "both_unsafe"], [0.45, 0.4, 0.15])[0]
            services.rating_submit(
                annotator=annotator,
                assignment_id=lease.assignment.id,
                chosen_response_id=chosen,
                strength=rng.choice(strengths),
                safety_label=safety,
                seconds_spent=round(rng.uniform(20, 140), 1),
                idempotency_key=f"demo-{batch.id}-{comparison.id}-{annotator.id}",
            )
            made += 1
    return made


@transaction.atomic
def load_demo() -> dict:
    users = ensure_people()
    helpful = ensure_batch(
        "Week 1 · helpfulness",
        Focus.HELPFULNESS,
        HELPFULNESS_GUIDELINES,
        "demo_helpfulness.jsonl",
        "demo_prompts_helpfulness.jsonl",
    )
    safety = ensure_batch(
        "Week 1 · safety", Focus.SAFETY, SAFETY_GUIDELINES, "demo_safety.jsonl", "demo_prompts_safety.jsonl"
    )
    raters = [u for u in users if u.username in ("annotator3", "annotator4", "annotator5")]
    simulated = simulate_ratings(helpful, raters, pairs=20) + simulate_ratings(safety, raters, pairs=12)
    from quizzes.demo import load_quiz_demo  # the selection quizzes that gate the safety batch

    quizzes = load_quiz_demo(safety_batch=safety)
    from preference_data.demo import load_dataset_demo  # open-source-style data for the dataset mixes

    load_dataset_demo(created_by=User.objects.get(username="researcher"))
    from rewardmodel.demo import load_reward_model_demo  # base checkpoints for reward-model runs

    load_reward_model_demo(created_by=User.objects.get(username="researcher"))
    from sampling.demo import load_sampling_demo  # variants on the embedded model, a batch of written prompts

    sampled = load_sampling_demo(researcher=User.objects.get(username="researcher"), guidelines=HELPFULNESS_GUIDELINES)
    batches = [helpful, safety, sampled["batch"]]
    people = users + [u for u in quizzes["people"] if u not in users]  # the invited candidates too
    return {"people": people, "batches": batches, "simulated_ratings": simulated, "quizzes": quizzes}
