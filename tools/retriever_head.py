"""RealRAG's reflective retriever: a small projection head over frozen CLIP features, trained contrastively.

Why a head and not a fine-tuned CLIP: the paper fine-tunes a CLIP retriever per generator; here the CLIP towers
stay frozen (the library's index already holds their image features, and nothing large trains inside the engine)
and two d×d linear maps — one for query (text) features, one for image features — are learned on top. Both start
at the identity (plus a small seeded perturbation), so an untrained head ranks exactly as frozen CLIP does and
training can only move the ranking away from it where the data asks.

Loss (methods notes §4.2), per batch of library pairs (caption t_i, image p_i), q_i = W_t t_i, z_j = W_i p_j,
all L2-normalised, temperature τ::

    L_t2i = -log  exp(q_i·z_i/τ) / ( Σ_j exp(q_i·z_j/τ)  +  w · Σ_g exp(q_i·W_i g/τ) )
    L     = ½ (L_t2i + L_i2t)        (L_i2t: the usual image→text in-batch term)

The second sum is the **self-reflective negatives**: ``g`` ranges over images the profile's own generator made
for caption t_i (``reflect="generated"``, the brief's reading of "images the generator makes for the same
caption"), or over the real library image nearest to each of them, excluding the positive (``reflect="nearest"``,
the paper digest's ``I_neg = argmax_k sim(F(I_k), F(G(T)))``), or both. They are weighted by ``w`` (hard
negatives): what the generator already draws for a caption is pushed away from that caption, so retrieval favours
what complements the generator. ``reflect="none"`` is ordinary contrastive learning ("normal RAG" baseline).

Saved as ``head.safetensors`` (tensors ``text``, ``image``; metadata = the sidecar's identity fields) plus
``head.json`` (base embedder id, dims, library hash, seed, options, metrics, the safetensors' sha256). Loading
checks all of them: a tampered file, another embedder or a changed library is refused with one line.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

HEAD_FILE = "head.safetensors"
SIDECAR = "head.json"
FORMAT = "scenewright-reflective-head-1"
REFLECT_MODES = ("generated", "nearest", "both", "none")


class HeadError(ValueError):
    """A head that cannot be used (tampered, mismatched, malformed): one line for the user."""


def _unit(v: np.ndarray) -> np.ndarray:
    n = np.linalg.norm(v, axis=-1, keepdims=True)
    return (v / np.maximum(n, 1e-8)).astype(np.float32)


@dataclass
class ProjectionHead:
    """The two maps as numpy arrays (search needs no torch); ``sha256`` identifies the saved file."""

    text_w: np.ndarray
    image_w: np.ndarray
    meta: dict = field(default_factory=dict)
    sha256: str = ""

    @property
    def dim(self) -> int:
        return int(self.text_w.shape[0])

    def text(self, feats: np.ndarray) -> np.ndarray:
        return _unit(np.asarray(feats, np.float32) @ self.text_w.T)

    def image(self, feats: np.ndarray) -> np.ndarray:
        return _unit(np.asarray(feats, np.float32) @ self.image_w.T)

    @property
    def short(self) -> str:
        return self.sha256[:12]


@dataclass
class TrainResult:
    head: ProjectionHead
    losses: list[float]  # mean loss per epoch, before the first step is losses_initial
    loss_initial: float
    metrics: dict


def _loss(torch, wt, wi, t, p, g, gmask, tau: float, weight: float):
    import torch.nn.functional as F

    q = F.normalize(t @ wt.T, dim=-1)
    z = F.normalize(p @ wi.T, dim=-1)
    logits = q @ z.T / tau  # B x B
    target = torch.arange(len(t))
    if g is not None:  # B x G x d reflective negatives, gmask B x G (False: padding)
        zg = F.normalize(g @ wi.T, dim=-1)
        refl = torch.einsum("bd,bgd->bg", q, zg) / tau + float(np.log(weight))
        refl = refl.masked_fill(~gmask, float("-inf"))
        t2i = F.cross_entropy(torch.cat([logits, refl], dim=1), target)
    else:
        t2i = F.cross_entropy(logits, target)
    return 0.5 * (t2i + F.cross_entropy(logits.T, target))


def reflective_negatives(image_feats: np.ndarray, gen_feats: list[np.ndarray], mode: str) -> list[np.ndarray]:
    """Per pair i, the feature rows used as its self-reflective negatives (see the module doc)."""
    if mode not in REFLECT_MODES:
        raise HeadError(f"reflect must be one of {', '.join(REFLECT_MODES)}, not '{mode}'")
    out = []
    p = _unit(np.asarray(image_feats, np.float32))
    for i, g in enumerate(gen_feats):
        g = np.asarray(g, np.float32).reshape(-1, p.shape[1])
        rows = []
        if mode in ("generated", "both"):
            rows.append(g)
        if mode in ("nearest", "both") and len(g) and len(p) > 1:
            sims = _unit(g) @ p.T
            sims[:, i] = -np.inf  # never the positive itself
            rows.append(p[np.argmax(sims, axis=1)])
        out.append(np.concatenate(rows) if rows else np.zeros((0, p.shape[1]), np.float32))
    return out


def train_head(text_feats: np.ndarray, image_feats: np.ndarray, gen_feats: list[np.ndarray] | None = None, *,
               reflect: str = "generated", epochs: int = 50, seed: int = 0, tau: float = 0.07, weight: float = 2.0,
               lr: float = 0.01, batch: int = 32, init_noise: float = 0.01, on_epoch=None) -> TrainResult:
    """Train the two maps; deterministic for a seed (one thread, a seeded generator for init and batch order).

    ``text_feats`` / ``image_feats``: N x d frozen CLIP features of the pairs; ``gen_feats[i]``: G_i x d frozen
    CLIP image features of the generator's images for caption i (ignored with ``reflect="none"``)."""
    import torch

    t_np, p_np = np.asarray(text_feats, np.float32), np.asarray(image_feats, np.float32)
    n, d = t_np.shape
    if n < 2 or p_np.shape != (n, d):
        raise HeadError(f"training needs at least 2 (caption, image) pairs of one feature size; got {n}")
    if not (epochs >= 1 and tau > 0 and weight > 0 and batch >= 2):
        raise HeadError("epochs >= 1, tau > 0, weight > 0 and batch >= 2 are required")
    negs = reflective_negatives(p_np, gen_feats or [np.zeros((0, d))] * n, reflect) if reflect != "none" else None
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # bit-identical results: no thread-count-dependent reductions
    try:
        gen = torch.Generator().manual_seed(int(seed))
        eye = torch.eye(d)
        wt = torch.nn.Parameter(eye + init_noise * torch.randn(d, d, generator=gen))
        wi = torch.nn.Parameter(eye + init_noise * torch.randn(d, d, generator=gen))
        t, p = torch.from_numpy(t_np), torch.from_numpy(p_np)
        if negs is not None:
            gmax = max(1, max(len(x) for x in negs))
            g = torch.zeros(n, gmax, d)
            gmask = torch.zeros(n, gmax, dtype=torch.bool)
            for i, x in enumerate(negs):
                if len(x):
                    g[i, : len(x)] = torch.from_numpy(np.asarray(x, np.float32))
                    gmask[i, : len(x)] = True
            if not gmask.any():
                g = gmask = None
        else:
            g = gmask = None
        opt = torch.optim.Adam([wt, wi], lr=lr)

        def full_loss() -> float:
            with torch.no_grad():
                return float(_loss(torch, wt, wi, t, p, g, gmask, tau, weight))

        initial = full_loss()
        losses = []
        for ep in range(epochs):
            order = torch.randperm(n, generator=gen)
            total, count = 0.0, 0
            for s in range(0, n, batch):
                idx = order[s: s + batch]
                if len(idx) < 2:
                    continue
                loss = _loss(torch, wt, wi, t[idx], p[idx], None if g is None else g[idx],
                             None if gmask is None else gmask[idx], tau, weight)
                opt.zero_grad()
                loss.backward()
                opt.step()
                total, count = total + loss.item() * len(idx), count + len(idx)
            losses.append(total / max(1, count))
            if on_epoch:
                on_epoch(ep + 1, losses[-1])
        final = full_loss()
        head = ProjectionHead(wt.detach().numpy().copy(), wi.detach().numpy().copy())
    finally:
        torch.set_num_threads(threads)
    metrics = {"loss_initial": round(initial, 6), "loss_final": round(final, 6),
               "recall@1_frozen": recall_at(t_np, p_np, 1), "recall@1_head": recall_at(head.text(t_np),
                                                                                        head.image(p_np), 1)}
    return TrainResult(head, losses, initial, metrics)


def recall_at(queries: np.ndarray, images: np.ndarray, k: int, gallery: np.ndarray | None = None) -> float:
    """Share of queries i whose own image i is among the top-k of ``images`` (plus an optional extra
    ``gallery`` of distractors appended after them)."""
    q, imgs = _unit(np.asarray(queries, np.float32)), _unit(np.asarray(images, np.float32))
    if gallery is not None and len(gallery):
        imgs = np.concatenate([imgs, _unit(np.asarray(gallery, np.float32))])
    sims = q @ imgs.T
    top = np.argsort(-sims, axis=1, kind="stable")[:, :k]
    return round(float(np.mean([i in row for i, row in enumerate(top)])), 4)


# --- files -------------------------------------------------------------------------------------------------------
def _identity_fields(meta: dict) -> dict[str, str]:
    return {k: str(meta[k]) for k in ("format", "base", "dim", "library") if k in meta}


def save_head(folder: Path, head: ProjectionHead, meta: dict) -> ProjectionHead:
    """Write ``head.safetensors`` then ``head.json`` (last: a head without its sidecar is never used)."""
    folder = Path(folder)
    meta = {"format": FORMAT, "dim": head.dim, **meta}
    data = _safetensors_bytes({"image": head.image_w, "text": head.text_w}, _identity_fields(meta))
    sha = hashlib.sha256(data).hexdigest()
    tmp = folder / (HEAD_FILE + ".tmp")
    tmp.write_bytes(data)
    tmp.replace(folder / HEAD_FILE)
    side = folder / (SIDECAR + ".tmp")
    side.write_text(json.dumps({**meta, "sha256": sha}, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    side.replace(folder / SIDECAR)
    return ProjectionHead(head.text_w, head.image_w, {**meta, "sha256": sha}, sha)


def _safetensors_bytes(tensors: dict[str, np.ndarray], metadata: dict[str, str]) -> bytes:
    """The safetensors layout written with a sorted header: ``safetensors.numpy.save`` orders ``__metadata__``
    by a hash map, so the same head would not give the same bytes twice (and the file's sha256 is its identity).
    Read back with ``safetensors.numpy.load`` like any other."""
    header: dict = {"__metadata__": dict(sorted(metadata.items()))}
    blobs, offset = [], 0
    for name in sorted(tensors):
        arr = np.ascontiguousarray(tensors[name], "<f4")
        blob = arr.tobytes()
        header[name] = {"dtype": "F32", "shape": list(arr.shape), "data_offsets": [offset, offset + len(blob)]}
        blobs.append(blob)
        offset += len(blob)
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    return len(text).to_bytes(8, "little") + text + b"".join(blobs)


def has_head(folder: Path) -> bool:
    return (Path(folder) / HEAD_FILE).exists() or (Path(folder) / SIDECAR).exists()


def load_head(folder: Path, *, base: str, library: str, dim: int) -> ProjectionHead:
    """Load and verify; every refusal names the file and what to do."""
    from safetensors import SafetensorError
    from safetensors.numpy import load

    folder = Path(folder)
    path, side = folder / HEAD_FILE, folder / SIDECAR
    fix = f"run 'scenewright library train' again, or delete {path} and {side} to rank with frozen CLIP"
    if not path.is_file() or not side.is_file():
        raise HeadError(f"the trained head in {folder} is incomplete ({HEAD_FILE} and {SIDECAR} go together); {fix}")
    try:
        meta = json.loads(side.read_text(encoding="utf-8"))
        if not isinstance(meta, dict):
            raise ValueError("not an object")
    except (OSError, ValueError) as err:
        raise HeadError(f"{side} is not a valid head sidecar ({err}); {fix}") from None
    data = path.read_bytes()
    sha = hashlib.sha256(data).hexdigest()
    if meta.get("sha256") != sha:
        raise HeadError(f"{path} does not match the sha256 its sidecar records (tampered or half-written); {fix}")
    if meta.get("format") != FORMAT:
        raise HeadError(f"{side}: unknown head format '{str(meta.get('format'))[:40]}'; {fix}")
    try:
        tensors = load(data)
        header_len = int.from_bytes(data[:8], "little")
        header_meta = json.loads(data[8: 8 + header_len]).get("__metadata__", {})
    except (SafetensorError, ValueError, KeyError) as err:
        raise HeadError(f"{path} is not a readable safetensors file ({str(err)[:80]}); {fix}") from None
    if header_meta != _identity_fields(meta):
        raise HeadError(f"{path}'s own metadata disagrees with {side}; {fix}")
    if meta.get("base") != base:
        raise HeadError(f"the trained head in {folder} was trained over '{meta.get('base')}' but this profile"
                        f" embeds with '{base}'; use the profile that trained it, or {fix}")
    if meta.get("library") != library:
        raise HeadError(f"the library in {folder} changed since its head was trained (images or captions added or"
                        f" removed); {fix}")
    tw, iw = tensors.get("text"), tensors.get("image")
    if tw is None or iw is None or tw.shape != (dim, dim) or iw.shape != (dim, dim) or int(meta.get("dim", -1)) != dim:
        raise HeadError(f"{path} holds no {dim}x{dim} 'text' and 'image' maps for this embedder; {fix}")
    if not (np.isfinite(tw).all() and np.isfinite(iw).all()):
        raise HeadError(f"{path} holds non-finite weights; {fix}")
    return ProjectionHead(tw.astype(np.float32), iw.astype(np.float32), meta, sha)


__all__ = ["HeadError", "ProjectionHead", "REFLECT_MODES", "TrainResult", "has_head", "load_head", "recall_at",
           "reflective_negatives", "save_head", "train_head"]
