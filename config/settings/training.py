"""Reward-model training runs: where checkpoints go, how runs report progress and are recovered."""

from .env import env_int, env_str

# Run directories (checkpoints, the final model) live under this folder; empty: MEDIA_ROOT/reward-models.
PREFLAB_REWARD_MODEL_DIR = env_str("PREFLAB_REWARD_MODEL_DIR", "")
# Progress is written to the run row at most this often (and always after the last step).
PREFLAB_TRAINING_PROGRESS_SECONDS = float(env_str("PREFLAB_TRAINING_PROGRESS_SECONDS", "1"))
# How often a running job reads its row for a cancel request (it polls before every micro-batch).
PREFLAB_TRAINING_CANCEL_POLL_SECONDS = float(env_str("PREFLAB_TRAINING_CANCEL_POLL_SECONDS", "2"))
# A running job writes a heartbeat this often, from a side thread, however long a step takes. A run
# silent for PREFLAB_TRAINING_STALE_SECONDS lost its worker: the next delivery resumes it from its
# last checkpoint (a second delivery while the heartbeat is fresh does nothing).
PREFLAB_TRAINING_HEARTBEAT_SECONDS = float(env_str("PREFLAB_TRAINING_HEARTBEAT_SECONDS", "10"))
PREFLAB_TRAINING_STALE_SECONDS = float(env_str("PREFLAB_TRAINING_STALE_SECONDS", "120"))
# Best-of-K previews (sampled and scored on the sampling queue): at most this many responses.
PREFLAB_BEST_OF_K_MAX = env_int("PREFLAB_BEST_OF_K_MAX", 8)
