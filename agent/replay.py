"""Regression replay: run a recorded run again and compare every node with the recording.

    from agent.replay import replay
    report = replay("20260101-120000-abc123")        # a run id, a run folder, a suite folder or a suite case
    print(report.ok, report.cases[0].first)           # first diverging node, if any

What a replay does, per case:

1. **Plan** (runs that started from a prompt): the planner runs again with the run's recorded LLM responses
   (``llm.jsonl``); a request that was not recorded is a divergence, never a live LLM call. The new blueprint must
   equal ``blueprint.json``.
2. **Compile** (prompt and blueprint runs): the recipe compiles the blueprint again; the graph must equal
   ``graph.json`` (tool versions aside: those are compared per node, below). Chat-session runs skip this (their
   graphs also depend on the session's scene anchor) and execute ``graph.json`` as recorded.
3. **Execute** ``graph.json`` with the cache bypassed (every node really runs) and compare every node's outputs
   with the recorded ``finished``/``cached`` events:

   - non-image values exactly (floats of non-deterministic tools within ``score_atol``);
   - images of deterministic tools byte-exactly (same sha256), unless the suite sets ``exact_deterministic =
     false``; images of non-deterministic tools (GPU diffusion) within ``psnr_min`` dB and ``ssim_min``
     (and CLIP image-embedding cosine ``clip_min`` when a ``clip_model`` is configured and transformers is
     installed);
   - a tool whose version differs from the recorded one is a divergence at each of its nodes even if the
     outputs agree: the golden case was pinned against the old version (re-pin it with ``suite add``).

The report names the **first diverging node** (in recorded execution order) and marks the divergences that are
only downstream consequences of it. ``to_junit`` and ``to_html`` write CI-friendly reports; the HTML shows recorded
and new images side by side with an amplified difference image.

A **suite** is a folder that can live in a user's repository::

    suite.toml                      [tolerances] psnr_min = 40.0 …
    cases/<name>/                   request.json blueprint.json graph.json env.json events.jsonl llm.jsonl …
    cases/<name>/artifacts/<sha256>.png     every image the run produced, so the suite needs no run store
    cases/<name>/case.toml          optional [tolerances] for this case only

A suite is untrusted input (it may come from anyone's pull request), so loading one is confined: every
``$artifact`` a recording names must be a sha256, read only from the case's ``artifacts/`` (or the local store) and
checked against its pixels; files are regular files inside the case folder (no symlinks out); a ``load_image`` node
may only read a file inside its case folder; the case replays on the *local* profile of the recorded name (or
``--profile``), never on the endpoints, keys or model paths in the suite's ``env.json``; and a node that fails on
replay is a divergence, never a pass.
"""

from __future__ import annotations

import base64
import hashlib
import html
import io
import json
import math
import shutil
import time
import tomllib
import xml.etree.ElementTree as ET
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image as PILImage
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from agent.api import Engine, UserError
from agent.blueprint import BlueprintError, parse_blueprint
from agent.executor import Executor
from agent.run import Run
from agent.graph import Graph, GraphError, LoopNode, ToolNode, validate_graph
from agent.profiles import Profile, ProfileError, get_profile
from agent.store import ArtifactError, Store, artifact_names, canonical_json, image_digest, is_digest, redact
from planners.base import PlanningError
from tools.critique_tools import MAX_IMAGE_PIXELS

RECORD_FILES = (
    "request.json",
    "blueprint.json",
    "graph.json",
    "env.json",
    "events.jsonl",
    "llm.jsonl",
    "status.json",
    "result.json",
)
SUITE_FILE = "suite.toml"
INPUTS_DIR = "inputs"  # files the case's load_image nodes read, named by their sha256


class Tolerances(BaseModel):
    """How close a replay must come to its recording. A suite sets them in ``suite.toml`` under [tolerances]."""

    model_config = ConfigDict(extra="forbid")

    psnr_min: float = Field(40.0, ge=0.0, le=200.0)
    ssim_min: float = Field(0.98, ge=-1.0, le=1.0)
    clip_min: float | None = Field(None, ge=-1.0, le=1.0)
    clip_model: str = ""
    score_atol: float = Field(1e-3, ge=0.0)  # floats of non-deterministic tools (CLIP scores on a GPU)
    exact_deterministic: bool = True


class ReplayMiss(RuntimeError):
    """The planner asked the LLM for something the recording does not hold."""


class _StrictRecorder:
    """Serves recorded LLM responses; an unrecorded request raises instead of calling the LLM."""

    def __init__(self, rows: list[dict]):
        self._rows = {(r["kind"], canonical_json(r["request"])): r["response"] for r in rows}

    def record(self, kind: str, request: dict, response: dict) -> None:
        pass

    def lookup(self, kind: str, request: dict) -> dict:
        try:
            return self._rows[(kind, canonical_json(request))]
        except KeyError:
            raise ReplayMiss(
                f"the planner sent an LLM request ({kind}) that the recording does not hold;"
                " its prompt template, model or sampling settings changed"
            ) from None


@dataclass
class NodeDiff:
    node: str
    tool: str
    reason: str
    field: str = ""
    recorded: Any = None
    new: Any = None
    psnr: float | None = None
    ssim: float | None = None
    clip: float | None = None
    downstream: bool = False  # a consequence of an earlier divergence, not a cause

    def line(self) -> str:
        where = f"node '{self.node}'" + (f" ({self.tool})" if self.tool else "")
        return f"{where}: {self.reason}"


@dataclass
class CaseReport:
    name: str
    source: str
    status: str = "pass"  # pass | fail | error
    diffs: list[NodeDiff] = field(default_factory=list)
    compared: int = 0
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)
    error: str | None = None
    images: dict[str, str] = field(default_factory=dict)  # sha → path, for the HTML report

    @property
    def first(self) -> NodeDiff | None:
        return next((d for d in self.diffs if not d.downstream), self.diffs[0] if self.diffs else None)

    def summary(self) -> str:
        if self.status == "error":
            return f"error: {self.error}"
        if self.status == "pass":
            return f"pass ({self.compared} nodes match)"
        more = len(self.diffs) - 1
        return f"first divergence at {self.first.line()}" + (f" (+{more} more)" if more else "")


@dataclass
class ReplayReport:
    name: str
    cases: list[CaseReport]
    tolerances: Tolerances
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return all(c.status == "pass" for c in self.cases)

    @property
    def exit_code(self) -> int:
        """0 all match, 1 a regression, 2 a case that could not be read (bad input)."""
        if any(c.status == "error" for c in self.cases):
            return 2
        return 0 if self.ok else 1

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "ok": self.ok,
            "exit_code": self.exit_code,
            "seconds": round(self.seconds, 3),
            "tolerances": self.tolerances.model_dump(),
            "cases": [
                {**{k: v for k, v in asdict(c).items() if k != "images"}, "first": asdict(c.first) if c.first else None}
                for c in self.cases
            ],
        }

    def to_junit(self, path: str | Path) -> None:
        suite = ET.Element(
            "testsuite",
            name=f"scenewright.replay.{self.name}",
            tests=str(len(self.cases)),
            failures=str(sum(c.status == "fail" for c in self.cases)),
            errors=str(sum(c.status == "error" for c in self.cases)),
            time=f"{self.seconds:.3f}",
        )
        for c in self.cases:
            case = ET.SubElement(
                suite, "testcase", classname=f"scenewright.replay.{self.name}", name=c.name, time=f"{c.seconds:.3f}"
            )
            if c.status == "fail":
                fail = ET.SubElement(case, "failure", message=c.summary(), type="regression")
                fail.text = "\n".join(("  (downstream) " if d.downstream else "") + d.line() for d in c.diffs)
            elif c.status == "error":
                ET.SubElement(case, "error", message=c.error or "error", type="bad-input")
            if c.notes:
                ET.SubElement(case, "system-out").text = "\n".join(c.notes)
        root = ET.Element("testsuites")
        root.append(suite)
        ET.indent(root)
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_bytes(ET.tostring(root, encoding="utf-8", xml_declaration=True))

    def to_html(self, path: str | Path) -> None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(_html_report(self), encoding="utf-8")


# --- where a recording lives ---------------------------------------------------------------------------------------
@dataclass
class _Case:
    name: str
    dir: Path
    artifacts: Path | None  # a suite case's own artifact folder; None: the store's
    tolerances: Tolerances
    trusted: bool = False  # a run of the local store; anything else (suites, folders) is confined


def _read_tolerances(path: Path, base: Tolerances) -> Tolerances:
    if not path.exists():
        return base
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as err:
        raise UserError(f"{path} is not a readable TOML file: {err}") from None
    try:
        return Tolerances.model_validate({**base.model_dump(), **data.get("tolerances", {})})
    except ValidationError as err:
        e = err.errors()[0]
        raise UserError(f"{path}: tolerances.{'.'.join(map(str, e['loc']))}: {e['msg']}") from None


def resolve_target(
    target: str, store: Store, tolerances: Tolerances | None = None
) -> tuple[str, list[_Case], Tolerances]:
    """A run id, a run or case folder, or a suite folder → the cases to replay."""
    base = tolerances or Tolerances()
    path = Path(target)
    if path.is_dir():
        if (path / SUITE_FILE).exists() or (path / "cases").is_dir():
            tol = _read_tolerances(path / SUITE_FILE, base) if tolerances is None else base
            folder = path / "cases"
            cases = sorted(p for p in folder.iterdir() if p.is_dir()) if folder.is_dir() else []
            for p in cases:
                _confined(p, folder, "suite case")
            if not cases:
                raise UserError(f"suite {path} has no cases; add one with `scenewright suite add RUN --suite {path}`")
            return path.name, [_case(p, tol) for p in cases], tol
        if _is_record(path):
            suite_tol = _read_tolerances(path.parent.parent / SUITE_FILE, base) if tolerances is None else base
            case = _case(path, suite_tol)
            case.trusted = path.resolve().parent == store.runs_dir.resolve()  # a run of this store, by its folder
            return path.name, [case], suite_tol
        raise UserError(f"{path} is neither a run folder (no graph.json) nor a suite (no {SUITE_FILE} or cases/)")
    if path.exists():
        raise UserError(f"{path} is a file; give a run id, a run folder or a suite folder")
    try:
        record = store.open_run(target)
    except FileNotFoundError:
        raise UserError(f"no run or suite '{target}': not a folder, and not a run under {store.runs_dir}") from None
    return target, [_Case(target, record.dir, None, base, trusted=True)], base


def _is_record(path: Path) -> bool:
    """A run record with something to replay: one graph, or a repaint run's round graphs."""
    return (path / "graph.json").exists() or (path / "rounds").is_dir()


def _case(path: Path, tol: Tolerances) -> _Case:
    artifacts = path / "artifacts"
    if artifacts.is_dir():
        _confined(artifacts, path, "artifacts folder")
    return _Case(path.name, path, artifacts if artifacts.is_dir() else None, _read_tolerances(path / "case.toml", tol))


def _confined(path: Path, root: Path, what: str) -> Path:
    """``path`` resolved, which must lie inside ``root`` (resolved): a suite's symlink or ``..`` never leads out."""
    real, top = path.resolve(), root.resolve()
    if real != top and top not in real.parents:
        raise UserError(f"{path}: the {what} leads outside {root} (a symlink or '..'); a suite keeps its files inside")
    return real


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, RecursionError) as err:
        raise UserError(f"{path} is missing or not valid JSON ({type(err).__name__})") from None
    except ValueError as err:  # e.g. an integer of more than 4300 digits
        raise UserError(f"{path} is not valid JSON ({str(err).splitlines()[0][:100]})") from None


def _read_object(path: Path) -> dict:
    value = _read_json(path)
    if not isinstance(value, dict):
        raise UserError(f"{path} must hold a JSON object, not {type(value).__name__}; the record is damaged")
    return value


def _read_jsonl(path: Path) -> list[dict]:
    rows = []
    if path.exists():
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            raise UserError(f"{path} is not UTF-8 text; the record is damaged") from None
        for line in text.splitlines():
            try:
                row = json.loads(line)
            except (json.JSONDecodeError, RecursionError, ValueError):
                continue  # a line cut by a crash
            if isinstance(row, dict):
                rows.append(row)
    return rows


def _recorded_outputs(events: list[dict]) -> tuple[list[str], dict[str, dict], dict[str, str]]:
    order, outputs, tools = [], {}, {}
    for ev in events:
        if ev.get("event") in ("finished", "cached"):
            if "outputs" not in ev:
                raise UserError(
                    f"node '{ev.get('node')}' was recorded without its outputs (an older record);"
                    " record the run again to replay it"
                )
            node, outs = ev.get("node"), ev["outputs"]
            if not isinstance(node, str) or not isinstance(outs, dict):
                raise UserError(f"events.jsonl: a '{ev['event']}' event without a node id or outputs; the record is damaged")
            for sha in artifact_names(outs):
                if not is_digest(sha):
                    raise UserError(
                        f"events.jsonl: node '{node[:80]}' names artifact '{str(sha)[:80]}', which is not a sha256;"
                        " artifacts are named by their hash only"
                    )
            if node not in outputs:
                order.append(node)
            outputs[node] = outs
            tools[node] = str(ev.get("tool", ""))
    return order, outputs, tools


# --- comparing -------------------------------------------------------------------------------------------------
def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return math.inf if mse == 0 else 10 * math.log10(255.0**2 / mse)


def _box_mean(x: np.ndarray, k: int) -> np.ndarray:
    c = np.cumsum(np.cumsum(np.pad(x, ((1, 0), (1, 0))), 0), 1)
    return (c[k:, k:] - c[:-k, k:] - c[k:, :-k] + c[:-k, :-k]) / (k * k)


def ssim(a: np.ndarray, b: np.ndarray, k: int = 7) -> float:
    """Mean SSIM on luma with a k×k uniform window (scikit-image's default constants)."""
    w = np.array([0.299, 0.587, 0.114])
    x, y = a.astype(np.float64) @ w, b.astype(np.float64) @ w
    if min(x.shape) < k:
        return 1.0 if np.array_equal(x, y) else 0.0
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    mx, my = _box_mean(x, k), _box_mean(y, k)
    n = k * k
    vx = (_box_mean(x * x, k) - mx * mx) * n / (n - 1)
    vy = (_box_mean(y * y, k) - my * my) * n / (n - 1)
    cxy = (_box_mean(x * y, k) - mx * my) * n / (n - 1)
    s = ((2 * mx * my + c1) * (2 * cxy + c2)) / ((mx * mx + my * my + c1) * (vx + vy + c2))
    return float(s.mean())


_CLIP: dict[str, Any] = {}


def clip_similarity(a: PILImage.Image, b: PILImage.Image, model: str) -> float | None:
    """Cosine of CLIP image embeddings, or None when transformers or the model is not available (offline)."""
    try:
        if model not in _CLIP:
            import torch  # noqa: F401
            from transformers import CLIPModel, CLIPProcessor

            from tools.models import resolved
            from tools.weights import load_kwargs

            res = resolved(model, "clip")
            _CLIP[model] = (
                CLIPModel.from_pretrained(res.source(), **load_kwargs(res)).eval(),
                CLIPProcessor.from_pretrained(res.source(), local_files_only=True),
            )
        clip, proc = _CLIP[model]
        import torch

        with torch.no_grad():
            out = clip.get_image_features(**proc(images=[a, b], return_tensors="pt"))
        # a tensor in transformers 4; an output object (projected features as pooler_output) in 5
        emb = out if isinstance(out, torch.Tensor) else getattr(out, "image_embeds", None)
        if emb is None:
            emb = out.pooler_output
        emb = torch.nn.functional.normalize(emb, dim=-1)
        return float((emb[0] * emb[1]).sum())
    except Exception:  # noqa: BLE001 - "where available": a missing model is a note, not a failure
        return None


class _Images:
    def __init__(self, store: Store, artifacts: Path | None):
        self.store, self.artifacts = store, artifacts

    def path(self, sha: str) -> Path:
        if not is_digest(sha):
            raise UserError(f"'{str(sha)[:80]}' is not an artifact hash; artifacts are named by their sha256 only")
        if self.artifacts is not None:
            p = self.artifacts / f"{sha}.png"
            if p.is_symlink() or (p.exists() and not p.is_file()):
                raise UserError(f"{p} is not a regular file; a suite keeps its images as plain files")
            if p.exists():
                return p
        return self.store.artifact_path(sha)

    def load(self, sha: str) -> PILImage.Image:
        """The image, checked against its name (pixels hash to it): a suite's image can't be swapped unnoticed."""
        p = self.path(sha)
        if p.parent != self.artifacts:
            try:
                return self.store.get_image(sha)
            except ArtifactError as err:
                raise UserError(f"recorded image {sha[:12]}: {err}") from None
        try:
            with PILImage.open(p) as im:
                if im.width * im.height > MAX_IMAGE_PIXELS:
                    raise UserError(f"{p} is {im.width}x{im.height}, larger than any recorded image can be")
                image = im.convert("RGB")
        except (OSError, SyntaxError, ValueError, PILImage.DecompressionBombError) as err:
            raise UserError(f"recorded image {p} is not a readable PNG ({type(err).__name__})") from None
        if image_digest(image) != sha:
            raise UserError(f"recorded image {p} holds other pixels than its name says; the suite is damaged")
        return image


def _is_image(v: Any) -> bool:
    return isinstance(v, dict) and v.get("kind") == "image" and "$artifact" in v


def _compare_value(
    rec: Any,
    new: Any,
    deterministic: bool,
    tol: Tolerances,
    path: str,
    old_images: _Images,
    new_images: _Images,
    out: list[NodeDiff],
    node: str,
    tool: str,
    case: CaseReport,
) -> None:
    if _is_image(rec) or _is_image(new):
        if not (_is_image(rec) and _is_image(new)):
            out.append(NodeDiff(node, tool, f"output '{path}' was an image and now is not (or the reverse)", path))
            return
        if rec["$artifact"] == new["$artifact"]:
            return
        case.images[rec["$artifact"]] = str(old_images.path(rec["$artifact"]))
        case.images[new["$artifact"]] = str(new_images.path(new["$artifact"]))
        a, b = old_images.load(rec["$artifact"]), new_images.load(new["$artifact"])
        if a.size != b.size:
            out.append(
                NodeDiff(
                    node,
                    tool,
                    f"image '{path}' changed size {a.size} → {b.size}",
                    path,
                    rec["$artifact"],
                    new["$artifact"],
                )
            )
            return
        aa, bb = np.asarray(a), np.asarray(b)
        p, s = psnr(aa, bb), ssim(aa, bb)
        c = clip_similarity(a, b, tol.clip_model) if tol.clip_min is not None and tol.clip_model else None
        reasons = []
        if deterministic and tol.exact_deterministic:
            reasons.append("a deterministic tool's image changed")
        else:
            if p < tol.psnr_min:
                reasons.append(f"PSNR {p:.1f} dB < {tol.psnr_min}")
            if s < tol.ssim_min:
                reasons.append(f"SSIM {s:.4f} < {tol.ssim_min}")
            if c is not None and c < tol.clip_min:
                reasons.append(f"CLIP similarity {c:.4f} < {tol.clip_min}")
        if reasons:
            detail = f"PSNR {p:.1f} dB, SSIM {s:.4f}" + (f", CLIP {c:.4f}" if c is not None else "")
            out.append(
                NodeDiff(
                    node,
                    tool,
                    f"image '{path}' differs: {'; '.join(reasons)} ({detail})",
                    path,
                    rec["$artifact"],
                    new["$artifact"],
                    round(p, 3),
                    round(s, 5),
                    None if c is None else round(c, 5),
                )
            )
        return
    if isinstance(rec, dict) and isinstance(new, dict):
        for k in sorted(set(rec) | set(new)):
            if k not in rec or k not in new:
                out.append(
                    NodeDiff(node, tool, f"output '{path}.{k}' is {'new' if k in new else 'gone'}", f"{path}.{k}")
                )
                continue
            _compare_value(
                rec[k],
                new[k],
                deterministic,
                tol,
                f"{path}.{k}" if path else k,
                old_images,
                new_images,
                out,
                node,
                tool,
                case,
            )
        return
    if isinstance(rec, list) and isinstance(new, list):
        if len(rec) != len(new):
            out.append(NodeDiff(node, tool, f"output '{path}' has {len(new)} items, recorded {len(rec)}", path))
            return
        for i, (r, n) in enumerate(zip(rec, new)):
            _compare_value(r, n, deterministic, tol, f"{path}[{i}]", old_images, new_images, out, node, tool, case)
        return
    if (
        (isinstance(rec, float) or isinstance(new, float))
        and isinstance(rec, (int, float))
        and isinstance(new, (int, float))
    ):
        atol = 0.0 if deterministic else tol.score_atol
        if abs(float(rec) - float(new)) > atol:
            out.append(NodeDiff(node, tool, f"'{path}' is {new!r}, recorded {rec!r}", path, rec, new))
        return
    if rec != new:
        out.append(
            NodeDiff(node, tool, f"'{path}' is {_short(new)}, recorded {_short(rec)}", path, _short(rec), _short(new))
        )


def _short(v: Any) -> str:
    s = json.dumps(v, ensure_ascii=False, sort_keys=True)
    return s if len(s) <= 120 else s[:117] + "..."


def _first_json_difference(a: Any, b: Any, path: str = "") -> str | None:
    if isinstance(a, dict) and isinstance(b, dict):
        for k in sorted(set(a) | set(b)):
            if k not in a or k not in b:
                return f"{path}.{k}".lstrip(".")
            d = _first_json_difference(a[k], b[k], f"{path}.{k}")
            if d:
                return d.lstrip(".")
        return None
    if isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            return f"{path} (length {len(a)} → {len(b)})".lstrip(".")
        for i, (x, y) in enumerate(zip(a, b)):
            d = _first_json_difference(x, y, f"{path}[{i}]")
            if d:
                return d
        return None
    return None if a == b else (path.lstrip(".") or "(value)")


def _strip_versions(graph: dict) -> dict:
    g = json.loads(json.dumps(graph))
    for n in g.get("nodes", []):
        n.pop("version", None)
        for b in n.get("body", []) or []:
            b.pop("version", None)
    return g


def _authored_id(node_id: str, loops: set[str]) -> str:
    for loop in loops:
        if node_id.startswith(loop + ".i"):
            return loop
    return node_id


# --- replaying one case --------------------------------------------------------------------------------------------
def replay_case(case: _Case, store: Store, profile: str | Profile | None = None) -> CaseReport:
    report = CaseReport(name=case.name, source=str(case.dir))
    t0 = time.perf_counter()
    try:
        _replay_case(case, store, profile, report)
    except (UserError, ProfileError, BlueprintError) as err:
        report.status, report.error = "error", str(err)
    except (KeyError, TypeError, AttributeError, ValueError, RecursionError) as err:  # a record of the wrong shape
        where = str(err).strip().splitlines()[0][:160] if str(err).strip() else ""
        report.status = "error"
        report.error = f"{case.dir}: the record is damaged or of another version ({type(err).__name__}: {where})"
    report.seconds = time.perf_counter() - t0
    if report.status != "error":
        report.status = "fail" if report.diffs else "pass"
    return report


def _replay_case(case: _Case, store: Store, profile: str | Profile | None, report: CaseReport) -> None:
    d = case.dir
    rounds = (d / "rounds").is_dir() and not (d / "graph.json").exists()  # a repaint run: one graph per round
    for name in ("events.jsonl",) if rounds else ("graph.json", "events.jsonl"):
        if not (d / name).exists():
            raise UserError(f"{d} has no {name}; it is not a finished run record")
    for name in RECORD_FILES:
        if (d / name).exists() and not case.trusted:
            _confined(d / name, d, name)
    request = _read_object(d / "request.json") if (d / "request.json").exists() else {}
    status = _read_object(d / "status.json").get("status") if (d / "status.json").exists() else "done"
    if status != "done":
        raise UserError(f"run {d.name} did not finish (status '{str(status)[:40]}'); only finished runs can be replayed")
    env = _read_object(d / "env.json") if (d / "env.json").exists() else {}
    prof = _replay_profile(profile, request, env, d, report)
    critique = request.get("critique")  # a --critique run: the ArtAug loop is part of the compiled graph
    engine = Engine(prof, home=store.home, executor="local",  # a Ray run replays here, on this process
                    critique=isinstance(critique, dict),
                    critique_options=critique if isinstance(critique, dict) else None)
    old_images, new_images = _Images(store, case.artifacts), _Images(store, None)
    if rounds:
        _replay_rounds(d, engine, store, case, report, old_images, new_images)
        return
    try:
        graph = Graph.model_validate(_read_json(d / "graph.json"))
    except ValidationError as err:
        raise UserError(f"{d / 'graph.json'} is not a valid graph: {err.errors()[0]['msg']}") from None
    if not case.trusted:
        graph = _confine_inputs(graph, d)
    kind = request.get("kind")

    # 1. plan again, from the recorded LLM responses
    bp_path = d / "blueprint.json"
    recorded_bp = _read_json(bp_path) if bp_path.exists() else None
    bp = None
    if kind == "prompt" and recorded_bp is not None:
        from planners import build_planner

        try:
            planner = build_planner(prof.planner, _StrictRecorder(_read_jsonl(d / "llm.jsonl")))
            bp = planner.plan(request.get("prompt", ""), seed=int(request.get("seed", 0)),
                              canvas=_recorded_canvas(recorded_bp, prof))
        except (ReplayMiss, PlanningError, BlueprintError, NotImplementedError, ImportError) as err:
            report.diffs.append(NodeDiff("<plan>", prof.planner.kind, f"planning failed on replay: {err}"))
        else:
            where = _first_json_difference(recorded_bp, bp.model_dump(mode="json"))
            if where:
                report.diffs.append(NodeDiff("<plan>", prof.planner.kind, f"the blueprint differs at '{where}'", where))
    elif recorded_bp is not None and kind == "blueprint":
        bp = parse_blueprint(recorded_bp, check=False)
    # 2. compile again
    if bp is not None:
        try:
            regions = engine.plan_text_regions(bp, recorder=_StrictRecorder(_read_jsonl(d / "llm.jsonl")))
            fresh = engine.compile(bp, text_regions=regions).model_dump(mode="json")
        except Exception as err:  # noqa: BLE001 - a recipe crash is a regression to report, not a replay crash
            report.diffs.append(NodeDiff("<compile>", "recipe", f"compiling failed on replay: {err}"))
        else:
            old = _strip_versions(graph.model_dump(mode="json"))
            new = _strip_versions(fresh)
            if old != new:
                old_nodes = {n["id"]: n for n in old["nodes"]}
                new_nodes = {n["id"]: n for n in new["nodes"]}
                first = next(
                    (
                        i
                        for i in [n["id"] for n in old["nodes"]] + list(new_nodes)
                        if old_nodes.get(i) != new_nodes.get(i)
                    ),
                    None,
                )
                reason = (
                    f"the recompiled graph differs at node '{first}'"
                    if first
                    else f"the recompiled graph differs at '{_first_json_difference(old, new)}'"
                )
                report.diffs.append(NodeDiff("<compile>", "recipe", reason))
    # 3. execute with the cache bypassed, tools at today's versions, model answers (VLM) from the recording
    recorder = _StrictRecorder(_read_jsonl(d / "llm.jsonl"))  # model answers (VLM) from the recording
    _execute_and_compare(graph, _read_jsonl(d / "events.jsonl"), engine, store, case, report, old_images, new_images,
                         recorder)


def _recorded_canvas(recorded_bp: dict, prof: Profile):
    """The canvas the run was planned on: the recorded blueprint's (an sdxl run is 1024 px), else the profile's."""
    from agent.blueprint import Canvas

    try:
        return Canvas.model_validate(recorded_bp["canvas"])
    except (KeyError, TypeError, ValidationError):
        return Canvas(width=prof.width, height=prof.height)


def _segments(events: list[dict]) -> list[list[dict]]:
    """events.jsonl split at each ``run_started``: one segment per executed graph (a repaint run has one per round)."""
    out: list[list[dict]] = []
    for ev in events:
        if ev.get("event") == "run_started" or not out:
            out.append([])
        out[-1].append(ev)
    return out


def _replay_rounds(d: Path, engine: Engine, store: Store, case: _Case, report: CaseReport,
                   old_images: _Images, new_images: _Images) -> None:
    """A ``repaint`` run: every round's graph (``rounds/r<k>.graph.json``) in order against its own events."""
    graphs = sorted((d / "rounds").glob("r*.graph.json"), key=lambda p: int(p.name[1:].split(".")[0]))
    segments = _segments(_read_jsonl(d / "events.jsonl"))
    if not graphs or len(segments) < len(graphs):
        raise UserError(f"{d} has {len(graphs)} round graphs but {len(segments)} recorded executions; not replayable")
    recorder = _StrictRecorder(_read_jsonl(d / "llm.jsonl"))
    for path, events in zip(graphs, segments):
        try:
            graph = Graph.model_validate(_read_json(path))
        except ValidationError as err:
            raise UserError(f"{path} is not a valid graph: {err.errors()[0]['msg']}") from None
        if not case.trusted:
            graph = _confine_inputs(graph, d)
        before = len(report.diffs)
        _execute_and_compare(graph, events, engine, store, case, report, old_images, new_images, recorder)
        round_name = path.name.split(".")[0]
        for diff in report.diffs[before:]:
            diff.node = f"{round_name}/{diff.node}"


def _execute_and_compare(graph: Graph, events: list[dict], engine: Engine, store: Store, case: _Case,
                         report: CaseReport, old_images: _Images, new_images: _Images, recorder) -> None:
    """Run ``graph`` with the cache bypassed (and never written) and compare each node with ``events``. Tools that
    ask a model through the LLM client (the VLM critic) get ``recorder``: the recorded answers, and a request the
    recording does not hold fails that node (a divergence), never a live call."""
    order, recorded, rec_tools = _recorded_outputs(events)
    registry = engine.registry
    versions: dict[str, tuple[str, str]] = {}

    def current(n: ToolNode) -> ToolNode:
        if n.tool not in registry:
            return n
        now = registry.get(n.tool).version
        if n.version and n.version != now:
            versions[n.tool] = (n.version, now)
            return n.model_copy(update={"version": now})
        return n

    nodes = []
    for n in graph.nodes:
        if isinstance(n, LoopNode):
            nodes.append(n.model_copy(update={"body": [current(b) for b in n.body]}))
        else:
            nodes.append(current(n))
    run_graph = graph.model_copy(update={"nodes": nodes})
    try:
        dag = validate_graph(run_graph, registry)
    except GraphError as err:
        report.diffs.append(NodeDiff("<graph>", "", f"the recorded graph no longer validates: {err}"))
        return
    failures: dict[str, str] = {}

    def on_event(ev: dict) -> None:
        if ev.get("event") == "failed":
            failures[ev["node"]] = ev.get("error", "")

    executor = Executor(registry, _NoCacheWrites(store.home), use_cache=False, keep_going=True, on_event=on_event)
    run = Run(record=None, seed=run_graph.seed, on_event=on_event, keep_going=True, use_cache=False,
              write_cache=False, recorder=recorder)
    try:
        result = executor.run(run_graph, run=run, dag=dag)
    finally:
        executor.close()
    new_outputs = result.outputs
    loops = {n.id for n in graph.nodes if isinstance(n, LoopNode)}
    # 4. compare, in recorded execution order. A deterministic tool is compared byte for byte only while its inputs
    # are the recorded ones: once an upstream non-deterministic node came back different (within its tolerance),
    # everything downstream of it is compared with the same tolerances (float round-off propagates; it is no
    # regression of the deterministic tool).
    diffs: list[NodeDiff] = []
    inexact: set[str] = set()  # authored ids whose outputs were not byte-identical
    for node in order:
        tool = rec_tools.get(node, "")
        if node in failures:
            diffs.append(NodeDiff(node, tool, f"failed on replay: {failures[node]}"))
            continue
        if node not in new_outputs:
            skipped = node in result.skipped or any(node.startswith(s + ".") for s in result.skipped)
            diffs.append(
                NodeDiff(
                    node,
                    tool,
                    "did not run on replay" + (" (upstream failure)" if skipped else " (its loop stopped earlier)"),
                )
            )
            continue
        report.compared += 1
        if tool in versions:
            was, now = versions[tool]
            diffs.append(
                NodeDiff(
                    node, tool, f"tool version changed {was} → {now}; re-pin the case if intended", "version", was, now
                )
            )
        auth = _authored_id(node, loops)
        upstream_moved = auth in dag and bool(inexact & (_ancestors(dag, auth) | {auth}))
        before = len(diffs)
        deterministic = (registry.get(tool).deterministic if tool in registry else True) and not upstream_moved
        _compare_value(
            recorded[node],
            new_outputs[node],
            deterministic,
            case.tolerances,
            "",
            old_images,
            new_images,
            diffs,
            node,
            tool,
            report,
        )
        if len(diffs) == before and canonical_json(recorded[node]) != canonical_json(new_outputs[node]):
            inexact.add(auth)  # moved within tolerance (round-off): what it feeds may move too
    for node in new_outputs:
        if node not in recorded and node not in loops:
            diffs.append(NodeDiff(node, "", "ran on replay but not in the recording (its loop ran longer)"))
    for node, error in failures.items():  # a failure is a divergence even where the recording says nothing
        if node not in recorded:
            diffs.append(NodeDiff(node, "", f"failed on replay: {error}"))
    for node, error in result.failed.items():
        if node not in failures and node not in recorded:
            diffs.append(NodeDiff(node, "", f"failed on replay: {error}"))
    # a diff whose authored node descends from an earlier diverging one is a consequence, not a cause
    seen: set[str] = set()
    for diff in diffs:
        auth = _authored_id(diff.node, loops)
        if auth in dag and any(s in dag and (s == auth or s in _ancestors(dag, auth)) for s in seen if s != auth):
            diff.downstream = True
        if auth in dag:
            seen.add(auth)
    report.diffs += diffs
    for tool, (was, now) in versions.items():
        report.notes.append(f"{tool}: recorded version {was}, now {now}")


def _replay_profile(profile, request: dict, env: dict, d: Path, report: CaseReport) -> Profile:
    """``--profile``, else the *local* profile of the recorded name. The recorded profile in ``env.json`` is only
    compared: its endpoints, keys and model paths are never used (a suite's VLM URL would receive every image)."""
    if isinstance(profile, Profile):
        return profile
    if profile:
        return get_profile(profile)
    recorded = env.get("profile") if isinstance(env.get("profile"), dict) else {}
    name = recorded.get("name") or request.get("profile") or "preview"
    if not isinstance(name, str):
        raise UserError(f"{d / 'request.json'}: the recorded profile name is not a string; the record is damaged")
    try:
        prof = get_profile(name)
    except ProfileError:
        raise UserError(
            f"{d.name} was recorded on profile '{name[:60]}', which this machine does not define; define it in"
            " $SCENEWRIGHT_HOME/profiles.toml (or SCENEWRIGHT_CONFIG), or replay with --profile NAME"
        ) from None
    if recorded.get("models") not in (None, prof.models):
        report.notes.append(f"profile '{name}': the local models differ from the recorded ones; replaying on the local")
    return prof


def _confine_inputs(graph: Graph, case_dir: Path) -> Graph:
    """A recorded graph from outside the store reads files only inside its case folder (``load_image`` paths)."""

    def check(n: ToolNode) -> ToolNode:
        if n.tool != "load_image":
            return n
        raw, sha = n.inputs.get("path"), n.inputs.get("sha256")
        if not isinstance(raw, str):
            return n  # a reference or a bad literal: validation names it
        p = Path(raw) if Path(raw).is_absolute() else case_dir / raw
        if is_digest(sha):  # the copy `suite add` pinned with the case
            pinned = case_dir / INPUTS_DIR / f"{sha}{Path(raw).suffix.lower()[:8]}"
            if pinned.is_file():
                p = pinned
        real = _confined(p, case_dir, f"image that node '{n.id}' (load_image) reads")
        return n.model_copy(update={"inputs": {**n.inputs, "path": str(real)}})

    nodes = []
    for n in graph.nodes:
        if isinstance(n, LoopNode):
            nodes.append(n.model_copy(update={"body": [check(b) for b in n.body]}))
        else:
            nodes.append(check(n))
    return graph.model_copy(update={"nodes": nodes})


class _NoCacheWrites(Store):
    """The store, except that a replay never writes the node cache: a tool changed without a version bump must not
    leave its new outputs where normal runs would pick them up (nor a reverted change its old ones)."""

    def cache_put_many(self, rows) -> None:
        pass


def _ancestors(dag, node: str) -> set[str]:
    return dag.ancestors(node)


# --- the public entry points ----------------------------------------------------------------------------------------
def replay(
    target: str | Path,
    *,
    store: Store | None = None,
    tolerances: Tolerances | None = None,
    profile: str | Profile | None = None,
) -> ReplayReport:
    """Replay a run id, run folder, suite case or suite. Bad input raises UserError; regressions are in the report."""
    store = store or Store()
    t0 = time.perf_counter()
    name, cases, tol = resolve_target(str(target), store, tolerances)
    reports = [replay_case(c, store, profile) for c in cases]
    return ReplayReport(name=name, cases=reports, tolerances=tol, seconds=time.perf_counter() - t0)


def _suite_toml(tol: Tolerances) -> str:
    lines = [
        "# scenewright regression suite: `scenewright replay <this folder>` re-runs every case in cases/",
        "# with its recorded LLM responses and the cache bypassed, and compares every node's outputs.",
        "[tolerances]",
        "# images of non-deterministic tools (GPU diffusion) must stay within these",
        f"psnr_min = {tol.psnr_min}",
        f"ssim_min = {tol.ssim_min}",
        '# clip_min = 0.95                # with clip_model = "openai/clip-vit-base-patch16" (downloaded once)',
        "# floats (scores) of non-deterministic tools may move this much",
        f"score_atol = {tol.score_atol}",
        "# deterministic tools (the preview backend) must reproduce their images byte for byte",
        f"exact_deterministic = {'true' if tol.exact_deterministic else 'false'}",
    ]
    return "\n".join(lines) + "\n"


def suite_add(
    run: str, suite: str | Path, *, store: Store | None = None, name: str | None = None, force: bool = False
) -> Path:
    """Pin a finished run as a golden case: copy its record and every image it produced into the suite."""
    store = store or Store()
    src = Path(run)
    if not (src.is_dir() and _is_record(src)):
        try:
            src = store.open_run(run).dir
        except FileNotFoundError:
            raise UserError(f"no run '{run}' under {store.runs_dir}; `scenewright runs` lists them") from None
    status = _read_json(src / "status.json").get("status") if (src / "status.json").exists() else None
    if status != "done":
        raise UserError(f"run {src.name} is '{status}'; only finished runs can be pinned as golden cases")
    case_name = name or src.name
    if not case_name or "/" in case_name or case_name.startswith(".") or len(case_name) > 100:
        raise UserError(f"'{case_name}' is not a usable case name (no slashes, not starting with '.')")
    suite = Path(suite)
    dest = suite / "cases" / case_name
    if dest.exists():
        if not force:
            raise UserError(f"case {dest} already exists; pass --force to re-pin it")
        shutil.rmtree(dest)
    _, outputs, _ = _recorded_outputs(_read_jsonl(src / "events.jsonl"))
    shas: set[str] = set()

    def collect(v: Any) -> None:
        if _is_image(v):
            shas.add(v["$artifact"])
        elif isinstance(v, dict):
            for x in v.values():
                collect(x)
        elif isinstance(v, list):
            for x in v:
                collect(x)

    collect(outputs)
    tmp = dest.with_name(f".{case_name}.tmp")
    if tmp.exists():
        shutil.rmtree(tmp)
    (tmp / "artifacts").mkdir(parents=True)
    for f in RECORD_FILES:
        if (src / f).exists():
            _copy_redacted(src / f, tmp / f)  # records made before redaction may still hold keys
    if (src / "rounds").is_dir():  # a repaint run: its round graphs, blueprints and descriptions
        shutil.copytree(src / "rounds", tmp / "rounds")
    for sha in sorted(shas):
        try:
            store.copy_artifact(sha, tmp / "artifacts" / f"{sha}.png")  # verified: a suite never pins damage
        except (ArtifactError, ValueError) as err:
            shutil.rmtree(tmp)
            raise UserError(f"image {str(sha)[:12]} of run {src.name} cannot be pinned: {err}") from None
    try:
        _pin_inputs(Graph.model_validate(_read_json(src / "graph.json")), tmp / INPUTS_DIR)
    except (UserError, ValidationError) as err:
        shutil.rmtree(tmp)
        raise UserError(f"run {src.name} cannot be pinned: {err}") from None
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp.rename(dest)
    if not (suite / SUITE_FILE).exists():
        (suite / SUITE_FILE).write_text(_suite_toml(Tolerances()), encoding="utf-8")
    return dest


def _copy_redacted(src: Path, dest: Path) -> None:
    """Copy a JSON or JSONL record with its secrets redacted (a suite is meant to be committed)."""
    text = src.read_text(encoding="utf-8", errors="replace")
    if src.suffix == ".jsonl":
        lines = []
        for line in text.splitlines():
            try:
                lines.append(json.dumps(redact(json.loads(line)), sort_keys=True, ensure_ascii=False))
            except (json.JSONDecodeError, RecursionError, ValueError):
                continue  # a line cut by a crash
        dest.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
        return
    try:
        value = json.loads(text)
    except (json.JSONDecodeError, RecursionError, ValueError):
        raise UserError(f"{src} is not valid JSON; the run record is damaged") from None
    dest.write_text(json.dumps(redact(value), indent=2, sort_keys=True, ensure_ascii=False) + "\n", encoding="utf-8")


def _pin_inputs(graph: Graph, folder: Path) -> None:
    """Copy the files the graph's load_image nodes read into the case (named by their sha256, content checked), so
    the suite replays on another machine and never needs to read outside its folder."""
    for n in graph.nodes:
        for b in n.body if isinstance(n, LoopNode) else [n]:
            if b.tool != "load_image" or not isinstance(b.inputs.get("path"), str):
                continue
            src, sha = Path(b.inputs["path"]), b.inputs.get("sha256")
            if not is_digest(sha):
                raise UserError(f"node '{b.id}' (load_image) has no sha256 of its file")
            if not src.is_file():
                raise UserError(f"node '{b.id}' reads {src}, which is no longer a file")
            data = src.read_bytes()
            if hashlib.sha256(data).hexdigest() != sha:
                raise UserError(f"node '{b.id}' reads {src}, which changed since the run (its sha256 differs)")
            folder.mkdir(parents=True, exist_ok=True)
            (folder / f"{sha}{src.suffix.lower()[:8]}").write_bytes(data)


# --- HTML ----------------------------------------------------------------------------------------------------------
def _thumb(path: str | None, size: int = 256) -> str:
    if not path or not Path(path).exists():
        return ""
    with PILImage.open(path) as im:
        im = im.convert("RGB")
        im.thumbnail((size, size))
        buf = io.BytesIO()
        im.save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def _diff_thumb(a: str | None, b: str | None, size: int = 256) -> str:
    if not a or not b or not Path(a).exists() or not Path(b).exists():
        return ""
    with PILImage.open(a) as x, PILImage.open(b) as y:
        if x.size != y.size:
            return ""
        d = np.abs(np.asarray(x.convert("RGB"), np.int16) - np.asarray(y.convert("RGB"), np.int16)).max(axis=2)
    img = PILImage.fromarray(np.clip(d.astype(np.float32) * 8, 0, 255).astype(np.uint8), "L")
    img.thumbnail((size, size))
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def _html_report(report: ReplayReport) -> str:
    e = html.escape
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'><title>scenewright replay: " + e(report.name) + "</title>",
        "<style>body{font:14px system-ui,sans-serif;margin:2em;color:#222}h2{margin-top:2em}"
        ".pass{color:#17803d}.fail{color:#b42318}.error{color:#b54708}table{border-collapse:collapse}"
        "td,th{border:1px solid #ddd;padding:4px 8px;text-align:left;vertical-align:top}"
        ".imgs{display:flex;gap:12px}.imgs figure{margin:0}.imgs img{border:1px solid #ccc;image-rendering:pixelated}"
        ".down{color:#777}</style></head><body>",
        f"<h1>Replay {e(report.name)}: <span class='{'pass' if report.ok else 'fail'}'>"
        f"{'all match' if report.ok else 'regressions'}</span></h1>",
        f"<p>{len(report.cases)} case(s), {report.seconds:.2f}s. "
        f"Tolerances: {e(json.dumps(report.tolerances.model_dump()))}</p>",
    ]
    for c in report.cases:
        parts.append(f"<h2>{e(c.name)} — <span class='{c.status}'>{e(c.status)}</span></h2>")
        parts.append(f"<p>{e(c.summary())}<br><small>{e(c.source)}</small></p>")
        for n in c.notes:
            parts.append(f"<p><small>{e(n)}</small></p>")
        if c.diffs:
            parts.append("<table><tr><th>node</th><th>tool</th><th>what</th></tr>")
            for d in c.diffs:
                cls = " class='down'" if d.downstream else ""
                tag = " (downstream)" if d.downstream else (" <b>first</b>" if d is c.first else "")
                parts.append(f"<tr{cls}><td>{e(d.node)}{tag}</td><td>{e(d.tool)}</td><td>{e(d.reason)}</td></tr>")
            parts.append("</table>")
        for d in c.diffs:
            if isinstance(d.recorded, str) and isinstance(d.new, str) and d.recorded in c.images and d.new in c.images:
                a, b = c.images[d.recorded], c.images[d.new]
                parts.append(
                    f"<h3>{e(d.node)} · {e(d.field or 'image')}</h3><div class='imgs'>"
                    f"<figure><img src='{_thumb(a)}' alt='recorded'><figcaption>recorded</figcaption></figure>"
                    f"<figure><img src='{_thumb(b)}' alt='new'><figcaption>new</figcaption></figure>"
                    f"<figure><img src='{_diff_thumb(a, b)}' alt='difference'><figcaption>difference ×8"
                    f"</figcaption></figure></div>"
                )
        if c.error:
            parts.append(f"<pre>{e(c.error)}</pre>")
    parts.append("</body></html>")
    return "\n".join(parts)
