"""The model manager: load each model once per process, share it, evict under a memory budget.

Every real-model tool asks the manager for what it needs, on every ``run`` call::

    pipe = manager.get("inpaint", model_id, loader, role="inpaint")

- **Once per process.** Entries are keyed by ``(kind, model id, device, dtype)``. Tools, nodes and runs in one
  process share the same object; ``shared_manager()`` hands every profile with the same device/dtype/offload the
  same manager, so two ``Engine``s in one server share weights too. Tools must not keep the returned object
  beyond one call: the manager may evict it.
- **Budget.** After a load, while the estimated size of everything held exceeds ``memory_budget_gb``, the least
  recently used entries are dropped (never the one just asked for). The estimate is the sum of parameter and
  buffer bytes, counting a tensor shared by several entries once (``from_pipe`` pipelines share weights); an
  entry that shares tensors with an evicted one is evicted with it, since its memory would not come back
  otherwise. Eviction deletes (the next ``get`` reloads from disk) and calls ``torch.cuda.empty_cache()`` on CUDA.
- **Offload.** With ``cpu_offload`` on a CUDA device, diffusers pipelines get ``enable_model_cpu_offload``
  instead of ``.to(device)``. Pipelines that share modules (``from_pipe``) would fight over the offload hooks, so
  ``prepare(pipe)`` re-installs the hooks when a different pipeline is about to run; tools call it before each
  pipeline call.
- **Missing weights.** Loaders run with ``local_files_only=True`` (a run never starts a multi-GB download by
  surprise; set ``SCENEWRIGHT_ALLOW_DOWNLOAD=1`` or ``allow_download=True`` to allow it). Any "not found"
  error from huggingface_hub / diffusers / transformers, or a local folder that does not exist, becomes one
  ``ModelNotFound`` line that names the model id and the role.
- **Identity** (``model_identity``) for cache keys, without loading anything: a hub id is ``id@<commit>`` when
  the snapshot is in the local HF cache (else ``id@<revision or "main">``); a local folder is
  ``local:<sha256>`` over every JSON file's relative path + content and every weight file's relative path +
  size. Contents of configs catch architecture/scheduler changes, sizes catch swapped weights cheaply (hashing
  GBs of weights per process start would cost seconds); mtimes are left out so copies of a folder share cache.
- Weights are only ever read as safetensors (``use_safetensors=True``): never unpickled.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import Any

WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".ckpt", ".gguf")


class ModelNotFound(RuntimeError):
    """The weights for a model are not on this machine (or a local folder does not exist)."""


def _dtype(name: str):
    import torch

    return {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}[name]


# --- ids and identity -----------------------------------------------------------------------------------------
def is_local(model_id: str) -> bool:
    """A local folder: it exists, or it is written like a path (absolute, ./, ../, ~, or more than one '/')."""
    if Path(model_id).expanduser().exists():
        return True
    return model_id.startswith(("/", "./", "../", "~")) or model_id.count("/") > 1


def missing_message(model_id: str, role: str) -> str:
    if is_local(model_id):
        return (
            f"model '{model_id}' for role '{role}' is not available locally: the folder does not exist or is "
            f"incomplete (point the profile at a folder written by save_pretrained)"
        )
    return (
        f"model '{model_id}' for role '{role}' is not available locally: download it once with "
        f"`hf download {model_id}` (or point the profile at a local folder)"
    )


_identity_cache: dict[tuple, str] = {}


def folder_hash(path: str | Path) -> str:
    """sha256 over JSON files (relative path + content) and weight files (relative path + size)."""
    root = Path(path).expanduser().resolve()
    h = hashlib.sha256()
    for f in sorted(p for p in root.rglob("*") if p.is_file()):
        rel = f.relative_to(root).as_posix()
        if any(part.startswith(".") for part in f.relative_to(root).parts):
            continue  # .cache, .built markers, editor files
        if f.suffix == ".json" or f.suffix == ".txt":
            h.update(f"{rel}\0".encode() + f.read_bytes() + b"\0")
        elif f.suffix in WEIGHT_SUFFIXES:
            h.update(f"{rel}\0{f.stat().st_size}\0".encode())
    return h.hexdigest()


def model_identity(model_id: str, revision: str | None = None) -> str:
    """A stable string that changes when the model's weights or configuration change; loads nothing."""
    key = (model_id, revision)
    if key in _identity_cache:
        return _identity_cache[key]
    if is_local(model_id):
        ident = f"local:{folder_hash(model_id)[:32]}" if Path(model_id).expanduser().is_dir() else f"missing:{model_id}"
    else:
        ident = f"{model_id}@{revision or 'main'}"
        try:
            from huggingface_hub import snapshot_download

            snap = Path(snapshot_download(model_id, revision=revision, local_files_only=True))
            ident = f"{model_id}@{snap.name}"  # .../snapshots/<commit sha>
        except Exception:  # noqa: BLE001 - not cached (yet): the symbolic revision is the best we know
            pass
    _identity_cache[key] = ident
    return ident


def local_snapshot(model_id: str) -> Path | None:
    """The folder holding ``model_id``'s files if they are on this machine (local folder or HF cache)."""
    if is_local(model_id):
        p = Path(model_id).expanduser()
        return p if p.is_dir() else None
    try:
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(model_id, local_files_only=True))
    except Exception:  # noqa: BLE001
        return None


def scheduler_name(model_id: str) -> str:
    """The scheduler class a diffusers folder declares (for identities), or "" when unknown."""
    snap = local_snapshot(model_id)
    if snap is None:
        return ""
    try:
        index = json.loads((snap / "model_index.json").read_text())
        return str(index.get("scheduler", ["", ""])[1])
    except (OSError, ValueError, IndexError, TypeError):
        return ""


# --- sizes ----------------------------------------------------------------------------------------------------
def _modules(obj: Any):
    """Every torch module inside a pipeline / model / tuple / dict."""
    import torch

    if isinstance(obj, torch.nn.Module):
        yield obj
    elif isinstance(obj, (tuple, list)):
        for o in obj:
            yield from _modules(o)
    elif isinstance(obj, dict):
        for o in obj.values():
            yield from _modules(o)
    elif hasattr(obj, "components") and isinstance(getattr(obj, "components"), dict):  # a DiffusionPipeline
        for o in obj.components.values():
            yield from _modules(o)


def _tensors(obj: Any) -> dict[int, int]:
    """{storage pointer: bytes} of every parameter and buffer (shared tensors once)."""
    out: dict[int, int] = {}
    for m in _modules(obj):
        for t in list(m.parameters()) + list(m.buffers()):
            try:
                ptr = t.untyped_storage().data_ptr()
                out[ptr] = max(out.get(ptr, 0), t.untyped_storage().nbytes())
            except (RuntimeError, NotImplementedError):  # meta tensors, offloaded placeholders
                out[id(t)] = t.numel() * t.element_size()
    return out


def estimate_bytes(obj: Any) -> int:
    return sum(_tensors(obj).values())


# --- the manager ----------------------------------------------------------------------------------------------
class ModelManager:
    def __init__(
        self,
        device: str = "cpu",
        dtype: str = "float32",
        memory_budget_gb: float = 16.0,
        cpu_offload: bool = False,
        *,
        allow_download: bool | None = None,
    ):
        self.device = device
        self.dtype = dtype
        self.memory_budget_gb = memory_budget_gb
        self.cpu_offload = bool(cpu_offload) and device.startswith("cuda")
        if allow_download is None:
            allow_download = os.environ.get("SCENEWRIGHT_ALLOW_DOWNLOAD", "") not in ("", "0", "false", "no")
        self.allow_download = allow_download
        self._entries: OrderedDict[tuple, Any] = OrderedDict()
        self._lock = threading.RLock()
        self._offloaded: int | None = None  # id() of the pipeline whose offload hooks are installed
        self.loads: list[tuple] = []  # every load, in order (tests and logs read it)
        self.evictions: list[tuple] = []

    # what loaders pass to from_pretrained
    @property
    def torch_dtype(self):
        return _dtype(self.dtype)

    @property
    def local_files_only(self) -> bool:
        return not self.allow_download

    def key(self, kind: str, model_id: str) -> tuple:
        return (kind, model_id, self.device, self.dtype)

    def get(self, kind: str, model_id: str, loader: Callable[[str], Any], role: str | None = None) -> Any:
        """The object for (kind, model id), loading it with ``loader(model_id)`` the first time."""
        key = self.key(kind, model_id)
        with self._lock:
            if key in self._entries:
                self._entries.move_to_end(key)
                return self._entries[key]
            if is_local(model_id) and not Path(model_id).expanduser().exists():
                raise ModelNotFound(missing_message(model_id, role or kind))
            try:
                obj = loader(model_id)
            except ModelNotFound:
                raise
            except Exception as err:  # noqa: BLE001 - translate "not found" errors, re-raise the rest
                if _is_missing(err):
                    raise ModelNotFound(missing_message(model_id, role or kind)) from err
                raise
            self._place(obj)
            self._entries[key] = obj
            self.loads.append(key)
            self._enforce_budget(keep=key)
            return obj

    def put(self, kind: str, model_id: str, obj: Any) -> Any:
        """Register an already built object (benchmarks with in-memory random weights, tests)."""
        with self._lock:
            key = self.key(kind, model_id)
            self._place(obj)
            self._entries[key] = obj
            self._enforce_budget(keep=key)
            return obj

    def prepare(self, pipe: Any) -> Any:
        """Call before running a pipeline: with CPU offload, make sure *its* offload hooks are the live ones."""
        if self.cpu_offload and hasattr(pipe, "enable_model_cpu_offload") and self._offloaded != id(pipe):
            pipe.enable_model_cpu_offload(device=self.device)
            self._offloaded = id(pipe)
        return pipe

    def loaded(self) -> list[tuple]:
        with self._lock:
            return list(self._entries)

    def total_bytes(self) -> int:
        with self._lock:
            return estimate_bytes(list(self._entries.values()))

    def evict(self, key: tuple) -> None:
        with self._lock:
            self._drop([key])
            self._empty_cache()

    def free_memory(self, keep_kinds: tuple[str, ...] = ()) -> None:
        """Drop every model except those of ``keep_kinds`` (and what shares weights with them), then empty the
        CUDA cache. Tools call it with their own kind when the executor hits out-of-memory, before it retries
        the batch in halves, so the model about to run again is not reloaded from disk."""
        with self._lock:
            ptrs = {k: set(_tensors(v)) for k, v in self._entries.items()}
            kept = [k for k in self._entries if k[0] in keep_kinds]
            kept_ptrs = set().union(*(ptrs[k] for k in kept)) if kept else set()
            self._drop([k for k in self._entries if k not in kept and not ptrs[k] & kept_ptrs])
            self._empty_cache()

    # --- internals ------------------------------------------------------------------------------------------
    def _place(self, obj: Any) -> None:
        if self.cpu_offload and hasattr(obj, "enable_model_cpu_offload"):
            obj.enable_model_cpu_offload(device=self.device)
            self._offloaded = id(obj)
            return
        if hasattr(obj, "components") and hasattr(obj, "to"):  # a DiffusionPipeline
            obj.to(self.device)
            return
        for m in _modules(obj):
            m.to(self.device)

    def _enforce_budget(self, keep: tuple) -> None:
        budget = self.memory_budget_gb * 2**30
        while len(self._entries) > 1 and estimate_bytes(list(self._entries.values())) > budget:
            ptrs = {k: set(_tensors(v)) for k, v in self._entries.items()}
            # least recently used first; an entry sharing tensors with the one just asked for stays
            victim = next((k for k in self._entries if k != keep and not ptrs[k] & ptrs[keep]), None)
            if victim is None:
                break
            group = [k for k in self._entries if k == victim or (k != keep and ptrs[k] & ptrs[victim])]
            self._drop(group)
        self._empty_cache()

    def _drop(self, keys: list[tuple]) -> None:
        for k in keys:
            obj = self._entries.pop(k, None)
            if obj is not None:
                self.evictions.append(k)
                if id(obj) == self._offloaded:
                    self._offloaded = None
                if self.cpu_offload and hasattr(obj, "remove_all_hooks"):
                    obj.remove_all_hooks()
        import gc

        gc.collect()

    def _empty_cache(self) -> None:
        if self.device.startswith("cuda"):
            import torch

            if torch.cuda.is_available():
                torch.cuda.empty_cache()


def _is_missing(err: BaseException) -> bool:
    """Is this a "weights are not here" error from huggingface_hub / diffusers / transformers?"""
    try:
        from huggingface_hub import errors as hf_errors

        hub = (
            hf_errors.LocalEntryNotFoundError,
            hf_errors.EntryNotFoundError,
            hf_errors.RepositoryNotFoundError,
            hf_errors.RevisionNotFoundError,
            hf_errors.HfHubHTTPError,
            hf_errors.HFValidationError,
        )
    except ImportError:  # pragma: no cover
        hub = ()
    if isinstance(err, hub) or isinstance(err, (OSError, FileNotFoundError)):
        return True
    msg = str(err)
    return isinstance(err, ValueError) and ("not a valid local path" in msg or "valid repo id" in msg)


_shared: dict[tuple, ModelManager] = {}
_shared_lock = threading.Lock()


def shared_manager(
    device: str = "cpu", dtype: str = "float32", memory_budget_gb: float = 16.0, cpu_offload: bool = False
) -> ModelManager:
    """The process-wide manager for this device/dtype/offload; the budget follows the latest caller."""
    with _shared_lock:
        key = (device, dtype, bool(cpu_offload))
        mgr = _shared.get(key)
        if mgr is None:
            mgr = _shared[key] = ModelManager(device, dtype, memory_budget_gb, cpu_offload)
        mgr.memory_budget_gb = memory_budget_gb
        return mgr
