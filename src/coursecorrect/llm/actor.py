"""The current model of a run that trains new models: loaded once, reused by consecutive stages."""

from __future__ import annotations

from typing import Any

from coursecorrect.llm import LLM, LLMConfig


class Actor:
    """The current model, loaded once and reused by consecutive stages.

    ``get(path)`` loads the model at ``path`` through the configured backend, or returns it if it is the one
    loaded; another path closes the old backend first (an engine's server is stopped and started again with
    the new weights). :meth:`served` tells what the loaded backend serves, for the stage summaries.
    """

    def __init__(self, config: LLMConfig) -> None:
        self.config = config
        self._llm: LLM | None = None
        self._path: str | None = None

    def config_for(self, path: str) -> LLMConfig:
        """The configured backend with the model at ``path`` (what a stage's config records as its model)."""
        return self.config.model_copy(update={"model": path})

    def get(self, path: str) -> LLM:
        """The backend serving ``path``: the loaded one, or a new one after closing the old."""
        if self._path != path:
            self.release()
            self._llm, self._path = self.config_for(path).make(), path
        assert self._llm is not None
        return self._llm

    def served(self) -> dict[str, Any]:
        """The backend and the weights it serves: engines add the file they loaded and the weights' digest."""
        if self._llm is None:
            return {}
        served = getattr(self._llm, "served", None)
        return served() if callable(served) else {"backend": self.config.backend, "weights": self._path}

    def release(self) -> None:
        """Close the loaded backend (freeing its memory, e.g. before training); the next ``get`` loads again."""
        if self._llm is not None:
            self._llm.close()
        self._llm = self._path = None
