"""Helpers for training-run tests: a tiny learnable dataset built by the real builder from real
ratings, MiniLM as the base model, and hyper-parameters small enough to train in seconds on a CPU.

The preference is the benchmark's toy one (benchmarks/reward_training.py): the chosen response is
polite, the rejected one rude, both carrying the same advice. Each comparison is rated by three
annotators for response A (the polite one) with the pair's strength and, on safety batches, its bin.
"""

from benchmarks.reward_training import TRAIN_TOPICS, synthetic_pairs
from preference_data import services
from preference_data.models import JobStatus
from rewardmodel.models import BaseCheckpoint, ModelKind
from rewardmodel.services.runs import MINILM
from tests.factories import BatchFactory, ComparisonFactory, ResponseFactory
from tests.preference_data.labelled import rate

# Higher learning rate and smaller batches than Llama 2's, so a few steps learn; short sequences.
TINY = {
    "learning_rate": 2e-4,
    "batch_pairs": 8,
    "micro_batch_pairs": 8,
    "max_length": 32,
    "checkpoint_every": 2,
    "eval_batch_size": 32,
    "seed": 1,
}


def minilm_checkpoint(name: str = "all-MiniLM-L6-v2") -> BaseCheckpoint:
    return BaseCheckpoint.objects.get_or_create(name=name, defaults={"path": MINILM, "kind": ModelKind.ENCODER})[0]


def polite_batch(raters, n: int, *, focus: str = "helpfulness", seed: int = 0, name: str | None = None):
    batch = BatchFactory(focus=focus, **({"name": name} if name else {}))
    for pair in synthetic_pairs(n, seed=seed, topics=TRAIN_TOPICS):
        comparison = ComparisonFactory(
            batch=batch,
            prompt=pair.context[-1]["content"],
            response_a=ResponseFactory(text=pair.chosen),
            response_b=ResponseFactory(text=pair.rejected),
        )
        safety = (pair.safety_label or "both_safe") if focus == "safety" else ""
        rate(comparison, raters, [("a", pair.strength, safety)] * len(raters))
    return batch


def tiny_dataset(researcher, batches, *, test_fraction: float = 0.25, name: str = "tiny", **options):
    """A finished build of these batches (run in this transaction: on_commit never fires in a test)."""
    created = services.dataset_build_create(
        created_by=researcher,
        name=name,
        batch_ids=[b.pk for b in batches],
        held_out_mode="fraction",
        test_fraction=test_fraction,
        enqueue=False,
        **options,
    )
    built = services.dataset_build_run(build_id=created.pk)
    assert built.status == JobStatus.DONE, built.error
    return built
