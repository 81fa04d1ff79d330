"""Input rendering and truncation, scoring, the checkpoint cache and the hybrid reward."""

import math
import os

import pytest
import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from benchmarks.reward_training import minilm_dir
from rewardmodel.scoring import (
    clear_model_cache,
    encode_many,
    hybrid_reward,
    load_reward_model,
    render_parts,
    score,
    score_many,
    sigmoid,
)

os.environ.setdefault("HF_HUB_OFFLINE", "1")

DIALOGUE = [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "Name a fruit."},
    {"role": "assistant", "content": "Apple."},
    {"role": "user", "content": "Another one?"},
]


@pytest.fixture(scope="module")
def tokenizer():
    return AutoTokenizer.from_pretrained(minilm_dir())


@pytest.fixture(scope="module")
def reward_checkpoint(tmp_path_factory):
    """An untrained MiniLM reward model saved the Hugging Face way (its head is seeded)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(min(2, os.cpu_count() or 1))
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("rm")
    AutoModelForSequenceClassification.from_pretrained(minilm_dir(), num_labels=1).save_pretrained(path)
    AutoTokenizer.from_pretrained(minilm_dir()).save_pretrained(path)
    yield path
    clear_model_cache()
    torch.set_num_threads(threads)


def test_plain_transcript_for_encoders(tokenizer):
    context, response = render_parts(tokenizer, DIALOGUE, "Pear.")
    assert context == "System: Be brief.\nUser: Name a fruit.\nAssistant: Apple.\nUser: Another one?\nAssistant: "
    assert response == "Pear."


def test_encoder_input_is_wrapped_in_special_tokens(tokenizer):
    [ids] = encode_many(tokenizer, [(DIALOGUE, "Pear.")], max_length=128)
    assert ids[0] == tokenizer.cls_token_id and ids[-1] == tokenizer.sep_token_id
    assert ids == tokenizer("".join(render_parts(tokenizer, DIALOGUE, "Pear.")))["input_ids"]


def test_truncation_drops_the_oldest_tokens_and_keeps_the_response(tokenizer):
    response = "Pear, which is sweet."
    response_ids = tokenizer(response, add_special_tokens=False)["input_ids"]
    [ids] = encode_many(tokenizer, [(DIALOGUE, response)], max_length=12)
    whole = tokenizer("".join(render_parts(tokenizer, DIALOGUE, response)))["input_ids"]
    assert len(whole) > 12 and ids == whole[-12:]  # cut from the left, [CLS] with the oldest context
    assert ids[-1 - len(response_ids) :] == [*response_ids, tokenizer.sep_token_id]


def test_a_response_longer_than_the_window_keeps_its_end(tokenizer):
    response = " ".join(f"word{i}" for i in range(50))
    [ids] = encode_many(tokenizer, [(DIALOGUE, response)], max_length=10)
    response_end = tokenizer(response, add_special_tokens=False)["input_ids"][-9:]
    assert ids == [*response_end, tokenizer.sep_token_id]


def test_chat_template_renders_the_response_as_an_assistant_turn():
    tok = AutoTokenizer.from_pretrained(minilm_dir())
    tok.chat_template = (
        "{% for m in messages %}<{{ m.role }}> {{ m.content }} </s>\n{% endfor %}"
        "{% if add_generation_prompt %}<assistant> {% endif %}"
    )
    context, response = render_parts(tok, DIALOGUE[1:2], "Pear.")
    assert (context, response) == ("<user> Name a fruit. </s>\n<assistant> ", "Pear. </s>\n")
    # The template writes its own markup: no [CLS]/[SEP] are added around it.
    [ids] = encode_many(tok, [(DIALOGUE[1:2], "Pear.")], max_length=64)
    assert ids == tok(context + response, add_special_tokens=False)["input_ids"]


def test_chat_template_whose_history_differs_from_its_generation_prompt():
    tok = AutoTokenizer.from_pretrained(minilm_dir())
    # Like templates that add an empty thinking block to past assistant turns only.
    tok.chat_template = (
        "{% for m in messages %}<{{ m.role }}>{% if m.role == 'assistant' %} [think]{% endif %}: {{ m.content }}\n"
        "{% endfor %}{% if add_generation_prompt %}<assistant>: {% endif %}"
    )
    context, response = render_parts(tok, DIALOGUE[1:2], "Pear.")
    assert (context, response) == ("<user>: Name a fruit.\n<assistant> [think]: ", "Pear.\n")


def test_score_is_batch_invariant_and_deterministic(reward_checkpoint):
    model, tok = load_reward_model(reward_checkpoint, device="cpu")
    items = [(DIALOGUE, "Pear."), (DIALOGUE[:2], "Banana, a long yellow fruit."), ([], "Hi")]
    batched = score_many(model, tok, items, batch_size=2)
    singles = [score(model, tok, context, response) for context, response in items]
    assert batched == pytest.approx(singles, abs=1e-5)
    assert score(model, tok, DIALOGUE, "Pear.") == singles[0]


def test_load_reward_model_caches_per_path_and_device(reward_checkpoint):
    clear_model_cache()
    model, _ = load_reward_model(reward_checkpoint, device="cpu")
    assert not model.training and model.dtype == torch.float32
    assert load_reward_model(str(reward_checkpoint) + "/", device="cpu")[0] is model
    clear_model_cache()
    assert load_reward_model(reward_checkpoint, device="cpu")[0] is not model


def test_sigmoid():
    assert sigmoid(0.0) == 0.5
    assert sigmoid(2.0) == pytest.approx(1 / (1 + math.exp(-2.0)))
    assert sigmoid(-3.0) + sigmoid(3.0) == pytest.approx(1.0)
    assert sigmoid(-1000.0) == 0.0 and sigmoid(1000.0) == 1.0  # no OverflowError


def test_hybrid_reward_uses_safety_for_safety_prompts_and_unsafe_responses():
    helpful, safe, unsafe = 2.0, 1.0, -3.0  # sigmoid(-3) = 0.047 < 0.15
    # A safety prompt is judged by the safety model, whatever the scores.
    assert hybrid_reward(helpful, safe, is_safety_prompt=True) == sigmoid(safe)
    # Any prompt: a response the safety model finds likely unsafe gets the safety reward.
    assert hybrid_reward(helpful, unsafe, is_safety_prompt=False) == sigmoid(unsafe)
    # Otherwise the helpfulness reward, as a probability.
    assert hybrid_reward(helpful, safe, is_safety_prompt=False) == sigmoid(helpful)
    # The threshold is strict: exactly at it, helpfulness decides.
    assert hybrid_reward(helpful, 0.0, is_safety_prompt=False, threshold=0.5) == sigmoid(helpful)
    assert hybrid_reward(helpful, -0.01, is_safety_prompt=False, threshold=0.5) == sigmoid(-0.01)
