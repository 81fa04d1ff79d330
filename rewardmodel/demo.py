"""The demo's base checkpoints that reward models start from. Idempotent: one that exists is left as it is."""

from accounts.models import User

# The base checkpoints reward models start from in the demo. Llama 2's batch (512 pairs) and window
# would take hours on a CPU; these suggestions train the demo's datasets in a minute or two, and the
# start-run form shows Llama 2's values beside them.
DEMO_CHECKPOINTS = [
    {
        "name": "MiniLM-L6-v2 encoder",
        "path": "embedded:all-minilm-l6-v2",
        "kind": "encoder",
        "description": "all-MiniLM-L6-v2 (22.7M parameters): fast on a CPU, the demo's default.",
        "suggested_hyperparameters": {
            "learning_rate": 5e-5,
            "batch_pairs": 4,
            "micro_batch_pairs": 4,
            "max_length": 256,
            "checkpoint_every": 2,
            "eval_batch_size": 16,
        },
    },
    {
        "name": "SmolLM2-135M-Instruct",
        "path": "embedded:smollm2-135m-instruct",
        "kind": "decoder",
        "description": "The embedded chat model (135M parameters) that the demo's variants sample from, as in Llama 2 "
        "where the reward model starts from the chat model. A few minutes on a CPU.",
        "suggested_hyperparameters": {
            "learning_rate": 1e-5,
            "batch_pairs": 4,
            "micro_batch_pairs": 2,
            "max_length": 256,
            "checkpoint_every": 2,
            "eval_batch_size": 8,
        },
    },
]


def load_reward_model_demo(created_by: User | None = None) -> list:
    """Register the demo's base checkpoints (nothing is trained: the researcher starts runs in the browser)."""
    from .models import BaseCheckpoint
    from .services.runs import base_checkpoint_create

    checkpoints = []
    for spec in DEMO_CHECKPOINTS:
        existing = BaseCheckpoint.objects.filter(name=spec["name"]).first()
        checkpoints.append(existing or base_checkpoint_create(created_by=created_by, **spec))
    return checkpoints
