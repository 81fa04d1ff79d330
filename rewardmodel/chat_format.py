"""How a Preflab reward model reads a dialogue, written into its tokenizer so plain Hugging Face code
(``apply_chat_template``, TRL's ``RewardTrainer``) reads it the same way. No Django imports.

One rule for every consumer (Preflab's training, evaluation and scoring, the model card's example,
TRL): the input is the dialogue plus the response as a final assistant turn, rendered with the
tokenizer's chat template, tokenized without adding special tokens (the template writes them), and
cut to the model's window from the *left*. So the oldest context goes first and the response, which
is what is judged, is kept; a response longer than the window keeps its end. In plain
``transformers`` that is::

    tokenizer.apply_chat_template(conversation, truncation=True, max_length=tokenizer.model_max_length)

with the ``truncation_side="left"`` and ``model_max_length`` that `prepare_tokenizer` saves.

* Decoders (SmolLM2, Llama 2-Chat) keep their own chat template: the reward model reads the dialogue
  as the chat model was trained to.
* Tokenizers without a template (encoders such as all-MiniLM) get `plain_transcript_template`:
  ``"User: ...\\nAssistant: ..."`` lines between the tokenizer's own special tokens
  (``[CLS] ... [SEP]`` for BERT), which is what ``tokenizer(transcript)`` gives. When a conversation
  is longer than the window, its first token (``[CLS]``, or a decoder template's first marker) goes
  with the oldest context, in training as in scoring.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path

from transformers import AutoTokenizer, PreTrainedTokenizerBase

Message = dict[str, str]

# Bumped when the template or the settings below change, so prepared base checkpoints are rewritten.
FORMAT_VERSION = 1
_TOKENIZER_FILES = (
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "added_tokens.json",
    "chat_template.jinja",
    "chat_template.json",
    "vocab.txt",
    "vocab.json",
    "merges.txt",
    "tokenizer.model",
    "spiece.model",
)


def conversation(context: Sequence[Message], response: str) -> list[Message]:
    """The messages a reward model reads: the dialogue so far, then ``response`` as the assistant's turn."""
    messages = [{"role": m["role"], "content": m["content"]} for m in context]
    return [*messages, {"role": "assistant", "content": response}]


def special_frame(tokenizer: PreTrainedTokenizerBase) -> tuple[list[str], list[str]]:
    """The special tokens the tokenizer itself puts before and after one sequence ([CLS] / [SEP] for BERT)."""
    encoded = tokenizer("a", add_special_tokens=True, return_special_tokens_mask=True)
    ids, special = encoded["input_ids"], encoded["special_tokens_mask"]
    first = special.index(0)
    last = len(special) - 1 - special[::-1].index(0)
    return tokenizer.convert_ids_to_tokens(ids[:first]), tokenizer.convert_ids_to_tokens(ids[last + 1 :])


def _jinja_literal(text: str) -> str:
    return "{{ " + json.dumps(text) + " }}" if text else ""


def plain_transcript_template(tokenizer: PreTrainedTokenizerBase) -> str:
    """A chat template writing ``"System: ...\\nUser: ...\\nAssistant: ..."`` in the tokenizer's frame.

    Role names are capitalised ("user" -> "User"), one message per line, no newline after the last;
    the generation prompt is ``"Assistant: "`` (without the closing token, as nothing follows it yet).
    """
    head, tail = special_frame(tokenizer)
    return (
        _jinja_literal("".join(head))
        + "{% for message in messages %}{% if not loop.first %}{{ '\\n' }}{% endif %}"
        + "{{ message['role'] | capitalize }}: {{ message['content'] }}{% endfor %}"
        + "{% if add_generation_prompt %}{% if messages %}{{ '\\n' }}{% endif %}{{ 'Assistant: ' }}"
        + ("{% else %}" + _jinja_literal("".join(tail)) if tail else "")
        + "{% endif %}"
    )


def chat_template_for(tokenizer: PreTrainedTokenizerBase) -> str:
    """The tokenizer's own chat template, or Preflab's plain transcript when it has none."""
    own = getattr(tokenizer, "chat_template", None)
    if isinstance(own, dict):  # several named templates: the default one
        own = own.get("default")
    return own or plain_transcript_template(tokenizer)


def render(tokenizer: PreTrainedTokenizerBase, items: Sequence[tuple[Sequence[Message], str]]) -> list[str]:
    """The text of each (context, response) as the reward model reads it, before tokenizing."""
    template = chat_template_for(tokenizer)
    return [
        tokenizer.apply_chat_template(conversation(context, response), chat_template=template, tokenize=False)
        for context, response in items
    ]


def encode(
    tokenizer: PreTrainedTokenizerBase, items: Sequence[tuple[Sequence[Message], str]], max_length: int
) -> list[list[int]]:
    """Token ids of each (context, response), cut from the left to ``max_length`` (the module's rule).

    The same ids as ``apply_chat_template(conversation, truncation=True, max_length=max_length)``
    with ``truncation_side="left"``, whatever the tokenizer's own settings; the texts are tokenized
    in one batched call.
    """
    if max_length <= 0:
        raise ValueError(f"max_length={max_length} leaves no room for tokens")
    if not items:
        return []
    ids = tokenizer(render(tokenizer, items), add_special_tokens=False)["input_ids"]
    return [list(seq[-max_length:]) for seq in ids]


def prepare_tokenizer(tokenizer: PreTrainedTokenizerBase, *, max_length: int | None = None) -> PreTrainedTokenizerBase:
    """Give ``tokenizer`` (in place) what plain Hugging Face code needs to read inputs as Preflab does.

    A chat template (its own, else `plain_transcript_template`), an end-of-sequence token (the
    closing special token, [SEP] for BERT, when it has none: TRL appends it to plain-text rows), a
    padding token (the end-of-sequence token when it has none), left truncation at ``max_length``
    (the model's window), and no truncation or padding fixed in its backend (all-MiniLM's
    ``tokenizer.json`` pads and cuts everything to 128 tokens).
    """
    if not getattr(tokenizer, "chat_template", None):
        tokenizer.chat_template = plain_transcript_template(tokenizer)
    if tokenizer.eos_token is None:
        _, tail = special_frame(tokenizer)
        if tail:
            tokenizer.eos_token = tail[-1]
    if tokenizer.pad_token is None and tokenizer.eos_token is not None:
        # Decoders often ship without a pad token; padding is masked out, any token will do.
        tokenizer.pad_token = tokenizer.eos_token
    tokenizer.truncation_side = "left"
    tokenizer.init_kwargs["truncation_side"] = "left"
    if max_length is not None:
        tokenizer.model_max_length = max_length
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is not None:
        backend.no_truncation()
        backend.no_padding()
    for stale in ("max_length", "stride", "truncation_strategy", "pad_to_multiple_of"):
        # Copied from the backend's fixed settings at load time; saved, they would read like a window.
        tokenizer.init_kwargs.pop(stale, None)
    return tokenizer


def _source_key(source: Path) -> str:
    digest = hashlib.sha256(f"{source.resolve()}|{FORMAT_VERSION}".encode())
    for name in _TOKENIZER_FILES:
        path = source / name
        if path.is_file():
            digest.update(f"|{name}:{path.stat().st_size}:{path.stat().st_mtime_ns}".encode())
    return digest.hexdigest()[:12]


def needs_preparing(source: str | os.PathLike[str]) -> bool:
    """Whether a checkpoint's tokenizer lacks a chat template or an end-of-sequence token."""
    tokenizer = AutoTokenizer.from_pretrained(source)
    return not getattr(tokenizer, "chat_template", None) or tokenizer.eos_token is None


def prepare_base_checkpoint(
    source: str | os.PathLike[str], cache_dir: str | os.PathLike[str], *, name: str | None = None
) -> str:
    """The base checkpoint at ``source`` with a tokenizer that `prepare_tokenizer` completed.

    A checkpoint that already has a chat template and an end-of-sequence token is returned as it is.
    Otherwise a folder under ``cache_dir`` holds links to its files (weights, config) and the prepared
    tokenizer; it is made once per source (and tokenizer files' size and time) and written under a
    temporary name first, so a folder that exists is complete; ``name`` starts the folder's name.
    ``AutoModelForSequenceClassification``, ``AutoTokenizer`` and TRL's ``RewardTrainer`` load it like
    any local checkpoint.
    """
    source = Path(source)
    target = Path(cache_dir) / "prepared" / f"{name or source.name or 'model'}-{_source_key(source)}"
    if (target / "config.json").is_file():
        return str(target)
    if not needs_preparing(source):
        return str(source)
    tmp = target.with_name(f".tmp-{target.name}-{os.getpid()}")
    tmp.mkdir(parents=True, exist_ok=True)
    for path in source.iterdir():
        if path.is_file() and path.name not in _TOKENIZER_FILES and path.name != "README.md" and path.name[0] != ".":
            (tmp / path.name).symlink_to(path.resolve())
    prepare_tokenizer(AutoTokenizer.from_pretrained(source)).save_pretrained(tmp)
    (tmp / "README.md").write_text(
        f"{source} with the tokenizer Preflab's reward models read with: a chat template, an end-of-sequence "
        "token, left truncation (rewardmodel/chat_format.py). The other files link to the original.\n"
    )
    try:
        os.replace(tmp, target)
    except OSError:  # another process prepared it in the meantime
        shutil.rmtree(tmp, ignore_errors=True)
        if not (target / "config.json").is_file():
            raise
    return str(target)


def completed_tokenizer_files(directory: str | os.PathLike[str]) -> dict[str, bytes]:
    """For a model saved before Preflab prepared its tokenizers: the tokenizer files `prepare_tokenizer`
    would have written (chat template, left truncation at the saved ``model_max_length``), by name.

    Empty when the saved tokenizer already has a chat template and left truncation.
    """
    directory = Path(directory)
    config_path = directory / "tokenizer_config.json"
    config = json.loads(config_path.read_text()) if config_path.is_file() else {}
    has_template = bool(config.get("chat_template")) or (directory / "chat_template.jinja").is_file()
    if has_template and config.get("truncation_side") == "left":
        return {}
    tokenizer = AutoTokenizer.from_pretrained(directory)
    prepare_tokenizer(tokenizer, max_length=tokenizer.model_max_length)
    with tempfile.TemporaryDirectory() as tmp:
        tokenizer.save_pretrained(tmp)
        return {path.name: path.read_bytes() for path in Path(tmp).iterdir() if path.is_file()}
