"""Comparison datasets (preference_data): Llama 2's data mixes, held-out test sets and export sizes."""

from .env import env_int, env_str

# Helpfulness mix: sampled safety + open-source pairs per helpfulness pair ("an equal amount").
PREFLAB_MIX_HELPFULNESS_OTHER_RATIO = float(env_str("PREFLAB_MIX_HELPFULNESS_OTHER_RATIO", "1.0"))
# Safety mix: the share of safety (+ harmless-style) data; the rest is sampled helpfulness data (90/10).
PREFLAB_MIX_SAFETY_SHARE = float(env_str("PREFLAB_MIX_SAFETY_SHARE", "0.9"))
# Held-out test set per batch: Llama 2 kept 1,000 comparisons of each batch, never more than this share.
PREFLAB_TEST_COUNT_PER_BATCH = env_int("PREFLAB_TEST_COUNT_PER_BATCH", 1000)
PREFLAB_TEST_FRACTION = float(env_str("PREFLAB_TEST_FRACTION", "0.1"))
PREFLAB_DATASET_SEED = env_int("PREFLAB_DATASET_SEED", 0)
# Rows fetched from the database per round trip, and rows per Parquet row group (memory is bounded by these).
PREFLAB_EXPORT_FETCH_ROWS = env_int("PREFLAB_EXPORT_FETCH_ROWS", 5_000)
PREFLAB_EXPORT_ROW_GROUP_ROWS = env_int("PREFLAB_EXPORT_ROW_GROUP_ROWS", 50_000)
PREFLAB_BUILD_CHUNK_COMPARISONS = env_int("PREFLAB_BUILD_CHUNK_COMPARISONS", 5_000)
# Recorded in manifests when set (e.g. the image's git commit); otherwise read from .git.
PREFLAB_CODE_VERSION = env_str("PREFLAB_CODE_VERSION", "")
