"""The tool graph: typed tool calls wired by references, and the loops that expand at run time.

A node is ``{id, tool, version, inputs}``. An input value is a literal or, anywhere inside it, a reference
``{"ref": "node_id.output_name"}``. A :class:`LoopNode` is a bounded refinement loop: its ``body`` is a small
template of tool nodes that the executor instantiates once per iteration (ids ``<loop>.i<k>.<local>``) until
the score reaches the threshold or ``max_iters`` runs out, keeping the best state seen (not the last).

The authored graph is never mutated; the executor derives the execution graph from it. Everything here is
plain data: a graph file can only name registered tools, never code.
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
import re
from typing import Annotated, Any, Literal, Union

from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag, TypeAdapter, ValidationError

from tools.base import Image, Registry, UnknownTool

NodeId = Annotated[str, Field(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9_][A-Za-z0-9_.:\-]*$")]
GRAPH_SCHEMA_VERSION = "1"
_REF = re.compile(r"^(\$state|[A-Za-z0-9_][A-Za-z0-9_.:\-]*)\.([A-Za-z_][A-Za-z0-9_]*)$")


class GraphError(ValueError):
    """The graph is not runnable. The message names the offending node."""


class ToolNode(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Literal["tool"] = "tool"
    id: NodeId
    tool: Annotated[str, Field(max_length=64)]
    version: Annotated[str, Field(max_length=64)] = ""
    inputs: dict[str, Any] = {}


class LoopNode(BaseModel):
    """A bounded refinement loop (check → fix → check …) with best-so-far kept.

    ``state`` gives the initial values (usually refs to the first draft and its score). Body inputs may refer to
    the current state as ``{"ref": "$state.<key>"}`` and to each other by local id. ``update`` maps each state
    key to the body output that replaces it after an iteration. The loop's outputs are the best state's values
    plus ``iterations`` and ``trace``. An iteration that does not beat the best score is dropped, except for the
    ``carry`` keys: the loop's memory of what it tried (ArtAug's rejected edits), which always take the latest
    iteration's value so the next iteration does not repeat it.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Literal["loop"] = "loop"
    id: NodeId
    state: dict[str, Any]
    body: Annotated[list[ToolNode], Field(min_length=1, max_length=16)]
    update: dict[str, str]
    score: str = "score"
    threshold: float = Field(ge=0.0, le=1.0)
    max_iters: int = Field(ge=0, le=8)
    carry: Annotated[list[str], Field(max_length=8)] = []


def _node_kind(value: Any) -> str:
    return value.get("kind", "tool") if isinstance(value, dict) else getattr(value, "kind", "tool")


# "kind" may be left out for tool nodes, which are nearly all of them
Node = Annotated[Union[Annotated[ToolNode, Tag("tool")], Annotated[LoopNode, Tag("loop")]], Discriminator(_node_kind)]


class Graph(BaseModel):
    model_config = ConfigDict(extra="forbid")

    schema_version: Literal["1"] = GRAPH_SCHEMA_VERSION
    recipe: Annotated[str, Field(max_length=64)] = ""
    seed: int = Field(0, ge=0, le=2**32 - 1)
    nodes: Annotated[list[Node], Field(max_length=100_000)]
    output: Annotated[str, Field(max_length=300)]

    def to_json(self) -> str:
        return json.dumps(self.model_dump(mode="json"), sort_keys=True, indent=1) + "\n"


def parse_ref(value: Any) -> tuple[str, str] | None:
    """``{"ref": "a.b.image"}`` → ("a.b", "image"); anything else → None."""
    if isinstance(value, dict) and len(value) == 1 and "ref" in value and isinstance(value["ref"], str):
        m = _REF.match(value["ref"])
        if not m:
            raise GraphError(f"reference '{value['ref']}' is malformed; write it as 'node_id.output_name'")
        return m.group(1), m.group(2)
    return None


def map_refs(value: Any, fn) -> Any:
    """``value`` with every reference inside it replaced by ``fn(src, out)`` (the one walker over input values:
    resolving, loop instantiation, prefixing and listing references all go through it). Values without a
    reference come back as they are, not copied."""
    if isinstance(value, dict):
        if len(value) == 1 and "ref" in value:
            ref = parse_ref(value)
            if ref:
                return fn(*ref)
        out, changed = {}, False
        for k, v in value.items():
            nv = map_refs(v, fn) if isinstance(v, (dict, list)) else v
            changed |= nv is not v
            out[k] = nv
        return out if changed else value
    if isinstance(value, list):
        out = [map_refs(v, fn) if isinstance(v, (dict, list)) else v for v in value]
        return out if any(a is not b for a, b in zip(out, value)) else value
    return value


def iter_refs(value: Any) -> list[tuple[str, str]]:
    """Every reference anywhere inside an input value, in order."""
    found: list[tuple[str, str]] = []
    if isinstance(value, (dict, list)):
        map_refs(value, lambda src, out: found.append((src, out)) or {"ref": f"{src}.{out}"})
    return found


def derive_seed(run_seed: int, node_id: str) -> int:
    """Each node's seed comes from the run seed and its id, so adding a node never shifts another's noise."""
    digest = hashlib.sha256(f"{run_seed}:{node_id}".encode()).digest()
    return int.from_bytes(digest[:4], "little")


@functools.lru_cache(maxsize=None)
def fields_of(model: type[BaseModel]) -> dict:
    """A model class's fields, looked up once (pydantic's class attribute costs microseconds a call)."""
    return dict(model.model_fields)


@functools.lru_cache(maxsize=None)
def _required(model: type[BaseModel]) -> tuple[str, ...]:
    return tuple(f for f, info in fields_of(model).items() if info.is_required() and f != "seed")


@functools.lru_cache(maxsize=None)
def _field_is_image(model: type[BaseModel], name: str) -> bool:
    field = model.model_fields.get(name)
    return field is not None and (field.annotation is Image or "PIL.Image" in repr(field.annotation))


class Dag:
    """The dependency DAG of a validated graph: who each node waits for, and who waits for it. A plain dict of
    sets (networkx cost ~35% of the CLI's start-up and a per-node overhead, for a topological check)."""

    def __init__(self, ids: list[str]):
        self.deps: dict[str, set[str]] = {n: set() for n in ids}
        self.dependents: dict[str, list[str]] = {n: [] for n in ids}

    def add_edge(self, src: str, dst: str) -> None:
        if src not in self.deps[dst]:
            self.deps[dst].add(src)
            self.dependents[src].append(dst)

    @property
    def nodes(self) -> list[str]:
        return list(self.deps)

    def __contains__(self, node: str) -> bool:
        return node in self.deps

    def in_degree(self, node: str) -> int:
        return len(self.deps[node])

    def successors(self, node: str) -> list[str]:
        return self.dependents[node]

    def ancestors(self, node: str) -> set[str]:
        seen: set[str] = set()
        stack = list(self.deps[node])
        while stack:
            n = stack.pop()
            if n not in seen:
                seen.add(n)
                stack.extend(self.deps[n])
        return seen

    def find_cycle(self) -> list[str] | None:
        """Kahn's algorithm; on a cycle, one cycle's nodes in order (for the error message)."""
        waiting = {n: len(d) for n, d in self.deps.items()}
        ready = [n for n, d in waiting.items() if d == 0]
        done = 0
        while ready:
            n = ready.pop()
            done += 1
            for m in self.dependents[n]:
                waiting[m] -= 1
                if waiting[m] == 0:
                    ready.append(m)
        if done == len(waiting):
            return None
        left = {n for n, d in waiting.items() if d > 0}
        node, path, index = next(iter(sorted(left))), [], {}
        while node not in index:  # walk back along dependencies that are also stuck until one repeats
            index[node] = len(path)
            path.append(node)
            node = next(d for d in sorted(self.deps[node]) if d in left)
        return list(reversed(path[index[node]:]))


def validate_graph(graph: Graph, registry: Registry) -> Dag:
    """Check everything that can be checked before any GPU work; return the dependency DAG.

    Tools registered, versions match, references resolve to an existing node *and* output, image inputs are
    fed by image outputs, literal inputs validate against the tool's Input model, no cycles.
    """
    by_id: dict[str, Node] = {}
    for node in graph.nodes:
        if node.id in by_id:
            raise GraphError(f"node '{node.id}': the id is used twice; node ids must be unique")
        by_id[node.id] = node
    dag = Dag(list(by_id))

    def outputs_of(node: Node):
        if isinstance(node, LoopNode):
            return set(node.state) | {"iterations", "trace"}
        return fields_of(registry.get(node.tool).Output)

    def check_tool(node: ToolNode, where: str, local: dict[str, ToolNode] | None = None, state: set[str] = frozenset()):
        try:
            tool = registry.get(node.tool)
        except UnknownTool as err:
            raise GraphError(f"{where}: {err.args[0]}") from None
        if node.version and node.version != tool.version:
            raise GraphError(
                f"{where}: asks for {node.tool} version '{node.version}' but this profile has '{tool.version}';"
                " recompile the graph from its blueprint"
            )
        fields = fields_of(tool.Input)
        unknown = node.inputs.keys() - fields.keys()
        if unknown:
            raise GraphError(
                f"{where}: unknown input(s) {sorted(unknown)} for tool '{node.tool}';"
                f" it takes {sorted(fields)}"
            )
        deps = set()
        literals = {}
        for name, value in node.inputs.items():
            refs = iter_refs(value)  # once per input: the reference parser is the hot spot of validation
            if not refs:
                literals[name] = value
                if value is not None and _field_is_image(tool.Input, name):
                    raise GraphError(
                        f"{where}: image input '{name}' must be a reference to another node's image output"
                    )
                continue
            whole = len(refs) == 1 and isinstance(value, dict) and len(value) == 1 and "ref" in value
            for src, out in refs:
                if src == "$state":
                    if out not in state:
                        raise GraphError(f"{where}: input '{name}' refers to unknown loop state '{out}'")
                    continue
                if local is not None and src in local:
                    src_tool = registry.get(local[src].tool)
                    if out not in fields_of(src_tool.Output):
                        raise GraphError(f"{where}: input '{name}' refers to '{src}.{out}', which has no such output")
                    continue
                if src not in by_id:
                    raise GraphError(f"{where}: input '{name}' refers to node '{src}', which does not exist")
                src_node = by_id[src]
                if out not in outputs_of(src_node):
                    raise GraphError(
                        f"{where}: input '{name}' refers to '{src}.{out}', but '{src}' has outputs"
                        f" {sorted(outputs_of(src_node))}"
                    )
                if (
                    whole
                    and isinstance(src_node, ToolNode)
                    and _field_is_image(tool.Input, name) != _field_is_image(registry.get(src_node.tool).Output, out)
                ):
                    raise GraphError(f"{where}: input '{name}' and '{src}.{out}' have different types (image vs value)")
                deps.add(src)
        unused = sorted(n for n in tool.ignored_inputs() if node.inputs.get(n) is not None)
        if unused:  # e.g. a reference image for a repaint that has no image-prompt adapter: it would be dropped
            raise GraphError(f"{where}: tool '{node.tool}' cannot use input(s) {unused} on this profile: "
                             f"{tool.ignored_inputs()[unused[0]]}")
        missing = [f for f in _required(tool.Input) if f not in node.inputs]
        if missing:
            raise GraphError(f"{where}: missing required input(s) {missing} for tool '{node.tool}'")
        for field, err in _literal_errors(tool.Input, literals):
            raise GraphError(f"{where}: input '{field}': {err}")
        return deps

    for node in graph.nodes:
        if isinstance(node, ToolNode):
            deps = check_tool(node, f"node '{node.id}'")
        else:
            deps = set()
            for key, value in node.state.items():
                for src, out in iter_refs(value):
                    if src not in by_id or out not in outputs_of(by_id[src]):
                        raise GraphError(f"node '{node.id}': state '{key}' refers to '{src}.{out}', which does not exist")
                    deps.add(src)
            local = {b.id: b for b in node.body}
            if len(local) != len(node.body):
                raise GraphError(f"node '{node.id}': body node ids must be unique")
            for b in node.body:
                deps |= check_tool(b, f"node '{node.id}' body '{b.id}'", local, set(node.state))
            for key, target in node.update.items():
                src, _, out = target.partition(".")
                if key not in node.state or src not in local:
                    raise GraphError(f"node '{node.id}': update '{key}: {target}' must map a state key to a body output")
            for key in node.carry:
                if key not in node.update or key == node.score:
                    raise GraphError(f"node '{node.id}': carry '{key}' must be a state key the body updates (not the score)")
            score_src = node.update.get(node.score)
            if node.score not in node.state or score_src is None:
                raise GraphError(f"node '{node.id}': score '{node.score}' must be a state key updated by the body")
            first = node.state[node.score]
            if parse_ref(first) is None and (
                isinstance(first, bool) or not isinstance(first, (int, float)) or not math.isfinite(first)
            ):
                raise GraphError(
                    f"node '{node.id}': the initial score '{node.score}' must be a finite number or a reference,"
                    f" not {json.dumps(first)[:40]}"
                )
        for dep in deps:
            dag.add_edge(dep, node.id)
    cycle = dag.find_cycle()
    if cycle:
        raise GraphError(f"node '{cycle[0]}': the graph has a cycle ({' → '.join(cycle)})")
    out = parse_ref({"ref": graph.output})
    if not out or out[0] not in by_id or out[1] not in outputs_of(by_id[out[0]]):
        raise GraphError(f"graph output '{graph.output}' does not name an existing node output")
    return dag


@functools.lru_cache(maxsize=None)
def _adapter(model: type[BaseModel], name: str) -> TypeAdapter:
    field = model.model_fields[name]
    annotation = Annotated[(field.annotation, *field.metadata)] if field.metadata else field.annotation
    if isinstance(field.annotation, type) and issubclass(field.annotation, BaseModel):
        return TypeAdapter(annotation)  # a model input (e.g. a description) brings its own config
    return TypeAdapter(annotation, config={"arbitrary_types_allowed": True})


def _literal_errors(model: type[BaseModel], literals: dict[str, Any]):
    """Validate literal inputs field by field (type and constraints), without the referenced ones."""
    for name, value in literals.items():
        try:
            _adapter(model, name).validate_python(value)
        except ValidationError as err:
            yield name, err.errors()[0]["msg"]
