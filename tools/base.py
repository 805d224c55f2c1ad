"""What a tool is, and the registry the executor knows tools through.

A tool is a typed, versioned, batchable unit of work. It knows nothing of graphs, runs or sessions: it gets a
list of validated ``Input`` models and returns one ``Output`` per input. Images travel as PIL images; the
executor turns them into content-addressed PNG artifacts and back.

What a tool may see of the runs it serves is one narrow :class:`ToolContext` (report progress, check whether to
stop, the LLM recorder of the run each input belongs to), passed to ``run``; tools are shared by every run of an
engine, so nothing per run is ever set on a tool.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from typing import Annotated, Any, ClassVar, Protocol

from PIL import Image as PILImage
from pydantic import BaseModel, ConfigDict, PlainSerializer, PlainValidator, WithJsonSchema


def _as_image(value: Any) -> PILImage.Image:
    if isinstance(value, PILImage.Image):
        return value
    raise ValueError(f"expected an image, got {type(value).__name__}; connect this input to a node's image output")


Image = Annotated[
    PILImage.Image,
    PlainValidator(_as_image),
    PlainSerializer(lambda im: f"<image {im.width}x{im.height}>", when_used="json"),
    WithJsonSchema({"type": "string", "description": "image artifact"}),
]
"""An image value. In graph files an image input is always a reference to another node's output."""


class TransientError(RuntimeError):
    """Raised by a tool for a failure worth retrying (a server that is unreachable, busy or answers 5xx); the
    executor retries the batch with back-off, as an event each time."""


class Cancelled(RuntimeError):
    """Raised by a tool that stopped early because :meth:`ToolContext.cancelled` said so; its partial output is
    never used or cached."""


class Recorder(Protocol):
    """Where a run's LLM exchanges go (``llm.jsonl``); ``lookup`` answers from a recording on replay."""

    def record(self, kind: str, request: dict, response: dict) -> None: ...

    def lookup(self, kind: str, request: dict) -> dict | None: ...


class ToolContext:
    """The narrow view a tool gets of the run(s) its batch serves (one batch may hold inputs of several runs).

    - ``progress(step, total)``: per-step progress of a long call (a diffusion loop), shown as "step 12/20";
    - ``cancelled()``: True once every run in this batch was cancelled; a long call stops at its next step and
      raises :class:`Cancelled`;
    - ``recorder(i)``: the LLM recorder of the run that input ``i`` belongs to (None outside a run), so a VLM
      tool's exchanges land in that run's ``llm.jsonl`` and no other.
    """

    def __init__(
        self,
        *,
        progress: Callable[[int, int], None] | None = None,
        cancelled: Callable[[], bool] | None = None,
        recorders: Sequence[Recorder | None] = (),
    ):
        self._progress = progress
        self._cancelled = cancelled
        self._recorders = list(recorders)

    def progress(self, step: int, total: int) -> None:
        if self._progress is not None:
            self._progress(step, total)

    def cancelled(self) -> bool:
        return self._cancelled() if self._cancelled is not None else False

    def recorder(self, i: int) -> Recorder | None:
        return self._recorders[i] if 0 <= i < len(self._recorders) else None

    def part(self, indices: Sequence[int]) -> "ToolContext":
        """The context of a sub-batch (the executor's out-of-memory retry in halves)."""
        return ToolContext(progress=self._progress, cancelled=self._cancelled,
                           recorders=[self.recorder(i) for i in indices])


NO_CONTEXT = ToolContext()
"""For calls made outside a run (tests, benchmarks, one tool calling another without a run at hand)."""


class ToolModel(BaseModel):
    """Base for tool inputs and outputs: strict about unknown fields, images allowed."""

    model_config = ConfigDict(extra="forbid", arbitrary_types_allowed=True)


class Tool:
    """Subclass per backend and role. Class attributes describe the tool; ``run`` does the work.

    - ``name`` is the role (what the recipe asks for); ``version`` changes whenever outputs would change.
    - ``resource``: tools on the same resource never run at the same time ("gpu": one device, one call);
      "cpu" tools run beside them.
    - ``max_batch``: how many inputs one ``run`` call may take; ``batch_key`` says which inputs may share a call
      (same model, same size, same step count).
    """

    name: ClassVar[str]
    version: ClassVar[str]
    Input: ClassVar[type[ToolModel]]
    Output: ClassVar[type[ToolModel]]
    deterministic: ClassVar[bool] = True
    resource: ClassVar[str] = "cpu"
    max_batch: ClassVar[int] = 16

    def identity(self) -> dict:
        """Model identity for cache keys: model ids, revisions or weight hashes, prompt-template versions."""
        return {}

    def ignored_inputs(self) -> dict[str, str]:
        """Inputs of the role's schema that this backend, as configured, would drop ({name: what to do about it}).
        Graph validation refuses a graph that sets one: a step that silently does nothing is a defect."""
        return {}

    def batch_key(self, inputs: dict) -> Hashable:
        """Inputs with equal keys may share one ``run`` call. ``inputs`` is the *encoded* input dict (images as
        ``{"$artifact": sha, "kind": "image", "size": [w, h]}``), so grouping never loads an image."""
        return ()

    def free_memory(self) -> None:
        """Called on out-of-memory before the batch is retried in halves; model-backed tools release caches."""

    def run(self, batch: list[ToolModel], ctx: ToolContext = NO_CONTEXT) -> list[ToolModel]:  # pragma: no cover
        raise NotImplementedError


class UnknownTool(KeyError):
    pass


class Registry:
    """Name → tool instance for one profile. A plan may only name tools that are registered here."""

    def __init__(self, tools: list[Tool] | None = None):
        self._tools: dict[str, Tool] = {}
        for tool in tools or []:
            self.add(tool)

    def add(self, tool: Tool) -> None:
        self._tools[tool.name] = tool

    def get(self, name: str) -> Tool:
        try:
            return self._tools[name]
        except KeyError:
            raise UnknownTool(
                f"tool '{name}' is not registered; known tools: {', '.join(sorted(self._tools))}"
            ) from None

    def __contains__(self, name: str) -> bool:
        return name in self._tools

    def names(self) -> list[str]:
        return sorted(self._tools)
