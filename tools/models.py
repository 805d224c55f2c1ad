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
- **Which files.** Every loader resolves its model id first (``tools/weights.py``: the HF cache's snapshot or a
  local folder, plain safetensors → fp16-variant safetensors → a converted copy) and passes ``from_pretrained``
  that folder with ``load_kwargs`` (``use_safetensors=True``, ``local_files_only=True``, the variant). A run never
  downloads: ``scenewright models pull`` does, once. A model that is not on this machine, or ships only pickles,
  fails with one ``ModelNotFound`` line that names the model id, the role and the command that fixes it.
- **Identity** (``model_identity``) for cache keys, without loading anything: a hub id is ``id@<commit>`` of the
  snapshot it resolves to (plus the variant, and "converted"); a local folder is ``local:<sha256>`` over its
  configs and a fingerprint of each weight file (size, header and sampled bytes; ``weights.folder_hash``).
- Weights are only ever read as safetensors (``use_safetensors=True``): never unpickled.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from tools.weights import Resolution, read_model_index, resolve

class ModelNotFound(RuntimeError):
    """The weights for a model are not on this machine, or not loadable safely; the message says what to run."""


def _dtype(name: str):
    import torch

    return {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}[name]


# --- ids and identity -----------------------------------------------------------------------------------------
def resolved(model_id: str, role: str) -> Resolution:
    """The model's files on this machine, ready for ``from_pretrained``; ``ModelNotFound`` (one line) otherwise."""
    return resolve(model_id).require(role)


def model_identity(model_id: str) -> str:
    """A stable string that changes when the model's weights or configuration change; loads nothing. Resolved
    again on every call (a listing of one snapshot folder): a ``models pull`` or ``convert`` in another process
    must change the identity of later runs in a long-lived server."""
    return resolve(model_id).identity()


def scheduler_name(model_id: str) -> str:
    """The scheduler class a diffusers folder declares (for identities), or "" when unknown."""
    res = resolve(model_id)
    index = read_model_index(res.folder) if res.folder else None
    try:
        return str((index or {}).get("scheduler", ["", ""])[1])
    except (IndexError, TypeError):
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
    ):
        self.device = device
        self.dtype = dtype
        self.memory_budget_gb = memory_budget_gb
        self.cpu_offload = bool(cpu_offload) and device.startswith("cuda")
        self._entries: OrderedDict[tuple, Any] = OrderedDict()
        self._lock = threading.RLock()
        self._offloaded: int | None = None  # id() of the pipeline whose offload hooks are installed
        self.loads: list[tuple] = []  # every load, in order (tests and logs read it)
        self.evictions: list[tuple] = []

    # what loaders pass to from_pretrained
    @property
    def torch_dtype(self):
        return _dtype(self.dtype)

    def key(self, kind: str, model_id: str) -> tuple:
        return (kind, model_id, self.device, self.dtype)

    def get(self, kind: str, model_id: str, loader: Callable[[str], Any], role: str | None = None) -> Any:
        """The object for (kind, model id), loading it with ``loader(model_id)`` the first time."""
        key = self.key(kind, model_id)
        with self._lock:
            if key in self._entries:
                self._entries.move_to_end(key)
                return self._entries[key]
            _quiet_libraries()
            try:
                obj = loader(model_id)
            except ModelNotFound:
                raise
            except Exception as err:  # noqa: BLE001 - translate "not found" errors, re-raise the rest
                if _is_missing(err):
                    first = str(err).strip().splitlines()[0][:300] if str(err).strip() else type(err).__name__
                    raise ModelNotFound(
                        f"model '{model_id}' for role '{role or kind}' could not be loaded from its files: {first}"
                    ) from err
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


_quieted = False


def _quiet_libraries() -> None:
    """diffusers' and transformers' per-load progress bars and dtype advice would scroll past our own progress
    bar on every model load; errors still come through (as our one-line ModelNotFound, or the node's error)."""
    global _quieted
    if _quieted:
        return
    _quieted = True
    for name in ("diffusers", "transformers"):
        try:
            lib = __import__(f"{name}.utils.logging", fromlist=["logging"])
        except ImportError:
            continue
        lib.set_verbosity_error()
        lib.disable_progress_bar()


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
