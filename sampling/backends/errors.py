"""Errors raised by the sampling backends.

Everything a backend raises when it cannot produce a response derives from
:class:`SamplingError`, so a worker can mark a sampling job failed with one ``except`` and show
the message to the researcher who configured the model variant. Messages name the model path or
URL and what went wrong. Bad input (a malformed dialogue, markup in a prompt) is a
:class:`sampling.templates.TemplateError` instead: that is the caller's fault, not the model's.
"""

from __future__ import annotations


class SamplingError(Exception):
    """A backend could not produce a response."""


class ModelUnavailable(SamplingError):
    """A local model is missing, cannot be converted, or cannot be loaded."""


class EndpointFailure(SamplingError):
    """Common base of the HTTP endpoint errors; carries the URL and HTTP status when known."""

    def __init__(self, message: str, *, url: str, status: int | None = None) -> None:
        super().__init__(message)
        self.url = url
        self.status = status


class EndpointUnavailable(EndpointFailure):
    """The endpoint did not answer usefully after all retries: down, timing out, overloaded."""


class EndpointError(EndpointFailure):
    """The endpoint refused the request (4xx other than 429); retrying would not help."""

    def __init__(self, message: str, *, url: str, status: int | None = None, server_message: str = "") -> None:
        super().__init__(message, url=url, status=status)
        self.server_message = server_message


class BadEndpointResponse(EndpointFailure):
    """The endpoint answered 2xx with something that is not an OpenAI chat completion."""
