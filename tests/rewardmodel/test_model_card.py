"""Self-describing reward models: every saved folder and every download carries a model card, and a
fresh Python process with nothing but ``transformers`` reproduces Preflab's scores from the zip."""

import io
import json
import os
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from benchmarks.reward_training import HELD_OUT_TOPICS, TRAIN_TOPICS, minilm_dir, synthetic_pairs
from rewardmodel.archives import stream_zip
from rewardmodel.chat_format import conversation
from rewardmodel.model_card import model_card
from rewardmodel.scoring import clear_model_cache, load_reward_model, score_many
from rewardmodel.training import TrainingConfig, train_reward_model

os.environ.setdefault("HF_HUB_OFFLINE", "1")

WINDOW = 32
CFG = TrainingConfig(
    learning_rate=1e-4, batch_pairs=8, micro_batch_pairs=8, max_length=WINDOW, checkpoint_every=1, seed=3
)
MANIFEST = {
    "preflab_training_run": 7,
    "name": "Helpfulness RM · polite · MiniLM",
    "kind": "helpfulness",
    "base_checkpoint": {"name": "MiniLM-L6-v2 encoder", "path": "embedded:all-minilm-l6-v2"},
    "dataset_build": {
        "preflab_dataset_build": 3,
        "name": "polite",
        "margin_table": {"name": "small", "values": {"better": 0.6667}},
        "counts": {
            "total": 24,
            "by_split": {"train": 16, "test": 8},
            "by_strength": {"train": {"better": 10, "slightly_better": 6}, "test": {"better": 8}},
            "by_safety": {"train": {}, "test": {}},
            "by_component": {"train": {"helpfulness": 16}, "test": {"helpfulness": 8}},
        },
        "selection": {"batches": [{"id": 1, "name": "week 1", "focus": "helpfulness"}]},
    },
}
LONG_CONTEXT = [
    {"role": "user" if i % 2 == 0 else "assistant", "content": f"Turn {i}: how long should bread dough rise?"}
    for i in range(7)
]
ITEMS = [
    ([{"role": "user", "content": "How do I bake bread?"}], "Certainly! Knead it, let it rise, bake it hot."),
    ([{"role": "user", "content": "How do I bake bread?"}], "Ugh, obviously bake it. Stop asking."),
    (LONG_CONTEXT, "Until it doubles, about an hour. Hope it helps!"),
    ([{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}], "Hello!"),
]

# Runs in a fresh interpreter: only transformers and torch, the call the model card documents.
REPRODUCE = """
import json, sys
from transformers import AutoModelForSequenceClassification, AutoTokenizer
tokenizer = AutoTokenizer.from_pretrained(sys.argv[1])
model = AutoModelForSequenceClassification.from_pretrained(sys.argv[1]).eval()
results = []
for messages in json.loads(sys.stdin.read()):
    inputs = tokenizer.apply_chat_template(messages, truncation=True, return_dict=True, return_tensors="pt")
    results.append([model(**inputs).logits[0, 0].item(), inputs["input_ids"].shape[1]])
assert not any(name.split(".")[0] in ("rewardmodel", "preference_data", "django") for name in sys.modules)
print(json.dumps(results))
"""


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A final model and the model card of its first checkpoint (deleted once the final one is saved)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(min(2, os.cpu_count() or 1))
    cards = {}

    def keep_checkpoint_card(progress):
        if progress["checkpoint"]:
            cards[progress["step"]] = (progress["checkpoint"], (Path(progress["checkpoint"]) / "README.md").read_text())

    train = synthetic_pairs(16, seed=0, topics=TRAIN_TOPICS)
    held_out = synthetic_pairs(8, seed=1, topics=HELD_OUT_TOPICS)
    result = train_reward_model(
        CFG,
        minilm_dir(),
        train,
        held_out,
        output_dir=tmp_path_factory.mktemp("rm"),
        dataset_manifest=MANIFEST,
        on_progress=keep_checkpoint_card,
        resume=False,
    )
    yield result, cards
    clear_model_cache()
    torch.set_num_threads(threads)


def test_final_and_checkpoint_folders_carry_a_model_card(trained):
    result, cards = trained
    card = (result.path / "README.md").read_text()
    assert card.startswith("# Helpfulness RM · polite · MiniLM\n")
    for expected in (
        "MiniLM-L6-v2 encoder (`embedded:all-minilm-l6-v2`)",
        "Preflab dataset build 'polite' (id 3).",
        "24 pairs: 16 for training, 8 held out.",
        "| train | 10 | 6 |",
        "Batches: week 1 (helpfulness).",
        "| learning_rate | 0.0001 |",
        f"| max_length | {WINDOW} |",
        "| Significantly Better | Better | Slightly Better | Negligibly Better / Unsure | Avg |",
        f"Inputs longer than {WINDOW} tokens",
        'truncation_side="left"',
        "tokenizer.apply_chat_template(conversation, truncation=True",
    ):
        assert expected in card, expected
    report = json.loads((result.path / "preflab.json").read_text())["metrics"]["eval"]
    assert f"On the build's held-out split ({report['n']} pairs):" in card
    avg = report["by_strength"]["avg"]
    assert f"{100 * avg['accuracy']:.1f} ({avg['correct']}/{avg['n']}) |" in card

    path, checkpoint_card = cards[1]
    assert "checkpoint-1" in path
    assert "This is a checkpoint at optimizer step 1 of 2." in checkpoint_card
    assert "Not evaluated yet" in checkpoint_card and "| learning_rate | 0.0001 |" in checkpoint_card


def _unzip(saved: Path, tmp_path: Path, top: str = "preflab-rm-7-helpfulness-rm") -> Path:
    archive = zipfile.ZipFile(io.BytesIO(b"".join(stream_zip(saved, top))))
    assert archive.testzip() is None
    archive.extractall(tmp_path)
    return tmp_path / top


def test_a_fresh_process_with_only_transformers_reproduces_preflabs_scores_from_the_zip(trained, tmp_path):
    result, _ = trained
    folder = _unzip(result.path, tmp_path)
    model, tokenizer = load_reward_model(result.path, device="cpu")
    expected = score_many(model, tokenizer, ITEMS)
    env = {"PATH": os.environ.get("PATH", ""), "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}

    messages = [conversation(context, response) for context, response in ITEMS]
    done = subprocess.run(
        [sys.executable, "-c", REPRODUCE, str(folder)],
        input=json.dumps(messages),
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    scores, lengths = zip(*json.loads(done.stdout.strip().splitlines()[-1]), strict=True)
    assert list(scores) == pytest.approx(expected, abs=1e-4)
    assert lengths[2] == WINDOW  # the long context was cut, as Preflab cuts it
    assert len(tokenizer(conversation(*ITEMS[2])[-1]["content"])["input_ids"]) < WINDOW

    # The card's own five lines, run as they are from the folder the zip unpacks next to.
    card = (folder / "README.md").read_text()
    example = re.search(r"```python\n(.*?)```", card, re.S).group(1)
    assert repr(folder.name) in example and len(example.strip().splitlines()) == 6
    done = subprocess.run(
        [sys.executable, "-c", example], capture_output=True, text=True, cwd=tmp_path, env=env, timeout=300
    )
    assert done.returncode == 0, done.stderr[-2000:]
    example_messages = json.loads(re.search(r"conversation = (.*)\n", example).group(1))
    [preflab] = score_many(model, tokenizer, [(example_messages[:-1], example_messages[-1]["content"])])
    assert float(done.stdout.strip().splitlines()[-1]) == pytest.approx(preflab, abs=1e-4)


def test_a_model_saved_before_model_cards_downloads_with_one_and_a_chat_template(tmp_path):
    """Runs trained before this change: the zip adds the card and completes the tokenizer."""
    old = tmp_path / "final"
    torch.manual_seed(0)
    AutoModelForSequenceClassification.from_pretrained(minilm_dir(), num_labels=1).save_pretrained(old)
    tokenizer = AutoTokenizer.from_pretrained(minilm_dir())
    tokenizer.model_max_length = 64
    tokenizer.save_pretrained(old)
    info = {"kind": "final", "step": 3, "total_steps": 3, "config": {"max_length": 64}, "dataset": MANIFEST}
    (old / "preflab.json").write_text(json.dumps(info))

    folder = _unzip(old, tmp_path / "unzipped", top="preflab-rm-1-old")
    card = (folder / "README.md").read_text()
    assert "from_pretrained('preflab-rm-1-old')" in card and "Not evaluated: the build has no held-out pairs." in card
    unzipped = AutoTokenizer.from_pretrained(folder)
    assert unzipped.chat_template and (unzipped.truncation_side, unzipped.model_max_length) == ("left", 64)
    assert not (old / "README.md").exists()  # the stored folder is left as it was


def test_the_card_of_a_safety_model_has_llama_2s_safety_bin_table():
    report = {
        "n": 4,
        "accuracy": 0.75,
        "by_strength": {
            "better": {"n": 4, "correct": 3, "accuracy": 0.75},
            "avg": {"n": 4, "correct": 3, "accuracy": 0.75},
        },
        "by_safety": {
            "chosen_safe_other_unsafe": {"n": 2, "correct": 2, "accuracy": 1.0},
            "both_safe": {"n": 2, "correct": 1, "accuracy": 0.5},
            "all": {"n": 4, "correct": 3, "accuracy": 0.75},
        },
    }
    card = model_card({"kind": "final", "step": 1, "metrics": {"eval": report}, "dataset": MANIFEST})
    assert "| Better | Avg |\n|---|---|\n| 75.0 (3/4) | 75.0 (3/4) |" in card
    assert (
        "| Safe vs Unsafe | Both Safe | All labelled |\n|---|---|---|\n| 100.0 (2/2) | 50.0 (1/2) | 75.0 (3/4) |"
        in card
    )
