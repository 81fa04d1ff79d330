"""Why a generation job failed, told twice: in full for researchers, and without model names for
the annotator who is waiting for the pair (annotators never learn which models they compare)."""

from __future__ import annotations

from dataclasses import dataclass

from sampling.backends.errors import (
    BadEndpointResponse,
    EndpointError,
    EndpointUnavailable,
    ModelUnavailable,
    SamplingError,
)
from sampling.models import FailureCode
from sampling.templates import PromptRejected, TemplateError

ANNOTATOR_MESSAGES = {
    FailureCode.ENDPOINT_DOWN: "A model server is not answering right now, so this pair could not be sampled. "
    "Your prompt is kept: try again in a minute.",
    FailureCode.ENDPOINT_REFUSED: "A model server refused the request, so this pair could not be sampled. "
    "The research team can see why; try again later or write a new prompt.",
    FailureCode.BAD_RESPONSE: "A model server answered with something that is not a response, so this pair "
    "could not be sampled. Try again; if it keeps failing, tell your vendor manager.",
    FailureCode.MODEL_MISSING: "A model is not installed on the sampling worker, so this pair could not be "
    "sampled. The research team can see which; try again later.",
    FailureCode.TOO_LONG: "This dialogue has grown too long for the models. Start a new prompt.",
    FailureCode.IDENTICAL: "Both responses came out identical every time they were sampled, so there is "
    "nothing to compare. Try rephrasing your prompt.",
    FailureCode.INTERRUPTED: "The sampling worker stopped while writing this pair (it was restarted or ran "
    "out of memory). Nothing was saved; try again.",
    FailureCode.NO_VARIANTS: "This batch has no model to sample from right now. Tell your vendor manager.",
    FailureCode.QUEUE_DOWN: "The sampling service cannot be reached right now. Your prompt is kept: try again "
    "in a minute.",
    FailureCode.INTERNAL: "Something went wrong while sampling this pair; the research team can see what. Try again.",
}
# Failures that the same request will meet again: the page offers a new prompt, not a retry.
NOT_RETRYABLE = frozenset({FailureCode.PROMPT_REJECTED, FailureCode.TOO_LONG})


@dataclass(frozen=True)
class Failure:
    code: str
    detail: str
    message: str

    @property
    def retryable(self) -> bool:
        return self.code not in NOT_RETRYABLE


def failure(code: str, detail: str, message: str | None = None) -> Failure:
    return Failure(code=code, detail=detail, message=message or ANNOTATOR_MESSAGES[code])


def failure_from_exception(exc: BaseException, *, variant: str) -> Failure:
    """Classify what a backend raised while sampling with `variant` (its name, for researchers)."""
    detail = f"{variant}: {exc}"
    if isinstance(exc, EndpointUnavailable):
        return failure(FailureCode.ENDPOINT_DOWN, detail)
    if isinstance(exc, EndpointError):
        server = f" (the server said: {exc.server_message})" if exc.server_message else ""
        return failure(FailureCode.ENDPOINT_REFUSED, detail + server)
    if isinstance(exc, BadEndpointResponse):
        return failure(FailureCode.BAD_RESPONSE, detail)
    if isinstance(exc, ModelUnavailable):
        return failure(FailureCode.MODEL_MISSING, detail)
    if isinstance(exc, PromptRejected):
        tags = ", ".join(exc.tags)
        return failure(
            FailureCode.PROMPT_REJECTED,
            detail,
            f"The dialogue contains {tags}, which the models' chat format uses as control tags. "
            "Write the prompt without them.",
        )
    if isinstance(exc, SamplingError) and "context" in str(exc):
        return failure(FailureCode.TOO_LONG, detail)
    if isinstance(exc, SamplingError | TemplateError):
        return failure(FailureCode.INTERNAL, detail)
    return failure(FailureCode.INTERNAL, f"{detail} ({type(exc).__name__})")
