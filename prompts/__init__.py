"""Prompt templates for the LLM planners, stored as files under ``prompts/templates/``.

A template's *version* is the first 12 hex digits of the sha256 of its bytes, so any edit changes the version, and
the version goes into every recorded LLM request and the planner's identity (replays never mix template versions).

Templates use ``string.Template`` placeholders (``$name`` / ``${name}``); JSON examples in them need no escaping
because JSON never contains ``$``. ``render`` fails on a missing placeholder rather than sending a half-filled
prompt.
"""

from __future__ import annotations

import hashlib
import string
from functools import cache
from importlib import resources

__all__ = ["TemplateError", "load", "names", "render", "version"]

_SUFFIXES = (".txt", ".jinja")


class TemplateError(LookupError):
    pass


def _dir():
    return resources.files(__name__).joinpath("templates")


def names() -> list[str]:
    """Template names (file names without suffix)."""
    return sorted(p.name.rsplit(".", 1)[0] for p in _dir().iterdir() if p.name.endswith(_SUFFIXES))


@cache
def _read(name: str) -> tuple[str, str]:
    for suffix in _SUFFIXES:
        path = _dir().joinpath(name + suffix)
        if path.is_file():
            data = path.read_bytes()
            return data.decode("utf-8"), hashlib.sha256(data).hexdigest()[:12]
    raise TemplateError(f"no prompt template '{name}' in prompts/templates; available: {', '.join(names())}")


def load(name: str) -> tuple[str, str]:
    """``(text, version)`` of template ``name``; version = sha256 of the file content, first 12 hex digits."""
    return _read(name)


def version(name: str) -> str:
    return _read(name)[1]


def render(name: str, **values: object) -> tuple[str, str]:
    """Fill ``$placeholders``; returns ``(text, version)``. A placeholder with no value raises TemplateError."""
    text, ver = _read(name)
    try:
        return string.Template(text).substitute({k: str(v) for k, v in values.items()}), ver
    except (KeyError, ValueError) as err:
        raise TemplateError(f"prompt template '{name}' needs a value for {err}") from None
