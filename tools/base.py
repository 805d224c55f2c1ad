"""What a tool is, and the registry the executor knows tools through.

A tool is a typed, versioned, batchable unit of work. It knows nothing of graphs, runs or sessions: it gets a
list of validated ``Input`` models and returns one ``Output`` per input. Images travel as PIL images; the
executor turns them into content-addressed PNG artifacts and back.
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import Annotated, Any, ClassVar

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

    def run(self, batch: list[ToolModel]) -> list[ToolModel]:  # pragma: no cover - abstract
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
