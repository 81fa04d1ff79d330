"""The model card (``README.md``) every saved reward model carries: where it came from and how to use
it with plain ``transformers``. Pure: rendered from a ``preflab.json`` dict (`rewardmodel.training`
writes both into checkpoint and final folders; the download renders it again with the run's later
evaluations). No Django imports.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from rewardmodel import chat_format
from rewardmodel.evaluation import SAFETY_BINS, STRENGTHS

MODEL_CARD_FILE = "README.md"
CHECKPOINT_FILE = "preflab.json"  # what rewardmodel.training writes beside the weights

_EXAMPLE_CONVERSATION = [
    {"role": "user", "content": "How do I bake bread?"},
    {"role": "assistant", "content": "Mix flour, water, salt and yeast, let it rise, then bake it hot."},
]


def scoring_example(folder: str) -> str:
    """Five lines of plain ``transformers`` that print the reward of one answer, as Preflab scores it."""
    return "\n".join(
        [
            "from transformers import AutoModelForSequenceClassification, AutoTokenizer",
            f"tokenizer = AutoTokenizer.from_pretrained({folder!r})",
            f"model = AutoModelForSequenceClassification.from_pretrained({folder!r}).eval()",
            f"conversation = {json.dumps(_EXAMPLE_CONVERSATION, ensure_ascii=False)}",
            "inputs = tokenizer.apply_chat_template(conversation, truncation=True, return_dict=True, "
            "return_tensors='pt')",
            "print(model(**inputs).logits[0, 0].item())",
        ]
    )


def _percent(group: Mapping[str, Any] | None) -> str:
    if not group or group.get("accuracy") is None:
        return "–"
    return f"{100 * group['accuracy']:.1f} ({group['correct']}/{group['n']})"


def _table(header: list[str], rows: Iterable[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return lines


def accuracy_tables(report: Mapping[str, Any]) -> list[str]:
    """Llama 2's Table 8 layout (accuracy per strength level, then the average) and, on safety data,
    Table 29's (per safety bin), from an `evaluation.evaluation_report`."""
    by_strength = report.get("by_strength") or {}
    columns = [code for code in [*STRENGTHS, "unknown"] if code in by_strength]
    labels = [STRENGTHS.get(code, "Strength not given") for code in columns]
    lines = _table([*labels, "Avg"], [[*(_percent(by_strength[c]) for c in columns), _percent(by_strength.get("avg"))]])
    by_safety = report.get("by_safety") or {}
    bins = [code for code in SAFETY_BINS if code in by_safety]
    if bins:
        lines += ["", "By safety bin (Llama 2 Table 29):", ""]
        lines += _table(
            [*(SAFETY_BINS[b] for b in bins), "All labelled"],
            [[*(_percent(by_safety[b]) for b in bins), _percent(by_safety.get("all"))]],
        )
    return lines


def _data_section(manifest: Mapping[str, Any], setup: Mapping[str, Any]) -> list[str]:
    build = manifest.get("dataset_build") or {}
    lines = ["## Training data", ""]
    name = build.get("name", "?")
    lines.append(f"Preflab dataset build {name!r} (id {build.get('preflab_dataset_build', '?')}).")
    counts = build.get("counts") or {}
    splits = counts.get("by_split") or {}
    if counts:
        lines.append(
            f"{counts.get('total', 0)} pairs: {splits.get('train', 0)} for training, {splits.get('test', 0)} held out."
        )
    lines.append(
        f"This model trained on {setup.get('n_train_pairs', '?')} pairs and was evaluated on "
        f"{setup.get('n_eval_pairs', '?')} held-out pairs."
    )
    by_strength = counts.get("by_strength") or {}
    if any(by_strength.values()):
        codes = [c for c in [*STRENGTHS, "unknown"] if any(c in by_strength.get(s, {}) for s in ("train", "test"))]
        lines += ["", "Pairs per strength level:", ""]
        lines += _table(
            ["split", *(STRENGTHS.get(c, "not given") for c in codes)],
            [[split, *(by_strength.get(split, {}).get(c, 0) for c in codes)] for split in ("train", "test")],
        )
    by_safety = counts.get("by_safety") or {}
    if any(by_safety.values()):
        lines += ["", "Pairs per safety bin:", ""]
        lines += _table(
            ["split", *SAFETY_BINS.values()],
            [[split, *(by_safety.get(split, {}).get(c, 0) for c in SAFETY_BINS)] for split in ("train", "test")],
        )
    batches = (build.get("selection") or {}).get("batches") or []
    if batches:
        lines += ["", "Batches: " + ", ".join(f"{b.get('name')} ({b.get('focus')})" for b in batches) + "."]
    details = []
    if margin := build.get("margin_table"):
        values = ", ".join(
            f"{STRENGTHS.get(code, code).lower()} {value:.3g}" for code, value in (margin.get("values") or {}).items()
        )
        details.append(f"Margin table: {margin.get('name')} ({values}).")
    if build.get("label_rule"):
        details.append(f"Labels: {build['label_rule']}")
    if mix := build.get("mix"):
        sampled = f", {mix.get('sampled')} pairs sampled into the mix" if mix.get("sampled") else ""
        details.append(f"Mix: {mix.get('name', '?')}{sampled}.")
    if held_out := build.get("held_out"):
        described = ", ".join(f"{k} {held_out[k]}" for k in ("mode", "fraction", "seed", "split_key") if k in held_out)
        details.append(f"Held-out split: {described}.")
    if build.get("code_version"):
        details.append(f"Built by {build['code_version']}.")
    if details:
        lines += ["", *(f"- {detail}" for detail in details)]
    lines += ["", "The full manifest is under `dataset` in `preflab.json`."]
    return lines


def model_card(
    info: Mapping[str, Any],
    *,
    folder: str = ".",
    title: str | None = None,
    evaluations: Iterable[tuple[str, Mapping[str, Any]]] = (),
) -> str:
    """The README.md of a saved reward model described by ``info`` (its ``preflab.json``).

    ``folder`` is the path the scoring example loads from; ``evaluations`` are further (title, report)
    pairs, e.g. the run's evaluations on other test sets.
    """
    manifest = info.get("dataset") or {}
    metrics = info.get("metrics") or {}
    config = info.get("config") or {}
    base = manifest.get("base_checkpoint") or {}
    kind = manifest.get("kind") or "reward"
    window = metrics.get("max_length", config.get("max_length"))
    saved = (
        f"the final model after {info.get('step')} optimizer steps"
        if info.get("kind") == "final"
        else f"a checkpoint at optimizer step {info.get('step')} of {info.get('total_steps')}"
    )
    lines = [
        f"# {title or manifest.get('name') or 'Preflab reward model'}",
        "",
        f"A {kind} reward model trained by Preflab (run {manifest.get('preflab_training_run', '?')}): "
        "a scalar head on "
        + (f"{base.get('name')} (`{base.get('path')}`)" if base else f"`{info.get('base_model')}`")
        + f", trained with Llama 2's margin ranking loss `-log(sigmoid(r_chosen - r_rejected - m))`. This is {saved}.",
        "",
        "## Scoring",
        "",
        "```python",
        scoring_example(folder),
        "```",
        "",
        "The reward is the raw head output (higher is better); `sigmoid(reward)` is the probability Llama 2's "
        "hybrid reward compares with 0.15.",
        "",
        "The tokenizer's chat template renders the dialogue with the response as the last assistant turn, "
        "exactly as Preflab did in training and scoring (a decoder's own template; for an encoder "
        '`"User: ...\\nAssistant: ..."` lines between its `[CLS]` and `[SEP]`). It writes its own special '
        "tokens, so tokenize with `apply_chat_template` (or `add_special_tokens=False`).",
        "",
        f"Inputs longer than {window} tokens (`tokenizer.model_max_length`, the training window) are cut from the "
        'left (`truncation_side="left"`, saved with the tokenizer): the oldest context goes first and the response '
        "is kept; a response longer than the window keeps its end. Preflab's training, evaluation and scoring use "
        "exactly this rule, so `apply_chat_template(conversation, truncation=True)` gives Preflab's token ids. "
        "Batch inputs with `padding=True`: pad on the right, as Preflab does.",
        "",
    ]
    lines += _data_section(manifest, metrics)
    lines += ["", "## Hyper-parameters", ""]
    setup_keys = ("effective_batch_pairs", "micro_batch_pairs", "grad_accum_steps", "total_steps", "warmup_steps")
    rows = [[k, json.dumps(v)] for k, v in sorted(config.items()) if k != "device"]
    rows += [[k, json.dumps(metrics[k])] for k in setup_keys if k in metrics and k not in config]
    rows += [["device", metrics.get("device") or config.get("device") or "?"]]
    lines += _table(["name", "value"], rows)
    lines += ["", "## Held-out accuracy", ""]
    lines += [
        "Accuracy in %: a pair counts when the chosen response gets the strictly higher reward "
        "(Llama 2 Table 8's layout).",
        "",
    ]
    report = metrics.get("eval")
    if report:
        lines += [f"On the build's held-out split ({report.get('n')} pairs):", "", *accuracy_tables(report)]
    else:
        lines.append(
            "Not evaluated: the build has no held-out pairs."
            if info.get("kind") == "final"
            else "Not evaluated yet: checkpoints are evaluated when the run finishes."
        )
    for name, extra in evaluations:
        lines += ["", f"{name} ({extra.get('n')} pairs):", "", *accuracy_tables(extra)]
    if metrics.get("train_loss") is not None:
        lines += [
            "",
            f"Training: mean loss {metrics['train_loss']:.4f}, accuracy {100 * metrics['train_accuracy']:.1f}% "
            f"over {metrics.get('pairs_seen')} pairs seen (each step's pairs before its update).",
        ]
    lines += [
        "",
        "## Training it further with TRL",
        "",
        "The tokenizer has the chat template and end-of-sequence token TRL's `RewardTrainer` needs; Preflab's TRL "
        "export (`prompt` / `chosen` / `rejected` messages and `margin`) loads with `datasets`:",
        "",
        "```python",
        "from datasets import load_dataset",
        "from trl import RewardConfig, RewardTrainer",
        'data = load_dataset("json", data_files={"train": "train.jsonl"})["train"]',
        f'RewardTrainer(model={folder!r}, args=RewardConfig(output_dir="rm-trl"), train_dataset=data).train()',
        "```",
        "",
        "The HH-RLHF export (plain transcripts) trains too: TRL ends each transcript with the tokenizer's "
        "end-of-sequence token (`[SEP]` for an encoder, before the one the tokenizer adds itself).",
        "",
        "## Files",
        "",
        "`config.json` and `model.safetensors` (the weights), the tokenizer files (with `chat_template.jinja` "
        "where the template is stored apart), and `preflab.json`: the run's config, the dataset manifest, "
        "metrics and the per-step history.",
        "",
    ]
    return "\n".join(lines)


def download_files(directory: Path, folder: str) -> dict[str, bytes]:
    """What a download of a saved model writes in place of (or beside) the folder's own files: the model
    card rendered for ``folder`` (the name the folder unzips to), and for models saved before Preflab
    prepared its tokenizers, the completed tokenizer files (`chat_format.completed_tokenizer_files`)."""
    info = json.loads((directory / CHECKPOINT_FILE).read_text())
    files = chat_format.completed_tokenizer_files(directory)
    files[MODEL_CARD_FILE] = model_card(info, folder=folder).encode()
    return files
