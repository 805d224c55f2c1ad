"""Where a model's weights really are, and how to load them without unpickling anything.

Every loader asks ``resolve(spec)`` first and hands ``from_pretrained`` the folder and the keyword arguments it
returns (``load_kwargs``), so what is loaded is decided in one place and always from this machine:

1. **Find the files.** A profile names a model as ``org/name``, ``org/name@<revision>`` (a branch, tag, PR ref
   such as ``refs/pr/2``, or a commit sha: the pin that keeps a Hub change from changing results silently), a
   local folder, or, for single-file weights, ``<repo or folder>::<path/in/repo.safetensors>`` (IP-Adapter,
   aesthetic head). Hub ids are looked up in the Hugging Face cache (``HF_HUB_CACHE``:
   ``models--org--name/refs/<revision>`` → ``snapshots/<commit>/``) directly: a run never asks the Hub
   anything. ``scenewright models pull`` is the one command that downloads (``pull``), and it downloads exactly
   the files listed in ``needed``.
2. **Choose the weights**, per component folder (``unet/``, ``vae/``, ``text_encoder/`` … of a diffusers
   pipeline; the root of a transformers model): plain safetensors → the ``fp16`` variant's safetensors (what
   ``stable-diffusion-inpainting`` ships) → a copy converted by ``scenewright models convert`` → otherwise
   refuse with one line naming the repo, what it ships and the command that fixes it. A pinned revision that
   holds safetensors (GLIGEN's ``refs/pr/2``) is the profile's job: the built-in profiles pin one.
   diffusers applies ``variant`` to the whole call and, per component, loads the variant's files where they
   exist and the plain ones elsewhere (``variant_compatible_siblings``); the choice here mirrors that rule, so
   what we check is what diffusers loads.
3. **Never unpickle.** ``.bin``/``.pt``/``.pth``/``.ckpt`` files are only ever read by ``convert``, with
   ``torch.load(weights_only=True)`` (tensors only, no code), and written back as safetensors next to the HF
   cache (``<HF_HOME>/scenewright-converted/``); loaders always pass ``use_safetensors=True``.

The resolved commit (and the variant, and "converted") is the model's **identity**, part of every cache key
and of ``env.json``. A local folder's identity hashes its configs and, per weight file, the size, the
safetensors header and a sample of bytes: a fine-tune saved over a folder with the same shapes gets a new
identity.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path

PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt")
WEIGHT_SUFFIXES = (".safetensors",) + PICKLE_SUFFIXES
# diffusers' and transformers' weight file names: stem, optional shard, optional variant (either order), ext
WEIGHT_FILE = re.compile(
    r"^(?P<stem>diffusion_pytorch_model|pytorch_model|model)"
    r"(?:-\d{5}-of-\d{5})?(?:\.(?P<variant>[A-Za-z0-9_]+))?(?:-\d{5}-of-\d{5})?"
    r"\.(?P<ext>safetensors|bin)$"
)
INDEX_FILE = re.compile(r"^(?:diffusion_pytorch_model|pytorch_model|model)\.(?:safetensors|bin)\.index(?:\.(\w+))?\.json$")
# files a loader never needs: model cards, pictures, other frameworks' weights, code (we never trust remote code)
SKIP_SUFFIXES = (".md", ".jpg", ".jpeg", ".png", ".gif", ".webp", ".msgpack", ".h5", ".onnx", ".onnx_data", ".pb",
                 ".py", ".gitattributes", ".ot", ".mlmodel")
SKIP_COMPONENTS = ("safety_checker",)  # loaded with safety_checker=None: never needed, 1.2 GB saved
VARIANT = "fp16"
CONVERTED_MARK = ".scenewright-converted.json"


class WeightsError(RuntimeError):
    """The weights are not usable as they are; the message is one line that says what to run."""


# --- naming a model ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ModelSpec:
    repo: str  # a hub id or a local path
    revision: str | None = None
    file: str | None = None  # single-file weights inside the repo or folder

    @property
    def local(self) -> bool:
        return self.revision is None and is_local(self.repo)

    def __str__(self) -> str:
        return self.repo + (f"@{self.revision}" if self.revision else "") + (f"::{self.file}" if self.file else "")


def is_local(model_id: str) -> bool:
    """A local folder or file: it exists, or it is written like a path (absolute, ./, ../, ~, or more than one '/')."""
    if Path(model_id).expanduser().exists():
        return True
    return model_id.startswith(("/", "./", "../", "~")) or model_id.count("/") > 1


HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


def parse_spec(text: str) -> ModelSpec:
    """``org/name@rev::sub/file.safetensors`` → ModelSpec. An existing path is never split at '@'; a revision
    may itself hold slashes (``refs/pr/2``)."""
    base, _, file = text.partition("::")
    if "@" in base and not Path(base).expanduser().exists():
        repo, _, rev = base.partition("@")
        if HUB_ID.match(repo) and rev:
            return ModelSpec(repo, rev, file or None)
    return ModelSpec(base, None, file or None)


# --- where the files are ----------------------------------------------------------------------------------------
def hub_cache() -> Path:
    """The Hugging Face cache, read from the environment at call time (huggingface_hub reads it at import)."""
    for var in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE"):
        if os.environ.get(var):
            return Path(os.environ[var]).expanduser()
    home = os.environ.get("HF_HOME") or os.path.join(os.environ.get("XDG_CACHE_HOME", "~/.cache"), "huggingface")
    return Path(home).expanduser() / "hub"


def repo_folder(repo: str) -> Path:
    return hub_cache() / ("models--" + repo.replace("/", "--"))


def converted_root() -> Path:
    return Path(os.environ.get("SCENEWRIGHT_CONVERTED") or hub_cache().parent / "scenewright-converted").expanduser()


def converted_dir(repo: str, commit: str) -> Path:
    return converted_root() / ("models--" + repo.replace("/", "--")) / commit


def cached_snapshot(repo: str, revision: str | None) -> tuple[str, Path] | None:
    """(commit, snapshot folder) of ``repo@revision`` in the HF cache, or None. Reads ``refs/`` itself: a partial
    snapshot (only the files ``pull`` fetched) is what we want, where huggingface_hub would call it incomplete."""
    folder = repo_folder(repo)
    rev = revision or "main"
    commit = rev if re.fullmatch(r"[0-9a-f]{40}", rev) else None
    if commit is None:
        ref = folder / "refs" / rev
        if not ref.is_file():
            return None
        commit = ref.read_text().strip()
    snap = folder / "snapshots" / commit
    return (commit, snap) if snap.is_dir() else None


def list_files(root: Path) -> dict[str, int]:
    """{relative posix path: size} of the regular files under ``root`` (links followed; hidden files left out)."""
    out: dict[str, int] = {}
    for p in sorted(root.rglob("*")):
        rel = p.relative_to(root)
        if any(part.startswith(".") for part in rel.parts):
            continue
        try:
            if p.is_file():
                out[rel.as_posix()] = p.stat().st_size
        except OSError:  # a dangling link into blobs/: the file is not really there
            continue
    return out


# --- choosing the weights ---------------------------------------------------------------------------------------
@dataclass
class Plan:
    """What loading ``spec`` needs from a file listing (local or remote)."""

    needed: list[str] = field(default_factory=list)  # every file a load reads
    weights: list[str] = field(default_factory=list)  # the weight files among them
    variant: str | None = None
    pickled: list[str] = field(default_factory=list)  # components (folders) that ship only pickles
    problem: str = ""  # why the listing cannot be loaded (besides pickles)


def _weight_groups(names: list[str]) -> tuple[list[str], dict[str, list[str]], list[str]]:
    """Split one folder's weight files: (plain safetensors, {variant: safetensors}, every other weight file)."""
    plain, variants, other = [], {}, []
    for n in names:
        m = WEIGHT_FILE.match(n)
        if m and m["ext"] == "safetensors":
            (plain if m["variant"] is None else variants.setdefault(m["variant"], [])).append(n)
        elif m:
            other.append(n)
    return plain, variants, other


def _folder_files(files: dict[str, int], folder: str) -> list[str]:
    prefix = f"{folder}/" if folder else ""
    return [f[len(prefix):] for f in files if f.startswith(prefix) and "/" not in f[len(prefix):]]


def _support_files(names: list[str]) -> list[str]:
    """Configs, tokenizer and processor files: everything small that is not a weight file, a card or code."""
    return [n for n in names if not n.endswith(WEIGHT_SUFFIXES) and not n.lower().endswith(SKIP_SUFFIXES)
            and n not in ("LICENSE", "LICENSE.txt")]


def _pickles(names: list[str]) -> list[str]:
    """The plain (non-variant) pickled weights of a folder and their index: what ``convert`` reads."""
    return [n for n in names if ((m := WEIGHT_FILE.match(n)) and m["ext"] == "bin" and m["variant"] is None)
            or ((m := INDEX_FILE.match(n)) and m.group(1) is None and ".bin." in n)]


def _choose(names: list[str], variant: str | None) -> list[str] | None:
    """diffusers' per-component rule: the variant's files where any exist, the plain ones otherwise; None when the
    chosen files hold no safetensors (only pickles)."""
    plain, variants, other = _weight_groups(names)
    if variant is not None:
        any_variant = [n for n in names if (m := WEIGHT_FILE.match(n)) and m["variant"] == variant]
        if any_variant:
            st = variants.get(variant, [])
            return st + [n for n in names if (m := INDEX_FILE.match(n)) and m.group(1) == variant] if st else None
    if plain:
        return plain + [n for n in names if (m := INDEX_FILE.match(n)) and m.group(1) is None and "safetensors" in n]
    return None


def pipeline_components(model_index: dict) -> list[str]:
    """The component folders a diffusers ``model_index.json`` names (``[library, class]`` entries that are set)."""
    return sorted(k for k, v in model_index.items() if not k.startswith("_") and isinstance(v, list) and len(v) == 2
                  and v[0] and v[1] and k not in SKIP_COMPONENTS)


def plan_files(files: dict[str, int], spec: ModelSpec, model_index: dict | None = None) -> Plan:
    """What to load from ``files`` (a repo listing or a folder's): see the module docstring for the order.
    ``model_index`` is the pipeline's ``model_index.json`` when there is one: only the components it names count
    (SDXL's repo also holds ``vae_1_0/``, ONNX and OpenVINO folders that a pipeline never reads)."""
    plan = Plan()
    if spec.file:  # single-file weights, plus the IP-Adapter's image encoder beside them
        if spec.file not in files:
            plan.problem = f"it has no file {spec.file}"
            plan.needed = [spec.file]
            return plan
        if spec.file.endswith(PICKLE_SUFFIXES):
            plan.pickled = [spec.file]
        plan.needed, plan.weights = [spec.file], [spec.file]
        sub = spec.file.rpartition("/")[0]
        encoder = f"{sub}/image_encoder" if sub else "image_encoder"
        if any(f.startswith(encoder + "/") for f in files):
            enc = plan_files({f[len(encoder) + 1:]: s for f, s in files.items() if f.startswith(encoder + "/")},
                             ModelSpec(spec.repo))
            plan.needed += [f"{encoder}/{f}" for f in enc.needed]
            plan.weights += [f"{encoder}/{f}" for f in enc.weights]
            plan.pickled += [encoder] if enc.pickled else []
            plan.variant, plan.problem = enc.variant, enc.problem
        return plan

    if "model_index.json" in files:  # a diffusers pipeline: one variant decision for the whole call
        plan.needed.append("model_index.json")
        folders = {f.split("/")[0] for f in files if f.count("/") == 1}
        comps = [c for c in pipeline_components(model_index) if c in folders] if model_index is not None else \
            sorted(folders - set(SKIP_COMPONENTS))
        weighted = [c for c in comps if any(_weight_groups(_folder_files(files, c)))]
        chosen = {c: _choose(_folder_files(files, c), None) for c in weighted}
        if any(v is None for v in chosen.values()):
            with_variant = {c: _choose(_folder_files(files, c), VARIANT) for c in weighted}
            if sum(v is None for v in with_variant.values()) < sum(v is None for v in chosen.values()):
                chosen, plan.variant = with_variant, VARIANT
        plan.pickled = [c for c, v in chosen.items() if v is None]
        for c in comps:
            names = _folder_files(files, c)
            plan.needed += [f"{c}/{n}" for n in _support_files(names)]
            picked = chosen.get(c) or (_pickles(names) if c in plan.pickled else [])
            plan.needed += [f"{c}/{n}" for n in picked]
            plan.weights += [f"{c}/{n}" for n in picked if n.endswith(".safetensors")]
        return plan

    names = _folder_files(files, "")  # a transformers model (or any folder with weights at its root)
    plan.needed = _support_files(names)
    picked = _choose(names, None)
    if picked is None:
        with_variant = _choose(names, VARIANT)
        if with_variant is not None:
            picked, plan.variant = with_variant, VARIANT
    if picked is None:
        if _pickles(names):
            plan.pickled = ["(root)"]
            plan.needed += _pickles(names)
        else:
            plan.problem = "it has no model weights (no model.safetensors or diffusion_pytorch_model.safetensors)"
    else:
        plan.needed += picked
        plan.weights = [n for n in picked if n.endswith(".safetensors")]
    return plan


# --- the answer for one model ------------------------------------------------------------------------------------
@dataclass
class Resolution:
    spec: ModelSpec
    status: str  # "ok" | "missing" | "needs-conversion" | "unusable"
    folder: Path | None = None  # what from_pretrained gets
    commit: str | None = None
    plan: Plan = field(default_factory=Plan)
    missing: list[str] = field(default_factory=list)
    size: int = 0  # bytes of the needed files on this machine
    converted: bool = False

    @property
    def file(self) -> str | None:
        """The single weights file inside ``folder`` (its safetensors name in a converted copy)."""
        if self.spec.file and self.converted and self.spec.file.endswith(PICKLE_SUFFIXES):
            return _safetensors_name(self.spec.file)
        return self.spec.file

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    @property
    def variant(self) -> str | None:
        return self.plan.variant

    def identity(self) -> str:
        if self.spec.local:
            if self.folder is None:
                return f"missing:{self.spec}"
            if self.file:
                f = self.folder / self.file
                return f"local:{_weight_fingerprint(f).hex()[:32]}" if f.is_file() else f"missing:{self.spec}"
            return f"local:{folder_hash(self.folder)[:32]}"
        ident = f"{self.spec.repo}@{self.commit or self.spec.revision or 'main'}"
        if self.spec.file:
            ident += f"::{self.spec.file}"
        return ident + (f"+{self.variant}" if self.variant else "") + ("+converted" if self.converted else "")

    def source(self) -> str:
        """The path loaders pass on: the folder, or the single file inside it."""
        assert self.folder is not None
        return str(self.folder / self.file) if self.file else str(self.folder)

    def message(self, role: str) -> str:
        """One line: what is wrong and the command that fixes it."""
        name = str(self.spec)
        if self.status == "missing":
            if self.spec.local:
                return (f"model '{name}' for role '{role}' is not on this machine: {self.spec.repo} does not exist"
                        " or is incomplete (point the profile at a folder written by save_pretrained)")
            what = f"{len(self.missing)} of its files are missing" if self.folder else "it is not downloaded"
            return f"model '{name}' for role '{role}' is not on this machine ({what}); run `scenewright models pull`"
        if self.status == "needs-conversion":
            ships = ", ".join(self.plan.pickled)
            if self.spec.local:
                return (f"model '{name}' for role '{role}' has only pickled weights ({ships}); scenewright never "
                        "unpickles: re-save it with save_pretrained(safe_serialization=True)")
            return (f"model '{name}' for role '{role}' ships {ships} only as pickled .bin files, which scenewright "
                    f"never unpickles; pin a revision with safetensors in the profile, or convert once with "
                    f"`scenewright models convert {self.spec.repo}" + (f"@{self.spec.revision}`" if self.spec.revision else "`"))
        if self.status == "unusable":
            return f"model '{name}' for role '{role}' cannot be loaded: {self.plan.problem}"
        return f"model '{name}' for role '{role}' is ready"

    def require(self, role: str) -> Resolution:
        if not self.ok:
            from tools.models import ModelNotFound

            raise ModelNotFound(self.message(role))
        return self


def resolve(spec: str | ModelSpec) -> Resolution:
    """Where ``spec``'s weights are on this machine and how to load them (loads nothing, reads file listings)."""
    spec = parse_spec(spec) if isinstance(spec, str) else spec
    if spec.local:
        root = Path(spec.repo).expanduser()
        if root.is_file() and not spec.file:  # a bare weights file (an aesthetic head, a LoRA)
            root, spec = root.parent, ModelSpec(str(root.parent), None, root.name)
        if not root.is_dir():
            return Resolution(spec, "missing", missing=[spec.file or spec.repo])
        return _finish(Resolution(spec, "ok", folder=root.resolve()), list_files(root))
    found = cached_snapshot(spec.repo, spec.revision)
    if found is None:
        return Resolution(spec, "missing")
    commit, snap = found
    res = Resolution(spec, "ok", folder=snap, commit=commit)
    files = list_files(snap)
    plan = plan_files(files, spec, read_model_index(snap))
    conv = converted_dir(spec.repo, commit)
    if plan.pickled and (conv / CONVERTED_MARK).is_file():
        res.folder, res.converted = conv, True
        files = list_files(conv)
    return _finish(res, files)


def _finish(res: Resolution, files: dict[str, int]) -> Resolution:
    res.plan = plan_files(files, ModelSpec(res.spec.repo, res.spec.revision, res.file), read_model_index(res.folder))
    res.missing = [f for f in res.plan.needed if f not in files]
    res.size = sum(files.get(f, 0) for f in res.plan.needed)
    if res.missing:
        res.status = "missing"
    elif res.plan.problem:
        res.status = "unusable"
    elif res.plan.pickled:
        res.status = "needs-conversion"
    return res


def read_model_index(folder: Path | None) -> dict | None:
    try:
        data = json.loads((folder / "model_index.json").read_text()) if folder is not None else None
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def load_kwargs(res: Resolution) -> dict:
    """What every ``from_pretrained`` of a resolved model gets: never a pickle, never the network."""
    kw: dict = {"use_safetensors": True, "local_files_only": True}
    if res.variant:
        kw["variant"] = res.variant
    return kw


# --- identity of local folders ------------------------------------------------------------------------------------
_SAMPLE = 1 << 16


def _weight_fingerprint(path: Path) -> bytes:
    """Size, safetensors header (names, dtypes, shapes, offsets) and 64 KiB from the start, middle and end: cheap
    on multi-GB files, and changed by any fine-tune that is saved over the same shapes."""
    size = path.stat().st_size
    h = hashlib.sha256(str(size).encode())
    with path.open("rb") as f:
        for offset in sorted({0, max(0, size // 2 - _SAMPLE // 2), max(0, size - _SAMPLE)}):
            f.seek(offset)
            h.update(f.read(_SAMPLE))
    return h.digest()


def folder_hash(path: str | Path) -> str:
    """sha256 over config/tokenizer files (path + content) and weight files (path + fingerprint)."""
    root = Path(path).expanduser().resolve()
    h = hashlib.sha256()
    for rel in list_files(root):
        f = root / rel
        if f.suffix in (".json", ".txt"):
            h.update(f"{rel}\0".encode() + f.read_bytes() + b"\0")
        elif f.suffix in WEIGHT_SUFFIXES:
            h.update(f"{rel}\0".encode() + _weight_fingerprint(f) + b"\0")
    return h.hexdigest()


# --- the two commands that write: pull and convert ------------------------------------------------------------------
def remote_listing(spec: ModelSpec) -> tuple[str, dict[str, int]]:
    """(commit, {path: size}) of ``spec`` on the Hub (network)."""
    from huggingface_hub import HfApi

    api = HfApi()
    info = api.model_info(spec.repo, revision=spec.revision)
    entries = api.list_repo_tree(spec.repo, revision=info.sha, recursive=True)
    return info.sha, {e.path: int(getattr(e, "size", 0) or 0) for e in entries if hasattr(e, "size")}


def pull(spec: ModelSpec, files: list[str], commit: str) -> Path:
    """Download exactly ``files`` of ``spec`` at ``commit`` into the HF cache (huggingface_hub shows progress) and
    point ``refs/<revision>`` at the commit so offline lookups find it."""
    from huggingface_hub import snapshot_download

    path = Path(snapshot_download(spec.repo, revision=commit, allow_patterns=files, cache_dir=str(hub_cache())))
    ref = repo_folder(spec.repo) / "refs" / (spec.revision or "main")
    if not re.fullmatch(r"[0-9a-f]{40}", spec.revision or ""):
        ref.parent.mkdir(parents=True, exist_ok=True)
        ref.write_text(commit)
    return path


def convert(spec: str | ModelSpec) -> Path:
    """Write a safetensors copy of a cached pickled-only snapshot (``torch.load(weights_only=True)``: tensors only)
    and return its folder. Configs are copied; components that already have safetensors are linked."""
    import torch
    from safetensors.torch import save_file

    spec = parse_spec(spec) if isinstance(spec, str) else spec
    if spec.local:
        raise WeightsError(f"{spec.repo} is a local folder; re-save it with save_pretrained(safe_serialization=True)")
    found = cached_snapshot(spec.repo, spec.revision)
    if found is None:
        raise WeightsError(f"'{spec}' is not downloaded; run `scenewright models pull` first")
    commit, snap = found
    files = list_files(snap)
    plan = plan_files(files, spec, read_model_index(snap))
    if not plan.pickled:
        raise WeightsError(f"'{spec}' already has safetensors weights; nothing to convert")
    dest = converted_dir(spec.repo, commit)
    tmp = dest.with_name(dest.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    done: dict[str, list[str]] = {}
    for rel in files:
        src, out = snap / rel, tmp / rel
        out.parent.mkdir(parents=True, exist_ok=True)
        folder = rel.rpartition("/")[0] or "(root)"
        m = WEIGHT_FILE.match(rel.rpartition("/")[2])
        pickled_here = folder in plan.pickled or (spec.file and rel == spec.file)
        if pickled_here and rel.endswith(PICKLE_SUFFIXES) and (m and m["variant"] is None or rel == spec.file):
            try:
                state = torch.load(src, map_location="cpu", weights_only=True)
            except Exception as err:  # noqa: BLE001 - not plain tensors: refuse, never fall back to full unpickling
                shutil.rmtree(tmp, ignore_errors=True)
                raise WeightsError(f"{rel} of '{spec}' is not a plain tensor file ({type(err).__name__}); not converted") from None
            tensors = _flat_tensors(state.get("state_dict", state) if isinstance(state, dict) else {})
            name = _safetensors_name(rel)
            save_file(tensors, str(tmp / name), metadata={"format": "pt"})
            done.setdefault(folder, []).append(rel)
        elif INDEX_FILE.match(rel.rpartition("/")[2]) and ".bin." in rel and folder in plan.pickled:
            index = json.loads(src.read_text())  # a sharded .bin's index, pointing at the converted shards
            index["weight_map"] = {k: _safetensors_name(v) for k, v in index.get("weight_map", {}).items()}
            (tmp / _safetensors_name(rel)).write_text(json.dumps(index, indent=1))
        elif rel.endswith(PICKLE_SUFFIXES) or INDEX_FILE.match(rel.rpartition("/")[2]) and ".bin." in rel:
            continue  # other pickles (variants we did not choose) stay behind
        elif _same_device(src, tmp):
            os.link(src.resolve(), out)  # the HF blob itself: no second copy of a multi-GB file
        else:
            shutil.copyfile(src, out)
    (tmp / CONVERTED_MARK).write_text(json.dumps({"repo": spec.repo, "commit": commit, "converted": done}, indent=1))
    shutil.rmtree(dest, ignore_errors=True)
    tmp.rename(dest)
    return dest


def _flat_tensors(state: dict, prefix: str = "") -> dict:
    """Tensors of a (nested) state dict with dotted keys: the original IP-Adapter ``.bin`` nests ``image_proj`` and
    ``ip_adapter``, whose safetensors form has ``image_proj.*`` / ``ip_adapter.*`` keys."""
    import torch

    out = {}
    for k, v in state.items():
        if isinstance(v, torch.Tensor):
            out[prefix + k] = v.detach().clone().contiguous()  # clone: safetensors refuses shared storage
        elif isinstance(v, dict):
            out.update(_flat_tensors(v, f"{prefix}{k}."))
    return out


def _safetensors_name(rel: str) -> str:
    """The safetensors name diffusers/transformers look for in place of a pickled file (and its shard index):
    ``x.bin`` → ``x.safetensors``; transformers' ``pytorch_model*`` becomes ``model*``."""
    folder, _, name = rel.rpartition("/")
    name = name.replace(".bin", ".safetensors", 1) if ".bin" in name else name.rsplit(".", 1)[0] + ".safetensors"
    if name.startswith("pytorch_model"):
        name = "model" + name[len("pytorch_model"):]
    return f"{folder}/{name}" if folder else name


def _same_device(a: Path, b: Path) -> bool:
    try:
        return a.resolve().stat().st_dev == b.stat().st_dev
    except OSError:
        return False
