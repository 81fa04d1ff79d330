"""``OpenAIBackend`` against a real HTTP server running in a separate process.

The fake server (``fake_openai_server.py``, started by ``tests/sampling/conftest.py``) listens on a
free port of 127.0.0.1 and is switched between behaviours per test, so retries, timeouts and error
bodies go through real sockets.
"""

from __future__ import annotations

import socket
import time

import pytest

from sampling.backends import (
    BadEndpointResponse,
    EndpointError,
    EndpointUnavailable,
    GenerationRequest,
    OpenAIBackend,
    SamplingError,
)
from sampling.backends.openai_backend import chat_completions_url
from sampling.templates import TemplateError
from tests.sampling.conftest import FakeServer

KEY_ENV = "PREFLAB_TEST_ENDPOINT_KEY"


def backend_for(url: str, **options: object) -> OpenAIBackend:
    """A backend with small timeouts and backoff, so failure paths finish in well under a second."""
    settings: dict = {"timeout": (1.0, 1.0), "max_attempts": 3, "backoff_base": 0.01, "backoff_max": 0.05}
    settings.update(options)
    return OpenAIBackend(url, "fake-model", **settings)


def ask(text: str, **options: object) -> GenerationRequest:
    return GenerationRequest([{"role": "user", "content": text}], **options)


def free_port() -> int:
    """A port nothing listens on: bound once by the OS, then released."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.mark.parametrize(
    "base",
    ["http://h:8000", "http://h:8000/", "http://h:8000/v1", "http://h:8000/v1/"],
)
def test_chat_completions_url_accepts_base_with_or_without_v1(base: str) -> None:
    assert chat_completions_url(base) == "http://h:8000/v1/chat/completions"


def test_success_sends_openai_request_with_api_key(server: FakeServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(KEY_ENV, "sk-test-123")
    backend = backend_for(server.base_url + "/v1", api_key_env=KEY_ENV)
    dialogue = [
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello"},
        {"role": "user", "content": "Tell me a joke"},
    ]
    request = GenerationRequest(dialogue, system="Be funny.", temperature=0.8, top_p=0.95, max_new_tokens=32, seed=5)

    result = backend.generate(request)

    assert result.text == "echo: Tell me a joke"
    assert result.finish_reason == "stop"
    assert result.completion_tokens == 3
    assert result.prompt_tokens is not None
    assert result.metadata == {
        "backend": "openai",
        "url": f"{server.base_url}/v1/chat/completions",
        "model": "fake-model",
        "seed": 5,
        "attempts": 1,
    }
    (seen,) = server.requests()
    assert seen["headers"]["Authorization"] == "Bearer sk-test-123"
    assert seen["body"] == {
        "model": "fake-model",
        "messages": [{"role": "system", "content": "Be funny."}, *dialogue],
        "temperature": 0.8,
        "top_p": 0.95,
        "max_tokens": 32,
        "seed": 5,
    }


def test_no_api_key_env_sends_no_authorization(server: FakeServer) -> None:
    backend_for(server.base_url).generate(ask("hello"))
    (seen,) = server.requests()
    assert "Authorization" not in seen["headers"]


def test_unset_api_key_variable_is_reported_before_sending(server: FakeServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(KEY_ENV, raising=False)
    with pytest.raises(EndpointError, match=KEY_ENV):
        backend_for(server.base_url, api_key_env=KEY_ENV).generate(ask("hello"))
    assert server.requests() == []


def test_batch_returns_results_in_request_order(server: FakeServer) -> None:
    prompts = [f"question {i}" for i in range(7)]
    results = backend_for(server.base_url, max_workers=3).generate_batch([ask(p) for p in prompts])
    assert [r.text for r in results] == [f"echo: {p}" for p in prompts]
    assert len(server.requests()) == len(prompts)


def test_retries_server_errors_then_succeeds(server: FakeServer) -> None:
    server.set("500-then-ok", failures=2)
    result = backend_for(server.base_url, max_attempts=3).generate(ask("again"))
    assert result.text == "echo: again"
    assert result.metadata["attempts"] == 3
    assert len(server.requests()) == 3


def test_persistent_server_errors_give_endpoint_unavailable(server: FakeServer) -> None:
    server.set("always-500")
    with pytest.raises(EndpointUnavailable) as caught:
        backend_for(server.base_url, max_attempts=3).generate(ask("x"))
    assert caught.value.status == 500
    assert "upstream model crashed" in str(caught.value)
    assert f"{server.base_url}/v1/chat/completions" in str(caught.value)
    assert "after 3 attempt(s)" in str(caught.value)
    assert len(server.requests()) == 3


def test_endpoint_down_fails_quickly() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    started = time.perf_counter()
    with pytest.raises(EndpointUnavailable, match="could not connect") as caught:
        backend_for(url, max_attempts=3).generate(ask("anyone there?"))
    assert time.perf_counter() - started < 3
    assert caught.value.url == f"{url}/v1/chat/completions"
    assert caught.value.status is None
    assert isinstance(caught.value, SamplingError)


@pytest.mark.parametrize("url", ["ftp://127.0.0.1:9", "127.0.0.1:8000"])
def test_malformed_url_is_an_endpoint_error(url: str) -> None:
    with pytest.raises(EndpointError, match="could not send a request"):
        backend_for(url).generate(ask("x"))


def test_slow_endpoint_times_out(server: FakeServer) -> None:
    server.set("slow", delay=3)
    started = time.perf_counter()
    with pytest.raises(EndpointUnavailable, match="timed out"):
        backend_for(server.base_url, timeout=(1.0, 0.3), max_attempts=2).generate(ask("slowly"))
    assert time.perf_counter() - started < 2.5
    assert len(server.requests()) == 2


@pytest.mark.parametrize(("behaviour", "complaint"), [("garbage", "not JSON"), ("no-choices", "not a chat completion")])
def test_malformed_answers_give_bad_endpoint_response(server: FakeServer, behaviour: str, complaint: str) -> None:
    server.set(behaviour)
    with pytest.raises(BadEndpointResponse, match=complaint) as caught:
        backend_for(server.base_url).generate(ask("x"))
    assert server.base_url in str(caught.value)
    assert len(server.requests()) == 1  # a broken answer is not retried


def test_unauthorised_gives_endpoint_error_with_server_message(
    server: FakeServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(KEY_ENV, "sk-wrong")
    server.set("401")
    with pytest.raises(EndpointError) as caught:
        backend_for(server.base_url, api_key_env=KEY_ENV).generate(ask("x"))
    assert caught.value.status == 401
    assert caught.value.server_message == "Invalid API key provided"
    assert "HTTP 401 (check the API key): Invalid API key provided" in str(caught.value)
    assert len(server.requests()) == 1  # 4xx is not retried


def test_llama2_template_cannot_be_honoured_by_an_endpoint(server: FakeServer) -> None:
    with pytest.raises(TemplateError, match="own chat template"):
        backend_for(server.base_url).generate(ask("x", template="llama2"))
    assert server.requests() == []
