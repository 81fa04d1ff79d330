"""The input rule every reward model carries in its tokenizer: Preflab's encoding is exactly what
``apply_chat_template(..., truncation=True)`` gives with the saved settings, for encoders and decoders."""

import json
import os

import pytest
from transformers import AutoTokenizer

from benchmarks.reward_training import minilm_dir
from rewardmodel import chat_format
from rewardmodel.scoring import encode_many, render_parts

os.environ.setdefault("HF_HUB_OFFLINE", "1")

DIALOGUE = [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "Name a fruit."},
    {"role": "assistant", "content": "Apple."},
    {"role": "user", "content": "Another one?"},
]
LONG_DIALOGUE = [
    {"role": "user" if i % 2 == 0 else "assistant", "content": f"Turn {i}: tell me more about baking bread at home."}
    for i in range(9)
]


@pytest.fixture(scope="module")
def minilm():
    return AutoTokenizer.from_pretrained(minilm_dir())


def test_the_encoder_template_writes_the_plain_transcript_in_the_tokenizers_frame(minilm):
    template = chat_format.plain_transcript_template(minilm)
    conversation = chat_format.conversation(DIALOGUE, "Pear.")
    text = minilm.apply_chat_template(conversation, chat_template=template, tokenize=False)
    assert text == "[CLS]" + "".join(render_parts(minilm, DIALOGUE, "Pear.")) + "[SEP]"
    assert (
        text
        == "[CLS]System: Be brief.\nUser: Name a fruit.\nAssistant: Apple.\nUser: Another one?\nAssistant: Pear.[SEP]"
    )
    # The same ids as the tokenizer's own framing of the transcript (what Preflab trained on before).
    assert (
        encode_many(minilm, [(DIALOGUE, "Pear.")], 128)[0]
        == minilm("".join(render_parts(minilm, DIALOGUE, "Pear.")))["input_ids"]
    )
    prompt = minilm.apply_chat_template(DIALOGUE, chat_template=template, tokenize=False, add_generation_prompt=True)
    assert prompt == "[CLS]" + render_parts(minilm, DIALOGUE, "Pear.")[0]


@pytest.mark.parametrize("window", [12, 20, 512])
def test_preflab_encodes_as_apply_chat_template_with_the_saved_settings(minilm, window, tmp_path):
    chat_format.prepare_tokenizer(AutoTokenizer.from_pretrained(minilm_dir()), max_length=window).save_pretrained(
        tmp_path
    )
    saved = AutoTokenizer.from_pretrained(tmp_path)
    items = [(LONG_DIALOGUE, "Knead it for ten minutes."), (DIALOGUE, "Pear."), ([], "Hi")]
    for context, response in items:
        expected = saved.apply_chat_template(chat_format.conversation(context, response), truncation=True)["input_ids"]
        assert len(expected) <= window
        assert encode_many(minilm, [(context, response)], window) == [expected]  # whatever minilm's own settings
        assert encode_many(saved, [(context, response)], window) == [expected]


def test_decoders_keep_their_own_template_and_the_same_rule(embedded_checkpoint):
    tokenizer = chat_format.prepare_tokenizer(AutoTokenizer.from_pretrained(embedded_checkpoint), max_length=40)
    assert "<|im_start|>" in tokenizer.chat_template
    conversation = chat_format.conversation(LONG_DIALOGUE, "Knead it.")
    expected = tokenizer.apply_chat_template(conversation, truncation=True)["input_ids"]
    assert len(expected) == 40
    assert tokenizer.decode(expected).endswith("<|im_start|>assistant\nKnead it.<|im_end|>\n")
    assert encode_many(tokenizer, [(LONG_DIALOGUE, "Knead it.")], 40) == [expected]
    [whole] = encode_many(tokenizer, [(LONG_DIALOGUE, "Knead it.")], 10_000)
    assert whole[-40:] == expected  # the oldest tokens went


def test_a_prepared_tokenizer_saves_what_plain_transformers_and_trl_need(tmp_path):
    chat_format.prepare_tokenizer(AutoTokenizer.from_pretrained(minilm_dir()), max_length=256).save_pretrained(tmp_path)
    config = json.loads((tmp_path / "tokenizer_config.json").read_text())
    assert (config["truncation_side"], config["model_max_length"], config["eos_token"]) == ("left", 256, "[SEP]")
    assert "max_length" not in config  # all-MiniLM's tokenizer.json fixes 128; nothing says so any more
    backend = json.loads((tmp_path / "tokenizer.json").read_text())
    assert backend["truncation"] is None and backend["padding"] is None
    reloaded = AutoTokenizer.from_pretrained(tmp_path)
    assert reloaded.chat_template == chat_format.plain_transcript_template(reloaded)
    assert (reloaded.truncation_side, reloaded.model_max_length, reloaded.pad_token) == ("left", 256, "[PAD]")


def test_base_checkpoints_without_a_template_are_prepared_once_into_the_cache(tmp_path, embedded_checkpoint):
    prepared = chat_format.prepare_base_checkpoint(minilm_dir(), tmp_path, name="all-minilm-l6-v2")
    folder = tmp_path / "prepared" / os.path.basename(prepared)
    assert folder.name.startswith("all-minilm-l6-v2-") and str(folder) == prepared
    assert (folder / "model.safetensors").is_symlink()  # the weights are not copied
    tokenizer = AutoTokenizer.from_pretrained(prepared)
    assert tokenizer.chat_template and tokenizer.eos_token == "[SEP]" and tokenizer.truncation_side == "left"
    written = (folder / "tokenizer_config.json").stat().st_mtime_ns
    assert chat_format.prepare_base_checkpoint(minilm_dir(), tmp_path, name="all-minilm-l6-v2") == prepared
    assert (folder / "tokenizer_config.json").stat().st_mtime_ns == written
    # SmolLM2 has a chat template and an end-of-sequence token: used where it is.
    assert chat_format.prepare_base_checkpoint(embedded_checkpoint, tmp_path) == str(embedded_checkpoint)


def test_models_saved_before_templates_get_them_completed(tmp_path):
    old = AutoTokenizer.from_pretrained(minilm_dir())
    old.model_max_length = 128
    old.save_pretrained(tmp_path / "old")
    files = chat_format.completed_tokenizer_files(tmp_path / "old")
    (tmp_path / "completed").mkdir()
    for name, content in files.items():
        (tmp_path / "completed" / name).write_bytes(content)
    completed = AutoTokenizer.from_pretrained(tmp_path / "completed")
    assert completed.chat_template and (completed.truncation_side, completed.model_max_length) == ("left", 128)
    assert chat_format.completed_tokenizer_files(tmp_path / "completed") == {}
