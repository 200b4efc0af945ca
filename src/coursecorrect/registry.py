"""Registries for what users choose by name (envs, backends, critics): lazy ``module:Class`` targets,
a base-class check, and did-you-mean errors."""

from __future__ import annotations

import importlib
from typing import Generic, TypeVar

from coursecorrect.errors import CourseCorrectError, UnknownNameError

T = TypeVar("T")


class Registry(Generic[T]):
    """Maps names to classes (or ``"module:Class"`` strings imported on first use)."""

    def __init__(self, kind: str, base: type[T]) -> None:
        self.kind = kind
        self.base = base
        self._targets: dict[str, str | type[T]] = {}

    def register(self, name: str, target: str | type[T], overwrite: bool = False) -> None:
        """Register ``target`` under ``name``; re-registering a name needs ``overwrite=True``."""
        if name in self._targets and not overwrite:
            raise CourseCorrectError(f"{self.kind} {name!r} is already registered (pass overwrite=True)")
        if isinstance(target, str) and ":" not in target:
            raise CourseCorrectError(f"{self.kind} target must look like 'package.module:Class', got {target!r}")
        self._targets[name] = target

    def get(self, name: str) -> type[T]:
        """The class registered under ``name``."""
        if name not in self._targets:
            raise UnknownNameError(self.kind, name, self._targets)
        target = self._targets[name]
        if isinstance(target, str):
            module_name, _, attr = target.partition(":")
            try:
                target = getattr(importlib.import_module(module_name), attr)
            except (ImportError, AttributeError) as exc:
                raise CourseCorrectError(f"cannot load {self.kind} {name!r} from {target!r}: {exc}") from exc
        if not (isinstance(target, type) and issubclass(target, self.base)):
            raise CourseCorrectError(f"{self.kind} {name!r} is not a subclass of {self.base.__name__}")
        self._targets[name] = target
        return target

    def names(self) -> list[str]:
        return sorted(self._targets)

    def __contains__(self, name: object) -> bool:
        return name in self._targets
