"""The current model of a run that trains new models: loaded once, reused by consecutive stages."""

from __future__ import annotations

from coursecorrect.llm import LLM, LLMConfig


class Actor:
    """The current model, loaded once and reused by consecutive stages."""

    def __init__(self, config: LLMConfig) -> None:
        self.config = config
        self._llm: LLM | None = None
        self._path: str | None = None

    def config_for(self, path: str) -> LLMConfig:
        return self.config.model_copy(update={"model": path})

    def get(self, path: str) -> LLM:
        if self._path != path:
            self.release()
            self._llm, self._path = self.config_for(path).make(), path
        assert self._llm is not None
        return self._llm

    def release(self) -> None:
        if self._llm is not None:
            self._llm.close()
        self._llm = self._path = None
