"""Chat prompt rendering for the sampling backends.

Preflab samples two responses for a dialogue written by an annotator. Local checkpoints are
prompted with their own chat template (the format they were fine-tuned on); models that ship
without one fall back to the Llama 2 chat format, reproduced character for character from Meta's
reference ``chat_completion`` (llama/generation.py) so that Llama 2 checkpoints see exactly what
they were trained on.

Annotators type free text, so a prompt could smuggle template markup (``[/INST]``, ``<|im_end|>``)
and forge turns. Meta's reference code refuses "special tags in prompts"; this module does the same
for whichever markup the chosen template gives meaning to, raising :class:`PromptRejected`.

Nothing here imports Django or torch: the module is cheap to import from a web process.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Literal, Protocol, TypedDict

Role = Literal["system", "user", "assistant"]
TemplateChoice = Literal["auto", "llama2", "model"]

B_INST, E_INST = "[INST]", "[/INST]"
B_SYS, E_SYS = "<<SYS>>\n", "\n<</SYS>>\n\n"
CONTROL_TAGS: tuple[str, ...] = (B_INST, E_INST, "<<SYS>>", "<</SYS>>")
TEMPLATE_CHOICES: tuple[TemplateChoice, ...] = ("auto", "llama2", "model")


class Message(TypedDict):
    """One dialogue turn, in the ``{"role": ..., "content": ...}`` shape every chat API uses."""

    role: Role
    content: str


class TemplateError(ValueError):
    """The dialogue cannot be rendered as given: the caller's input is at fault, not a backend."""


class DialogueShapeError(TemplateError):
    """Roles do not follow (system), user, assistant, user, ... ending with a user turn."""


class PromptRejected(TemplateError):
    """A message contains markup of the prompt format; rendering it would let text forge turns."""

    def __init__(self, tags: Sequence[str], where: str) -> None:
        self.tags = tuple(tags)
        self.where = where
        listed = ", ".join(repr(tag) for tag in self.tags)
        super().__init__(f"{where} contains the special tag(s) {listed}, which are not allowed in prompts")


class ChatTokenizer(Protocol):
    """The part of a Hugging Face tokenizer that prompt rendering relies on."""

    chat_template: str | None
    bos_token: str | None
    eos_token: str | None
    all_special_tokens: list[str]

    def apply_chat_template(self, conversation: list[Message], **kwargs: object) -> object: ...


def find_control_tags(text: str, tags: Iterable[str] = CONTROL_TAGS) -> list[str]:
    """Return the tags that occur in ``text``, in the order given, so a UI can say which ones."""
    return [tag for tag in tags if tag and tag in text]


def split_system(messages: Sequence[Message], system: str | None = None) -> tuple[str | None, list[Message]]:
    """Separate the system prompt from the turns and check the turns alternate.

    Callers may pass the system prompt either as ``system`` or as a leading ``system`` message (the
    OpenAI convention); both at once is ambiguous and refused. The remaining turns must be
    user/assistant alternating and end with a user turn, as Meta's reference code asserts. Error
    messages number these turns from 0, the system prompt not counted.
    """
    turns = list(messages)
    if turns and turns[0].get("role") == "system":
        if system is not None:
            raise DialogueShapeError("system prompt given both as an argument and as the first message")
        system = turns[0].get("content")
        if not isinstance(system, str):
            raise DialogueShapeError("the system message content must be a string")
        turns = turns[1:]
    validate_turns(turns)
    return system, turns


def validate_turns(turns: Sequence[Message]) -> None:
    """Raise :class:`DialogueShapeError` unless ``turns`` is user, assistant, ..., user."""
    if not turns:
        raise DialogueShapeError("dialogue has no user message")
    for index, message in enumerate(turns):
        expected = "user" if index % 2 == 0 else "assistant"
        role = message.get("role")
        if role != expected:
            raise DialogueShapeError(
                f"message {index} has role {role!r}, expected {expected!r}: turns must alternate "
                "user/assistant, starting with user (an optional system prompt comes first)"
            )
        if not isinstance(message.get("content"), str):
            raise DialogueShapeError(f"message {index} content must be a string")
    if len(turns) % 2 == 0:
        raise DialogueShapeError("the last message must be from the user, got 'assistant'")


def reject_tags(system: str | None, turns: Sequence[Message], tags: Iterable[str]) -> None:
    """Raise :class:`PromptRejected` naming the first message that contains any of ``tags``.

    Assistant turns are checked too, like Meta's reference: an earlier response containing
    ``[/INST]`` would be re-read by the model as markup just the same.
    """
    tags = tuple(tags)
    if system is not None and (found := find_control_tags(system, tags)):
        raise PromptRejected(found, "the system prompt")
    for index, message in enumerate(turns):
        if found := find_control_tags(message["content"], tags):
            raise PromptRejected(found, f"message {index} ({message['role']})")


def llama2_prompt(
    messages: Sequence[Message],
    system: str | None = None,
    bos: str = "<s>",
    eos: str = "</s>",
) -> str:
    """Render a dialogue in the Llama 2 chat format, as Meta's ``chat_completion`` tokenises it.

    The reference encodes each finished user/assistant pair as one SentencePiece sequence with BOS
    and EOS, and the final user turn with BOS only; the system prompt is glued into the first user
    message before stripping. Written out as text (BOS/EOS as ``bos``/``eos``) that is::

        <s>[INST] <<SYS>>\\n{system}\\n<</SYS>>\\n\\n{user} [/INST] {answer} </s><s>[INST] {user} [/INST]

    Tokenise the result with ``add_special_tokens=False``: BOS is already in the text.
    """
    system, turns = split_system(messages, system)
    reject_tags(system, turns, CONTROL_TAGS)
    if system is not None:
        turns = [{"role": "user", "content": B_SYS + system + E_SYS + turns[0]["content"]}, *turns[1:]]
    pairs = (
        f"{bos}{B_INST} {prompt['content'].strip()} {E_INST} {answer['content'].strip()} {eos}"
        for prompt, answer in zip(turns[:-1:2], turns[1::2], strict=True)
    )
    return "".join(pairs) + f"{bos}{B_INST} {turns[-1]['content'].strip()} {E_INST}"


def resolve_template(tokenizer: ChatTokenizer | None, template: TemplateChoice = "auto") -> Literal["llama2", "model"]:
    """Decide which format ``render_prompt`` uses, so results can record it."""
    if template not in TEMPLATE_CHOICES:
        raise TemplateError(f"unknown template {template!r}; choose one of {', '.join(TEMPLATE_CHOICES)}")
    has_own = tokenizer is not None and bool(tokenizer.chat_template)
    if template == "model" and not has_own:
        raise TemplateError("template='model' was asked for, but the tokenizer has no chat template")
    return "model" if has_own and template != "llama2" else "llama2"


def render_prompt(
    tokenizer: ChatTokenizer | None,
    messages: Sequence[Message],
    system: str | None = None,
    template: TemplateChoice = "auto",
) -> str:
    """Render the text a causal LM continues to answer the last user turn.

    ``template``: ``"model"`` uses the tokenizer's own chat template (and fails if it has none),
    ``"llama2"`` the Llama 2 format with the tokenizer's BOS/EOS strings, ``"auto"`` the former when
    the tokenizer has a template and the latter otherwise. With the model template, the
    tokenizer's special-token strings (``<|im_end|>`` and the like) are refused in messages, since
    the tokenizer would turn them into real control tokens. The result already holds any BOS the
    template wants: tokenise it with ``add_special_tokens=False``.
    """
    if resolve_template(tokenizer, template) == "llama2":
        if tokenizer is None:
            return llama2_prompt(messages, system)
        return llama2_prompt(messages, system, bos=tokenizer.bos_token or "", eos=tokenizer.eos_token or "")
    assert tokenizer is not None  # resolve_template only answers "model" for a tokenizer with a template
    system, turns = split_system(messages, system)
    reject_tags(system, turns, tokenizer.all_special_tokens)
    conversation: list[Message] = [{"role": "system", "content": system}] if system is not None else []
    conversation += [{"role": turn["role"], "content": turn["content"]} for turn in turns]
    rendered = tokenizer.apply_chat_template(conversation, tokenize=False, add_generation_prompt=True)
    if not isinstance(rendered, str):
        raise TemplateError(f"the tokenizer's chat template rendered {type(rendered).__name__}, not text")
    return rendered
