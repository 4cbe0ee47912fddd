"""Name -> class registries, so configs pick components as ``type: name`` + ``conf: {...}``."""
from __future__ import annotations

import difflib
import inspect
from typing import Any, Callable

from legonn.errors import LegonnError


class Registry:
    """A table of constructors chosen by name from YAML (as ESPnet2's class choices)."""

    def __init__(self, kind: str):
        self.kind = kind
        self._table: dict[str, type] = {}

    def register(self, name: str) -> Callable[[type], type]:
        def add(cls: type) -> type:
            if name in self._table:
                raise ValueError(f"{self.kind} '{name}' registered twice")
            self._table[name] = cls
            cls.registered_name = name
            return cls

        return add

    def names(self) -> list[str]:
        return sorted(self._table)

    def get(self, name: str) -> type:
        if name not in self._table:
            close = difflib.get_close_matches(str(name), self._table, n=1)
            hint = f"; did you mean '{close[0]}'?" if close else ""
            raise LegonnError(f"unknown {self.kind} type '{name}' (known: {', '.join(self.names())}){hint}")
        return self._table[name]

    def build(self, name: str, conf: dict[str, Any] | None = None, **extra: Any) -> Any:
        """Instantiate ``name`` with ``conf``; a misspelt argument is one clear error, not a TypeError."""
        cls = self.get(name)
        kwargs = dict(conf or {})
        kwargs.update(extra)
        params = inspect.signature(cls.__init__).parameters
        if not any(p.kind is p.VAR_KEYWORD for p in params.values()):
            unknown = sorted(set(kwargs) - set(params))
            if unknown:
                allowed = sorted(k for k in params if k != "self" and k not in extra)  # extras are the caller's
                raise LegonnError(
                    f"{self.kind} '{name}' has no argument(s) {', '.join(unknown)} (allowed: {', '.join(allowed)})"
                )
        return cls(**kwargs)


MODULES = Registry("module")
INGESTORS = Registry("ingestor")
FRONTENDS = Registry("frontend")
CRITERIA = Registry("criterion")  # training losses (legonn/engine/criteria.py), config section criterion
CALLBACKS = Registry("callback")  # training-loop hooks (legonn/engine/callbacks.py), config trainer.callbacks
