"""Sampling backends: local ``transformers`` models and OpenAI-compatible HTTP endpoints.

``TransformersBackend`` is imported on first access rather than here, because it pulls in torch
and transformers (seconds of import time and GPU initialisation) that a web process or an
endpoint-only worker never needs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sampling.backends.base import Backend, GenerationRequest, GenerationResult
from sampling.backends.errors import (
    BadEndpointResponse,
    EndpointError,
    EndpointFailure,
    EndpointUnavailable,
    ModelUnavailable,
    SamplingError,
)
from sampling.backends.openai_backend import OpenAIBackend

if TYPE_CHECKING:
    from sampling.backends.transformers_backend import TransformersBackend

__all__ = [
    "Backend",
    "BadEndpointResponse",
    "EndpointError",
    "EndpointFailure",
    "EndpointUnavailable",
    "GenerationRequest",
    "GenerationResult",
    "ModelUnavailable",
    "OpenAIBackend",
    "SamplingError",
    "TransformersBackend",
]


def __getattr__(name: str) -> object:
    if name == "TransformersBackend":
        from sampling.backends.transformers_backend import TransformersBackend

        return TransformersBackend
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
