"""What every planner provides: a request in, a validated Blueprint out.

Planners never call tools. LLM planners record every request and response through the ``Recorder`` they are
given, so a run can be replayed without the LLM.
"""

from __future__ import annotations

from typing import Protocol

from agent.blueprint import Blueprint, Canvas


class PlanningError(RuntimeError):
    """The planner could not produce a valid blueprint. The message is one line a user can act on."""


class Recorder(Protocol):
    """Where LLM exchanges go. ``lookup`` returns a recorded response for replay, or None to call the LLM."""

    def record(self, kind: str, request: dict, response: dict) -> None: ...

    def lookup(self, kind: str, request: dict) -> dict | None: ...


class NullRecorder:
    def record(self, kind: str, request: dict, response: dict) -> None:
        pass

    def lookup(self, kind: str, request: dict) -> dict | None:
        return None


class Planner(Protocol):
    name: str

    def identity(self) -> dict:
        """Model id, template versions: part of the run record."""
        ...

    def plan(self, prompt: str, *, seed: int = 0, canvas: Canvas | None = None,
             recorder: Recorder | None = None) -> Blueprint:
        """``recorder``: where this call's LLM exchanges go (the run's); planners are shared by many runs."""
        ...
