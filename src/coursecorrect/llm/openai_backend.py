"""An ``LLM`` backend that talks to any OpenAI-compatible chat-completions server (vLLM, SGLang, llama.cpp,
llama-cpp-python, hosted APIs) over HTTP, with bounded concurrency and retries on transient errors."""

from __future__ import annotations

import asyncio
import os
import random
import threading
from collections.abc import Coroutine, Sequence
from typing import Any, TypeVar

import httpx

from coursecorrect.errors import BackendError
from coursecorrect.llm.base import BackendStats, Chat, Completion, SamplingParams

T = TypeVar("T")

_TRANSIENT_EXCEPTIONS = (httpx.TimeoutException, httpx.NetworkError, httpx.RemoteProtocolError)


class _RetryableError(Exception):
    """A failed attempt worth retrying; ``delay`` is the server's Retry-After, if it sent one."""

    def __init__(self, reason: str, delay: float | None = None) -> None:
        super().__init__(reason)
        self.delay = delay


class OpenAICompatibleLLM:
    """Chat completions from an OpenAI-compatible server.

    Each (conversation, sample) pair is one request with ``n=1`` (servers such as llama.cpp don't honour
    ``n>1`` reliably); sample ``j`` of conversation ``i`` gets seed ``s_i + j``, with ``s_i`` from
    :meth:`SamplingParams.conversation_seeds` (``params.seeds[i]``, else ``base + i * n`` where ``base`` is
    ``params.seed`` or a fresh random number per call). Greedy decoding
    (``temperature == 0``) sends one request per conversation and repeats its completion ``n`` times.
    Requests run concurrently, at most ``max_concurrency`` at a time per backend. Connection errors,
    timeouts, 408, 429 and 5xx are retried ``max_retries`` times with exponential backoff and jitter; any
    other error status fails at once. All I/O runs on an event loop in a daemon thread, so ``generate``
    also works when called from inside a running event loop. ``stats.calls`` counts ``generate`` calls;
    ``stats.extra`` counts HTTP ``requests`` and ``retries``.
    """

    def __init__(
        self,
        model: str,
        base_url: str = "http://127.0.0.1:8000/v1",
        *,
        api_key: str | None = None,
        max_concurrency: int = 8,
        timeout: float = 300.0,
        max_retries: int = 5,
        backoff: float = 0.5,
        max_backoff: float = 8.0,
        name: str | None = None,
    ) -> None:
        """``base_url`` includes the API prefix (usually ``/v1``); ``api_key`` defaults to the
        ``OPENAI_API_KEY`` environment variable, else ``"EMPTY"``; ``timeout`` is seconds per request;
        the n-th retry waits about ``min(max_backoff, backoff * 2 ** (n - 1))`` seconds."""
        if max_concurrency < 1:
            raise ValueError(f"max_concurrency must be >= 1, got {max_concurrency}")
        if max_retries < 0:
            raise ValueError(f"max_retries must be >= 0, got {max_retries}")
        self.model = model
        self.base_url = base_url.rstrip("/")
        self.name = name or f"openai:{model}"
        self.stats = BackendStats(extra={"requests": 0.0, "retries": 0.0})
        self.max_concurrency = max_concurrency
        self.max_retries = max_retries
        self.backoff = backoff
        self.max_backoff = max_backoff
        self._closed = False
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name=f"{self.name}-io", daemon=True)
        self._thread.start()
        self._client, self._semaphore = self._run(
            self._make_client(api_key or os.environ.get("OPENAI_API_KEY") or "EMPTY", timeout)
        )

    async def _make_client(self, api_key: str, timeout: float) -> tuple[httpx.AsyncClient, asyncio.Semaphore]:
        """Create the HTTP client and semaphore on the I/O loop, which they belong to."""
        limits = httpx.Limits(max_connections=self.max_concurrency, max_keepalive_connections=self.max_concurrency)
        client = httpx.AsyncClient(
            base_url=self.base_url,
            headers={"Authorization": f"Bearer {api_key}"},
            timeout=timeout,
            limits=limits,
        )
        return client, asyncio.Semaphore(self.max_concurrency)

    def _run(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run ``coro`` on the I/O loop and wait for its result."""
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result()

    def generate(self, conversations: Sequence[Chat], params: SamplingParams) -> list[list[Completion]]:
        """For each conversation, ``params.n`` completions of the next assistant turn, in order."""
        if self._closed:
            raise BackendError(f"{self.name} is closed")
        return self._run(self._generate(conversations, params))

    async def agenerate(self, conversations: Sequence[Chat], params: SamplingParams) -> list[list[Completion]]:
        """Async ``generate``, awaitable from any event loop."""
        if self._closed:
            raise BackendError(f"{self.name} is closed")
        future = asyncio.run_coroutine_threadsafe(self._generate(conversations, params), self._loop)
        return await asyncio.wrap_future(future)

    def close(self) -> None:
        """Close the HTTP client and stop the I/O thread; calling it again does nothing."""
        if self._closed:
            return
        self._closed = True
        self._run(self._client.aclose())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join()
        self._loop.close()

    def __enter__(self) -> OpenAICompatibleLLM:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    async def _generate(self, conversations: Sequence[Chat], params: SamplingParams) -> list[list[Completion]]:
        """Send every request concurrently and regroup the completions per conversation."""
        self.stats.calls += 1
        copies = 1 if params.temperature == 0 else params.n
        seeds = params.conversation_seeds(len(conversations), lambda: random.randrange(2**31))
        payloads = [
            self._payload(conv, params, seed=seed + j)
            for conv, seed in zip(conversations, seeds, strict=True)
            for j in range(copies)
        ]
        tasks = [asyncio.ensure_future(self._complete(p)) for p in payloads]
        try:
            completions = await asyncio.gather(*tasks)
        except BaseException:  # one request failed (or we were cancelled): don't leave the rest running
            for task in tasks:
                task.cancel()
            raise
        return [[completions[i * copies + j % copies] for j in range(params.n)] for i in range(len(conversations))]

    def _payload(self, conversation: Chat, params: SamplingParams, seed: int) -> dict[str, Any]:
        """The JSON body of one chat-completions request."""
        payload: dict[str, Any] = {
            "model": self.model,
            "messages": [{"role": m["role"], "content": m["content"]} for m in conversation],
            "temperature": params.temperature,
            "top_p": params.top_p,
            "max_tokens": params.max_new_tokens,
            "seed": seed,
        }
        if params.stop:
            payload["stop"] = list(params.stop)
        return payload

    async def _complete(self, payload: dict[str, Any]) -> Completion:
        """One request, bounded by the semaphore, parsed into a ``Completion``."""
        async with self._semaphore:
            body = await self._post_with_retries(payload)
        try:
            choice = body["choices"][0]
            text = choice["message"].get("content") or ""
        except (KeyError, IndexError, TypeError, AttributeError) as e:
            raise BackendError(f"unexpected response from {self.base_url}: {str(body)[:200]}") from e
        usage = body.get("usage") or {}
        completion = Completion(
            text=text,
            prompt_tokens=usage.get("prompt_tokens") or 0,
            completion_tokens=usage.get("completion_tokens") or 0,
            finish_reason="length" if choice.get("finish_reason") == "length" else "stop",
        )
        self._count(completion, usage)
        return completion

    def _count(self, completion: Completion, usage: dict[str, Any]) -> None:
        """Add one response's token counts to ``stats``."""
        self.stats.extra["requests"] += 1
        self.stats.prompt_tokens += completion.prompt_tokens
        self.stats.completion_tokens += completion.completion_tokens
        details = usage.get("prompt_tokens_details") or {}
        self.stats.cached_prompt_tokens += details.get("cached_tokens") or 0

    async def _post_with_retries(self, payload: dict[str, Any]) -> dict[str, Any]:
        """POST ``payload``, retrying transient failures; raise ``BackendError`` when out of attempts."""
        attempt = 1
        while True:
            try:
                return await self._post(payload)
            except _RetryableError as e:
                if attempt > self.max_retries:
                    raise BackendError(
                        f"cannot reach OpenAI-compatible server at {self.base_url}: {e} "
                        f"(after {attempt} attempt{'s' if attempt > 1 else ''})"
                    ) from e
                self.stats.extra["retries"] += 1
                await asyncio.sleep(e.delay if e.delay is not None else self._backoff(attempt))
                attempt += 1

    def _backoff(self, attempt: int) -> float:
        """Seconds to wait after failed attempt ``attempt``: exponential, capped, with jitter."""
        return min(self.max_backoff, self.backoff * 2 ** (attempt - 1)) * random.uniform(0.5, 1.0)

    async def _post(self, payload: dict[str, Any]) -> dict[str, Any]:
        """One attempt: the parsed JSON body, ``_RetryableError`` if transient, else ``BackendError``."""
        try:
            response = await self._client.post("/chat/completions", json=payload)
        except _TRANSIENT_EXCEPTIONS as e:
            raise _RetryableError(_describe(e)) from e
        except httpx.HTTPError as e:
            raise BackendError(f"request to {self.base_url} failed: {str(e) or type(e).__name__}") from e
        if response.is_success:
            try:
                return response.json()
            except ValueError as e:
                raise BackendError(f"unexpected response from {self.base_url}: {response.text[:200]!r}") from e
        reason = f"HTTP {response.status_code}: {' '.join(_error_message(response).split())}"
        if response.status_code in (408, 429) or response.status_code >= 500:
            raise _RetryableError(reason, _retry_after(response))
        raise BackendError(f"OpenAI-compatible server at {self.base_url} rejected the request: {reason}")


def _describe(exc: httpx.HTTPError) -> str:
    """A short reason for a transport error, e.g. "Connection refused" or "timed out (ReadTimeout)"."""
    if isinstance(exc, httpx.TimeoutException):
        return f"timed out ({type(exc).__name__})"
    reason = str(exc) or type(exc).__name__
    cause = exc.__cause__ or exc.__context__
    while cause is not None:  # the innermost OS error names the reason best
        if isinstance(cause, OSError) and cause.errno:
            reason = os.strerror(cause.errno)
        cause = cause.__cause__ or cause.__context__
    return reason


def _error_message(response: httpx.Response) -> str:
    """The server's error message: OpenAI's ``{"error": {"message": ...}}``, FastAPI's ``{"detail": ...}``,
    or the start of the body."""
    try:
        body = response.json()
    except ValueError:
        return response.text[:300].strip() or response.reason_phrase
    if isinstance(body, dict):
        error = body.get("error")
        if isinstance(error, dict) and error.get("message"):
            return str(error["message"])
        if error or body.get("detail"):
            return str(error or body["detail"])[:300]
    return str(body)[:300]


def _retry_after(response: httpx.Response) -> float | None:
    """The Retry-After header in seconds, if present and numeric (capped at a minute)."""
    try:
        return min(60.0, max(0.0, float(response.headers["retry-after"])))
    except (KeyError, ValueError):
        return None
