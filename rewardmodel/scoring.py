"""Turning a dialogue and a response into a reward, exactly as the trainer saw them.

This is the lowest layer of the reward-model code and has no Django imports. Training
(`rewardmodel.training`), evaluation (`rewardmodel.evaluation`) and inference-time users (best-of-K
rejection sampling, the hybrid reward) all render and tokenize through `encode_many` here, so a
score computed at inference time means the same thing as the score the loss was trained on.

Input rendering and truncation follow one rule, `rewardmodel.chat_format`'s, which every saved
model also carries in its tokenizer (chat template, ``truncation_side="left"``, ``model_max_length``)
so plain ``transformers`` reproduces Preflab's scores with ``apply_chat_template``:

* The dialogue plus the response as a final assistant turn is rendered with the tokenizer's chat
  template: a decoder's own (SmolLM2, Llama 2-Chat), as the chat model was trained to read; for
  tokenizers without one (encoders such as all-MiniLM) a plain ``"User: ...\\nAssistant: ..."``
  transcript between the tokenizer's special tokens (``[CLS] ... [SEP]``).
* When the sequence is too long, tokens are dropped from the *left*: the oldest context goes first,
  the response (what is judged, with the end-of-turn markup where a decoder reads its reward) stays.
  A response that alone exceeds the window keeps its end.
"""

from __future__ import annotations

import functools
import math
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer, PreTrainedModel, PreTrainedTokenizerBase

from rewardmodel import chat_format

Message = dict[str, str]

# The hybrid reward's switch point (Llama 2, section 3.4: precision 0.89, recall 0.55 on Meta Safety).
SAFETY_THRESHOLD = 0.15

_ROLE_NAMES = {"system": "System", "user": "User", "assistant": "Assistant"}


def render_parts(tokenizer: PreTrainedTokenizerBase, context: Sequence[Message], response: str) -> tuple[str, str]:
    """A dialogue ending in ``response`` as text, split into (context part, response part).

    For reading and checking the layout: with a chat template the parts are what the template renders
    (the response part carries its end-of-turn markup); without one they are the plain transcript
    that `chat_format.plain_transcript_template` writes between the tokenizer's special tokens.
    """
    if getattr(tokenizer, "chat_template", None):
        prompt = tokenizer.apply_chat_template(list(context), add_generation_prompt=True, tokenize=False)
        full = tokenizer.apply_chat_template([*context, {"role": "assistant", "content": response}], tokenize=False)
        if full.startswith(prompt):
            return prompt, full[len(prompt) :]
        # Templates that rewrite the generation prompt (e.g. inserting an empty "thinking" block) still
        # contain the response verbatim; split just before its last occurrence.
        start = full.rfind(response)
        if start < 0:
            raise ValueError("the chat template does not reproduce the response text; cannot split the input")
        return full[:start], full[start:]
    lines = [f"{_ROLE_NAMES.get(m['role'], m['role'].capitalize())}: {m['content']}" for m in context]
    return "".join(line + "\n" for line in lines) + "Assistant: ", response


def encode_many(
    tokenizer: PreTrainedTokenizerBase,
    items: Sequence[tuple[Sequence[Message], str]],
    max_length: int,
) -> list[list[int]]:
    """Token ids for each (context messages, response), at most ``max_length`` long, cut from the left.

    The same ids as ``tokenizer.apply_chat_template(context + [response turn], truncation=True,
    max_length=max_length)`` with ``truncation_side="left"`` (`chat_format.encode`).
    """
    return chat_format.encode(tokenizer, items, max_length)


def pad_batch(
    sequences: Sequence[Sequence[int] | np.ndarray], pad_token_id: int, device: torch.device | str
) -> dict[str, torch.Tensor]:
    """Right-pad to the longest sequence in this batch (dynamic padding) with an attention mask.

    Right padding suits both kinds of model: encoders pool the first token, and Hugging Face's
    decoder classification heads read the rightmost non-pad token.
    """
    width = max(len(s) for s in sequences)
    input_ids = torch.full((len(sequences), width), pad_token_id, dtype=torch.long)
    attention_mask = torch.zeros((len(sequences), width), dtype=torch.long)
    for row, seq in enumerate(sequences):
        input_ids[row, : len(seq)] = torch.as_tensor(seq, dtype=torch.long)
        attention_mask[row, : len(seq)] = 1
    return {"input_ids": input_ids.to(device), "attention_mask": attention_mask.to(device)}


def default_max_length(tokenizer: PreTrainedTokenizerBase, model: PreTrainedModel) -> int:
    """The longest input to score: the tokenizer's ``model_max_length`` within the model's positions.

    A Preflab checkpoint saves its tokenizer with ``model_max_length`` set to the training window,
    so by default scoring truncates exactly as training did.
    """
    positions = getattr(model.config.get_text_config(), "max_position_embeddings", None) or tokenizer.model_max_length
    return int(min(tokenizer.model_max_length, positions))


@torch.no_grad()
def score_many(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    items: Sequence[tuple[Sequence[Message], str]],
    *,
    max_length: int | None = None,
    batch_size: int = 16,
) -> list[float]:
    """Rewards (raw scalar head outputs) for many (context, response) items, in batches.

    Items are scored in order of length so each batch pads little; results come back in input order.
    """
    max_length = max_length or default_max_length(tokenizer, model)
    encoded = encode_many(tokenizer, items, max_length)
    order = sorted(range(len(encoded)), key=lambda i: len(encoded[i]))
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    rewards = [0.0] * len(encoded)
    for start in range(0, len(order), batch_size):
        chunk = order[start : start + batch_size]
        batch = pad_batch([encoded[i] for i in chunk], tokenizer.pad_token_id, device)
        values = model(**batch).logits.squeeze(-1).float().tolist()
        for index, value in zip(chunk, values, strict=True):
            rewards[index] = value
    model.train(was_training)
    return rewards


def score(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    context_messages: Sequence[Message],
    response: str,
    *,
    max_length: int | None = None,
) -> float:
    """The reward (raw scalar, not a probability) of ``response`` after ``context_messages``."""
    return score_many(model, tokenizer, [(context_messages, response)], max_length=max_length)[0]


def sigmoid(x: float) -> float:
    """Logistic function, stable for large negative inputs (where ``exp(-x)`` would overflow)."""
    if x >= 0:
        return 1.0 / (1.0 + math.exp(-x))
    z = math.exp(x)
    return z / (1.0 + z)


def hybrid_reward(
    helpful_score: float,
    safety_score: float,
    is_safety_prompt: bool,
    threshold: float = SAFETY_THRESHOLD,
) -> float:
    """Llama 2's combined reward (section 3.4), returned as a probability in [0, 1].

    ``helpful_score`` and ``safety_score`` are the raw outputs of the helpfulness and safety reward
    models. Both are mapped through `sigmoid`; the result is ``sigmoid(safety_score)`` when the prompt
    is a safety prompt or ``sigmoid(safety_score) < threshold`` (a likely unsafe response, whatever
    the prompt), else ``sigmoid(helpful_score)``. The comparison is strict, so a safety probability
    of exactly ``threshold`` uses the helpfulness reward. Llama 2 then takes the logit of this value
    and whitens it for PPO; that belongs to the RL step, not here.
    """
    safety = sigmoid(safety_score)
    if is_safety_prompt or safety < threshold:
        return safety
    return sigmoid(helpful_score)


def load_reward_model(
    path: str | os.PathLike[str], device: str | torch.device | None = None
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """Load a reward checkpoint (model in eval mode, float32, and its tokenizer), cached in-process.

    The cache holds the two most recently used (path, device) pairs: the helpfulness and the
    safety model that the hybrid reward needs together; see `clear_model_cache`. ``device``
    defaults to CUDA when available. Weights stay in float32, as they were trained and saved.
    """
    resolved_device = str(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    return _load_cached(str(Path(path).resolve()), resolved_device)


@functools.lru_cache(maxsize=2)
def _load_cached(path: str, device: str) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    tokenizer = AutoTokenizer.from_pretrained(path)
    model = AutoModelForSequenceClassification.from_pretrained(path, dtype=torch.float32)
    return model.to(device).eval(), tokenizer


def clear_model_cache() -> None:
    """Forget the loaded checkpoints (after overwriting one in place, or to free memory)."""
    _load_cached.cache_clear()
