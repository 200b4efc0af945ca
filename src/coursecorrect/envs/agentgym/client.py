"""Play an env hosted by an AgentGym-style HTTP server: ``coursecorrect env serve`` or AgentGym's own servers.

Select it with the env name ``agentgym:<url>``, e.g. ``agentgym:http://127.0.0.1:8000``.

What the server does not say must come from options: AgentGym's servers report neither the number of tasks
nor the instruction prompt (AgentGym's clients hard-code both per env), so pass ``as_env`` (below) or
``num_tasks`` and ``instruction`` for them; against ``coursecorrect env serve`` both (and the splits) are read
from its ``/info``. ``protocol`` picks the field names of AgentGym's servers: ``"agentgym"`` (``id`` / ``data_idx``:
ours, TextCraft, BabyAI, SciWorld), ``"webshop"`` (``env_idx`` / ``session_id``) or ``"alfworld"``
(``id`` / ``game``). Snapshots use reset + replay, exact as long as the served env is deterministic.

``as_env`` names the coursecorrect env that the server hosts (e.g. ``"textcraft"`` for AgentGym's
TextCraft server): its instruction, task count and splits are used, and each task id is sent as the server's
id of the same task, found once by matching first observations (``Env.task_key``; for TextCraft the goal).
AgentGym numbers TextCraft's goals in the order ``os.listdir`` returns its recipe files, so without this
its task k is usually a different goal from ours, and differs from disk to disk.

Failed requests are retried with exponential backoff on connection errors and 5xx answers; ``/step`` is
retried only when the server cannot have applied it (refused connection, 502/503/504), since a repeated
step is a different episode. A server-side env that vanished (idle timeout, server restart: a 404, or
AgentGym's "The id N is not valid." / "... has been deleted.") is re-created and brought back to where it was
by replaying the episode's actions. AgentGym's servers answer other failures with HTTP 200 and
``{"error": ...}``: from ``/step`` that text becomes the observation (a step never raises), from the other
routes an ``EnvError``.
"""

from __future__ import annotations

import functools
import re
import time
from dataclasses import dataclass, field
from typing import Any

import httpx

from coursecorrect.envs.base import Env, StepResult
from coursecorrect.envs.registry import make_registered_env
from coursecorrect.errors import EnvError
from coursecorrect.text import replace_surrogates

UNSENT = (httpx.ConnectError, httpx.ConnectTimeout)
NOT_APPLIED = (502, 503, 504)
GONE = re.compile(r"The id -?\d+ is not valid|The task with environment -?\d+ has been deleted")
_SERVER_IDS: dict[tuple[str, str, str], list[int]] = {}  # (url, protocol, as_env) -> server id of each task


@dataclass(frozen=True)
class Dialect:
    """Field names of one family of AgentGym servers."""

    id_field: str
    task_field: str
    reset_extra: dict[str, Any] = field(default_factory=dict)


DIALECTS = {
    "agentgym": Dialect("id", "data_idx"),
    "webshop": Dialect("env_idx", "session_id"),
    "alfworld": Dialect("id", "game", {"world_type": "Text"}),
}


class _EnvGone(EnvError):
    """The server no longer knows this client's env id (idle timeout, restart)."""


class _ErrorAnswer(EnvError):
    """The server answered ``{"error": ...}`` (AgentGym's servers do so with HTTP 200)."""

    def __init__(self, message: str, text: str) -> None:
        super().__init__(message)
        self.text = text


class AgentGymEnv(Env):
    """An env played over AgentGym's HTTP protocol (``agentgym:<url>``)."""

    name = "agentgym"

    def __init__(
        self,
        url: str,
        max_steps: int = 100,
        num_tasks: int | None = None,
        instruction: str | None = None,
        splits: dict[str, list[int]] | None = None,
        protocol: str = "agentgym",
        as_env: str | None = None,
        timeout: float = 60.0,
        retries: int = 5,
        backoff: float = 0.5,
    ) -> None:
        super().__init__(max_steps)
        if not url.startswith(("http://", "https://")):
            raise EnvError(f"AgentGym server URL must start with http:// or https://, got {url!r}")
        if protocol not in DIALECTS:
            raise EnvError(f"unknown AgentGym protocol {protocol!r}; choose one of {', '.join(DIALECTS)}")
        if retries < 1 or backoff < 0:
            raise EnvError("retries must be >= 1 and backoff >= 0")
        self.url = url.rstrip("/")
        self.protocol = protocol
        self.dialect = DIALECTS[protocol]
        self.as_env = as_env
        if as_env is not None:
            _native_env(as_env)  # an unknown name fails here
        self.retries = retries
        self.backoff = backoff
        self._options = {"num_tasks": num_tasks, "instruction": instruction, "splits": splits}
        self._info: dict[str, Any] | None = None
        self._http = httpx.Client(base_url=self.url, timeout=timeout)
        self._env_id: int | None = None
        self._served: tuple[int, list[str]] | None = None  # the task and actions the server-side env has seen

    def _setting(self, key: str) -> Any:
        """An option, else ``as_env``'s value, else the server's ``/info`` value; ``EnvError`` when none exists."""
        if self._options[key] is not None:
            return self._options[key]
        if self.as_env is not None:
            return _description(self.as_env)[key]
        if self._info is None:
            self._info = self._request("GET", "/info") or {}
        if self._info.get(key) is None:
            raise EnvError(
                f"{self.url} does not report {key} (AgentGym servers don't): pass the env option as_env (e.g. "
                f"--env-option as_env=textcraft) or --env-option {key}=..."
            )
        return self._info[key]

    @property
    def instruction(self) -> str:
        return str(self._setting("instruction"))

    @property
    def num_tasks(self) -> int:
        return int(self._setting("num_tasks"))

    @property
    def splits(self) -> tuple[str, ...]:  # type: ignore[override]  # known once the server is asked
        return tuple(self._split_map())

    def _split_map(self) -> dict[str, list[int]]:
        try:
            return dict(self._setting("splits"))
        except EnvError:
            return {"all": list(range(self.num_tasks))}

    def task_ids(self, split: str) -> list[int]:
        splits = self._split_map()
        if split == "all":
            return list(range(self.num_tasks))
        if split not in splits:
            known = ", ".join(dict.fromkeys([*splits, "all"]))
            hint = "; the server reports none (pass the env option as_env or splits)" if set(splits) == {"all"} else ""
            raise EnvError(f"{self.name}: unknown split {split!r}; choose one of {known}{hint}")
        return list(splits[split])

    def task_key(self, observation: str) -> str:
        return _native_env(self.as_env).task_key(observation) if self.as_env else observation

    def _reset(self, task_id: int) -> str:
        return self._reset_server_task(self._server_ids()[task_id] if self.as_env else task_id)

    def _reset_server_task(self, server_id: int) -> str:
        try:
            return self._reset_served(server_id)
        except _EnvGone:
            self._env_id = None
            return self._reset_served(server_id)

    def _step(self, action: str) -> StepResult:
        try:
            return self._step_served(action)
        except _EnvGone:
            self._revive()
            return self._step_served(action)

    def _server_ids(self) -> list[int]:
        """The server's id of each of ``as_env``'s tasks, matched once by ``task_key`` of first observations."""
        assert self.as_env is not None
        cache_key = (self.url, self.protocol, self.as_env)
        if cache_key not in _SERVER_IDS:
            native = _native_env(self.as_env)
            ours = [native.task_key(native.reset(task_id)) for task_id in range(native.num_tasks)]
            theirs: dict[str, int] = {}
            for server_id in range(len(ours)):
                theirs.setdefault(native.task_key(self._reset_server_task(server_id)), server_id)
            missing = [key for key in ours if key not in theirs]
            if missing:
                raise EnvError(
                    f"{self.url} does not serve {self.as_env}'s tasks: {len(missing)} of {len(ours)} not among its "
                    f"first {len(ours)} tasks (e.g. {missing[0]!r})"
                )
            _SERVER_IDS[cache_key] = [theirs[key] for key in ours]
        return _SERVER_IDS[cache_key]

    def _reset_served(self, task_id: int) -> str:
        if self._env_id is None:
            created = self._request("POST", "/create", {})  # AgentGym's TextCraft requires a body
            self._env_id = created if isinstance(created, int) else int(created["id"])
        body = {self.dialect.task_field: task_id, **self.dialect.reset_extra}
        answer = self._request("POST", "/reset", self._with_id(body))
        self._served = (task_id, [])
        if isinstance(answer, dict) and "observation" in answer:
            return _observation(answer, reset=True)
        observation = self._request("GET", "/observation", params={self.dialect.id_field: self._env_id})
        return replace_surrogates(observation) if isinstance(observation, str) else _observation(observation, True)

    def _step_served(self, action: str) -> StepResult:
        try:
            answer = self._request("POST", "/step", self._with_id({"action": action}), idempotent=False)
        except _ErrorAnswer as exc:  # e.g. an action the server's game failed on: the agent reads why
            assert self._served is not None
            self._served[1].append(action)
            return StepResult(replace_surrogates(exc.text), self.reward)
        if not isinstance(answer, dict):
            raise EnvError(f"{self.url}/step answered {str(answer)[:200]!r}, not a JSON object")
        assert self._served is not None
        self._served[1].append(action)
        truncated = bool(answer.get("truncated", False))
        done = bool(answer.get("done", False))
        return StepResult(_observation(answer), _reward(answer), done and not truncated, truncated)

    def _revive(self) -> None:
        """Re-create the server-side env and replay the episode it lost."""
        if self._served is None:
            raise EnvError(f"{self.name}: call reset(task_id) before step()")
        task_id, actions = self._served
        self._env_id = None
        self._reset_served(task_id)
        for action in actions:
            self._step_served(action)

    def _with_id(self, body: dict[str, Any]) -> dict[str, Any]:
        return {self.dialect.id_field: self._env_id, **body}

    def _request(
        self,
        method: str,
        path: str,
        body: dict[str, Any] | None = None,
        params: dict[str, Any] | None = None,
        idempotent: bool = True,
    ) -> Any:
        """One call with retries; the decoded JSON answer (``None`` for a missing ``/info``). ``_EnvGone`` when
        the server no longer knows this env's id, ``_ErrorAnswer`` for an ``{"error": ...}`` answer."""
        failure = ""
        for attempt in range(self.retries):
            if attempt:
                time.sleep(self.backoff * 2 ** (attempt - 1))
            try:
                response = self._http.request(method, path, json=body, params=params)
            except httpx.TransportError as exc:
                if not idempotent and not isinstance(exc, UNSENT):
                    message = f"{self.url}{path} failed mid-request, the step may or may not be applied: {exc}"
                    raise EnvError(message) from exc
                failure = f"{type(exc).__name__}: {exc}"
                continue
            if response.status_code >= 500 and (idempotent or response.status_code in NOT_APPLIED):
                failure = f"HTTP {response.status_code}: {_detail(response)}"
                continue
            break
        else:
            raise EnvError(f"cannot reach AgentGym server at {self.url} after {self.retries} tries: {failure}")
        if response.status_code == 404 and path == "/info":
            return None
        if response.status_code == 404 and path in ("/reset", "/step", "/observation") and self._env_id is not None:
            raise _EnvGone(f"{self.url} no longer knows env {self._env_id}: {_detail(response)}")
        if response.status_code != 200:
            raise EnvError(f"{self.url}{path}: HTTP {response.status_code}: {_detail(response)}")
        try:
            answer = response.json()
        except ValueError:
            raise EnvError(f"{self.url}{path} answered non-JSON: {response.text[:200]!r}") from None
        if isinstance(answer, dict) and "error" in answer:
            text = str(answer["error"])
            if GONE.search(text) and self._env_id is not None and path != "/create":
                raise _EnvGone(f"{self.url} no longer knows env {self._env_id}: {text}")
            raise _ErrorAnswer(f"{self.url}{path}: {text}", text)
        return answer

    def close(self) -> None:
        """Close the server-side env (best effort: the server's idle timeout covers a failure) and the client."""
        if self._env_id is not None:
            try:
                self._http.post("/close", json=self._with_id({}))
            except httpx.HTTPError:
                pass
            self._env_id = None
        self._http.close()


@functools.cache
def _native_env(name: str) -> Env:
    """The in-process env named ``name``, to read its description and task keys from."""
    return make_registered_env(name)


def _description(name: str) -> dict[str, Any]:
    """Instruction, task count and splits of the in-process env ``name``."""
    env = _native_env(name)
    splits = {split: env.task_ids(split) for split in env.splits}
    return {"instruction": env.instruction, "num_tasks": env.num_tasks, "splits": splits}


def _observation(answer: dict[str, Any], reset: bool = False) -> str:
    """The observation text of an answer, as AgentGym's clients assemble it per server."""
    text = answer.get("observation", answer.get("state"))
    if not isinstance(text, str):
        raise EnvError(f"AgentGym server answer has no observation: {str(answer)[:200]!r}")
    if reset and isinstance(answer.get("task_description"), str):
        text = f"{answer['task_description']}\n{text}"
    if isinstance(answer.get("available_actions"), list):
        text = f"{text}\nAVAILABLE ACTIONS: {','.join(map(str, answer['available_actions']))}"
    return replace_surrogates(text)  # a server's text is as untrusted as a model's


def _reward(answer: dict[str, Any]) -> float:
    """The episode's reward so far: ``score`` where the server reports one (BabyAI, SciWorld), else ``reward``."""
    return float(answer.get("score", answer.get("reward", 0.0)) or 0.0)


def _detail(response: httpx.Response) -> str:
    try:
        detail = response.json().get("detail", response.text)
    except (ValueError, AttributeError):
        detail = response.text
    return str(detail)[:300]
