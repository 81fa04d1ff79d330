"""Generation through an OpenAI-compatible ``/v1/chat/completions`` endpoint.

vLLM, TGI, llama.cpp server and Ollama all speak this protocol, and they apply the model's chat
template themselves, so this backend sends messages, not a rendered prompt. Endpoints in a lab are
often restarting or overloaded, so connection errors, timeouts, 429 and 5xx are retried with
capped exponential backoff and full jitter (a bounded number of attempts, so a dead endpoint fails
a job instead of hanging it); other 4xx mean the request or the key is wrong and fail at once.
Errors name the URL and what went wrong, so a researcher can fix the model variant's settings.
"""

from __future__ import annotations

import os
import random
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

import requests

from sampling.backends.base import Backend, GenerationRequest, GenerationResult
from sampling.backends.errors import BadEndpointResponse, EndpointError, EndpointUnavailable
from sampling.templates import Message, TemplateError, split_system

RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})


def chat_completions_url(base_url: str) -> str:
    """``http://host:8000`` and ``http://host:8000/v1`` (with or without ``/``) both work."""
    base = base_url.rstrip("/")
    if not base.endswith("/v1"):
        base += "/v1"
    return base + "/chat/completions"


def _server_message(response: requests.Response) -> str:
    """The human-readable error an endpoint sent, from OpenAI's ``{"error": {"message"}}`` or raw text."""
    try:
        body = response.json()
    except ValueError:
        return response.text.strip()[:500]
    if isinstance(body, dict):
        error = body.get("error", body)
        if isinstance(error, dict) and isinstance(error.get("message"), str):
            return error["message"]
        if isinstance(error, str):
            return error
    return response.text.strip()[:500]


class OpenAIBackend(Backend):
    """Sample from a model served behind an OpenAI-compatible chat completions endpoint.

    ``api_key_env`` names the environment variable holding the key (never the key itself, so it
    stays out of the database); it is read per request, so a rotated key needs no restart.
    ``timeout`` is (connect, read) seconds. A batch is sent as concurrent requests on up to
    ``max_workers`` threads, since endpoints batch concurrent requests themselves.
    """

    def __init__(
        self,
        base_url: str,
        model: str,
        api_key_env: str | None = None,
        timeout: tuple[float, float] = (5.0, 120.0),
        max_attempts: int = 4,
        backoff_base: float = 0.5,
        backoff_max: float = 8.0,
        max_workers: int = 4,
    ) -> None:
        if max_attempts < 1:
            raise ValueError(f"max_attempts must be >= 1, got {max_attempts}")
        self.url = chat_completions_url(base_url)
        self.model = model
        self.api_key_env = api_key_env
        self.timeout = timeout
        self.max_attempts = max_attempts
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        self.max_workers = max_workers

    def generate_batch(self, requests: Sequence[GenerationRequest]) -> list[GenerationResult]:
        """Send the requests concurrently; results come back in request order."""
        payloads = [self._payload(request) for request in requests]
        if len(payloads) <= 1:
            return [self._complete(payload) for payload in payloads]
        with ThreadPoolExecutor(max_workers=min(self.max_workers, len(payloads))) as pool:
            return list(pool.map(self._complete, payloads))

    def _payload(self, request: GenerationRequest) -> dict[str, object]:
        """The JSON body for one request; the system prompt goes first as a ``system`` message."""
        if request.template == "llama2":
            raise TemplateError(
                f"{self.url} applies the served model's own chat template; template='llama2' cannot be honoured"
            )
        system, turns = split_system(request.messages, request.system)
        messages: list[Message] = [{"role": "system", "content": system}] if system is not None else []
        messages += [{"role": turn["role"], "content": turn["content"]} for turn in turns]
        payload: dict[str, object] = {
            "model": self.model,
            "messages": messages,
            "temperature": request.temperature,
            "top_p": request.top_p,
            "max_tokens": request.max_new_tokens,
        }
        if request.seed is not None:
            payload["seed"] = request.seed
        return payload

    def _headers(self) -> dict[str, str]:
        headers = {"Content-Type": "application/json"}
        if self.api_key_env:
            key = os.environ.get(self.api_key_env)
            if not key:
                raise EndpointError(
                    f"the API key for {self.url} is read from the environment variable "
                    f"{self.api_key_env}, which is not set in this worker",
                    url=self.url,
                )
            headers["Authorization"] = f"Bearer {key}"
        return headers

    def _backoff(self, attempt: int, retry_after: str | None) -> float:
        """Seconds to wait before attempt ``attempt + 1``: the server's Retry-After if numeric, else jittered."""
        if retry_after is not None:
            try:
                return min(max(float(retry_after), 0.0), self.backoff_max)
            except ValueError:
                pass  # an HTTP-date: fall back to our own schedule
        return random.uniform(0, min(self.backoff_max, self.backoff_base * 2 ** (attempt - 1)))

    def _complete(self, payload: dict[str, object]) -> GenerationResult:
        """POST one request, retrying transient failures, and parse the completion."""
        headers = self._headers()
        problem = ""
        started = time.perf_counter()
        for attempt in range(1, self.max_attempts + 1):
            retry_after, status = None, None
            try:
                response = requests.post(self.url, json=payload, headers=headers, timeout=self.timeout)
            except requests.Timeout as exc:
                problem = f"timed out (connect/read timeout {self.timeout[0]}/{self.timeout[1]} s): {exc}"
            except (requests.ConnectionError, requests.exceptions.ChunkedEncodingError) as exc:
                problem = f"could not connect: {exc}"
            except requests.RequestException as exc:  # a malformed URL and the like: retrying cannot help
                raise EndpointError(f"could not send a request to {self.url}: {exc}", url=self.url) from exc
            else:
                status = response.status_code
                if response.ok:
                    return self._parse(response, payload, attempt, time.perf_counter() - started)
                message = _server_message(response)
                if status not in RETRY_STATUSES:
                    hint = " (check the API key)" if status in (401, 403) else ""
                    raise EndpointError(
                        f"{self.url} refused the request with HTTP {status}{hint}: {message}",
                        url=self.url,
                        status=status,
                        server_message=message,
                    )
                problem = f"answered HTTP {status}: {message}"
                retry_after = response.headers.get("Retry-After")
            if attempt < self.max_attempts:
                time.sleep(self._backoff(attempt, retry_after))
        raise EndpointUnavailable(
            f"{self.url} is unavailable after {self.max_attempts} attempt(s): {problem}",
            url=self.url,
            status=status,
        )

    def _parse(
        self, response: requests.Response, payload: dict[str, object], attempts: int, seconds: float
    ) -> GenerationResult:
        """Turn a 2xx answer into a result, or explain what is wrong with it."""
        excerpt = response.text[:200]
        try:
            body = response.json()
        except ValueError:
            raise BadEndpointResponse(
                f"{self.url} answered HTTP {response.status_code} with a body that is not JSON: {excerpt!r}",
                url=self.url,
                status=response.status_code,
            ) from None
        try:
            choice = body["choices"][0]
            text = choice["message"]["content"]
            if not isinstance(text, str):
                raise TypeError(f"message content is {type(text).__name__}")
        except (KeyError, IndexError, TypeError) as exc:
            raise BadEndpointResponse(
                f"{self.url} answered with JSON that is not a chat completion "
                f"(expected choices[0].message.content; {exc!r}): {excerpt!r}",
                url=self.url,
                status=response.status_code,
            ) from None
        usage = body.get("usage") if isinstance(body.get("usage"), dict) else {}
        return GenerationResult(
            text=text.strip(),
            prompt_tokens=usage.get("prompt_tokens"),
            completion_tokens=usage.get("completion_tokens"),
            finish_reason=choice.get("finish_reason") or "stop",
            seconds=seconds,
            metadata={
                "backend": "openai",
                "url": self.url,
                "model": body.get("model", self.model),
                "seed": payload.get("seed"),
                "attempts": attempts,
            },
        )
