"""The reference library (RealRAG): an image embedding index next to an SQLite catalogue, and ``retrieve_reference``.

Layout of a library folder (default ``$SCENEWRIGHT_HOME/library``)::

    catalog.sqlite   images(id, sha256 UNIQUE, file, source, caption, width, height, added) + meta(key, value)
    index.faiss      faiss IndexIDMap2(IndexFlatIP) over L2-normalised embeddings, ids = catalogue ids
                     (index.npz with the same vectors when faiss-cpu is not installed: exact numpy search)
    images/          a copy of every indexed image, named by content hash (the library survives moving DIR)

Embedders (recorded in ``meta.embedder``; a library is searched only with the embedder that built it):
- ``clip:<model>``: CLIP image embeddings (``get_image_features``) and text embeddings for queries, from the
  profile's ``clip`` model (the tiny CLIP in tests).
- ``stats-1`` (preview profile, no weights): a deterministic 96-d vector, half image statistics (a 4x4x2 grid
  of mean Lab colour, an 8-bin hue histogram, edge energy) and half hashed caption words; a text query is its
  hashed words plus the colours it names. Exact matches of caption words and colours are what it can find;
  it exists so ``library`` works and is testable anywhere, not as a semantic embedder.

Exact search is fine at this scale (bench/library.py: thousands of images, sub-millisecond queries); faiss's
flat inner-product index is used when installed (extra ``rag``) so the same files scale to an IVF index later.

Ranking (said in every search's and retrieval's output, and in the tool's identity, hence cache keys):
- ``trained head <sha>``: a reflective retriever trained by ``scenewright library train`` (``head.safetensors``
  in the library, see ``tools/retriever_head.py``) maps query and image features before the inner product;
- ``frozen CLIP``: plain CLIP text-image similarity (a ``clip:`` library without a head);
- ``heuristic (stats-1)``: the preview embedder's word and colour matches.

Reflective re-ranking on top (methods notes §4.4, the training-free approximation of RealRAG's self-reflective
negatives): ``s(c) = rel(q, c) - weight * max(0, cos(E_I(c), E_I(draft)) - margin)``, kept only when
``rel >= floor``; retrieval is skipped when the draft's check score already reaches ``gate``.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import sqlite3
import stat
import threading
import time
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from tools.base import NO_CONTEXT, Tool
from tools.roles import RetrieveReferenceIn, RetrieveReferenceOut

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif", ".tif", ".tiff")
STATS_DIM = 96
MAX_CAPTION = 400
MAX_FILE_BYTES = 64 * 1024 * 1024  # one library image file
MAX_PIXELS = 64_000_000  # as `repaint` (tools/critique_tools.py): a 140 KB PNG can decode to gigabytes
KEEP_SIDE = 1024  # what the embedders need at most (CLIP 224 px, stats 32 px): larger decodes are shrunk at once


class LibraryError(ValueError):
    """A user-facing problem with a library (one line)."""


# --- embedders -----------------------------------------------------------------------------------------------
def _words(text: str) -> list[str]:
    return re.findall(r"[a-z0-9]+", text.lower())


def _hashed_words(text: str, dim: int) -> np.ndarray:
    v = np.zeros(dim, np.float32)
    for w in _words(text):
        if len(w) > 1:
            v[zlib.crc32(w.encode()) % dim] += 1.0
    return v


def _unit(v: np.ndarray) -> np.ndarray:
    n = np.linalg.norm(v, axis=-1, keepdims=True)
    return (v / np.maximum(n, 1e-8)).astype(np.float32)


class StatsEmbedder:
    """``stats-1``: image statistics + hashed caption words (see the module doc)."""

    id = "stats-1"
    dim = STATS_DIM

    def _image_part(self, im: Image.Image) -> np.ndarray:
        from tools.preview_render import rgb_to_hsv, rgb_to_lab

        small = np.asarray(im.convert("RGB").resize((32, 32), Image.Resampling.BOX), np.float64)
        lab = rgb_to_lab(small.reshape(-1, 3)).reshape(32, 32, 3)
        grid = lab.reshape(4, 8, 4, 8, 3).mean(axis=(1, 3))[..., 1:] / 64.0  # a*, b* per cell: 4x4x2 = 32
        h, s, v = rgb_to_hsv(small.reshape(-1, 3))
        hist = np.histogram(h[s > 0.2], bins=8, range=(0, 360))[0].astype(np.float64)
        hist = hist / max(1.0, hist.sum())
        gray = small.mean(-1)
        edges = np.array([np.abs(np.diff(gray, axis=0)).mean(), np.abs(np.diff(gray, axis=1)).mean()]) / 64
        light = np.array([lab[..., 0].mean() / 100, lab[..., 0].std() / 50])
        part = np.concatenate([grid.ravel(), hist, edges, light])  # 32 + 8 + 2 + 2 = 44
        return np.pad(part, (0, 48 - part.size)).astype(np.float32)

    def _color_part(self, text: str) -> np.ndarray:
        from tools.colors import find_colors

        colors = find_colors(text)
        if not colors:
            return np.zeros(48, np.float32)
        sw = Image.new("RGB", (32, 32))
        for i, c in enumerate(colors[:4]):
            sw.paste(tuple(int(x) for x in c), (0, i * 32 // len(colors[:4]), 32, 32))
        return self._image_part(sw)

    def embed_images(self, images: list[Image.Image], captions: list[str] | None = None) -> np.ndarray:
        captions = captions or [""] * len(images)
        rows = [np.concatenate([_unit(self._image_part(im)), _unit(_hashed_words(c, 48))])
                for im, c in zip(images, captions)]
        return _unit(np.stack(rows)) if rows else np.zeros((0, self.dim), np.float32)

    def embed_texts(self, texts: list[str]) -> np.ndarray:
        rows = [np.concatenate([_unit(self._color_part(t)) * 0.5, _unit(_hashed_words(t, 48))]) for t in texts]
        return _unit(np.stack(rows))

    def embed_drafts(self, images: list[Image.Image]) -> np.ndarray:
        """The generator's own draft has no caption: image half only (comparable to library vectors)."""
        return self.embed_images(images)


class ClipEmbedder:
    """``clip:<model>``: transformers CLIPModel image/text features, L2-normalised."""

    def __init__(self, model_id: str, manager=None):
        self.model_id = model_id
        self.manager = manager
        self.id = f"clip:{model_id}"
        self._model = None
        self._lock = threading.Lock()

    def _load(self):
        with self._lock:
            if self._model is None:
                from transformers import AutoModel, AutoProcessor

                from tools.models import resolved
                from tools.weights import load_kwargs

                res = resolved(self.model_id, "clip")
                model = AutoModel.from_pretrained(res.source(), **load_kwargs(res)).eval()
                self._model = (model, AutoProcessor.from_pretrained(res.source(), local_files_only=True))
            return self._model

    @property
    def dim(self) -> int:
        return int(self._load()[0].config.projection_dim)

    @staticmethod
    def _tensor(out):
        return out if hasattr(out, "float") else out.pooler_output  # transformers 5 may return a model output

    def embed_images(self, images: list[Image.Image], captions: list[str] | None = None) -> np.ndarray:
        import torch

        model, proc = self._load()
        rows = []
        for i in range(0, len(images), 32):
            enc = proc(images=[im.convert("RGB") for im in images[i: i + 32]], return_tensors="pt")
            with torch.inference_mode():
                rows.append(self._tensor(model.get_image_features(pixel_values=enc["pixel_values"])).float().numpy())
        return _unit(np.concatenate(rows)) if rows else np.zeros((0, self.dim), np.float32)

    def embed_texts(self, texts: list[str]) -> np.ndarray:
        import torch

        model, proc = self._load()
        enc = proc(text=texts, return_tensors="pt", padding=True, truncation=True, max_length=77)
        with torch.inference_mode():
            out = model.get_text_features(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"])
        return _unit(self._tensor(out).float().numpy())

    def embed_drafts(self, images: list[Image.Image]) -> np.ndarray:
        return self.embed_images(images)


def embedder_for(profile) -> StatsEmbedder | ClipEmbedder:
    models = getattr(profile, "models", {}) or {}
    if getattr(profile, "backend", "preview") == "diffusers" and models.get("clip"):
        return ClipEmbedder(models["clip"])
    return StatsEmbedder()


# --- the vector index ------------------------------------------------------------------------------------------
def _faiss():
    try:
        import faiss

        return faiss
    except ImportError:
        return None


class VectorIndex:
    """Inner-product search over unit vectors with integer ids: faiss IndexIDMap2(IndexFlatIP), else numpy."""

    def __init__(self, dim: int):
        self.dim = dim
        self.faiss = _faiss()
        self.ids = np.zeros(0, np.int64)
        self.vecs = np.zeros((0, dim), np.float32)
        self.index = self.faiss.IndexIDMap2(self.faiss.IndexFlatIP(dim)) if self.faiss else None

    @property
    def backend(self) -> str:
        return "faiss" if self.faiss else "numpy"

    def __len__(self) -> int:
        return int(self.index.ntotal) if self.index is not None else len(self.ids)

    def add(self, ids: np.ndarray, vecs: np.ndarray) -> None:
        vecs = np.ascontiguousarray(vecs, np.float32)
        if self.index is not None:
            self.index.add_with_ids(vecs, np.asarray(ids, np.int64))
        else:
            self.ids = np.concatenate([self.ids, np.asarray(ids, np.int64)])
            self.vecs = np.concatenate([self.vecs, vecs])

    def remove(self, ids: list[int]) -> None:
        if self.index is not None:
            self.index.remove_ids(np.asarray(ids, np.int64))
        else:
            keep = ~np.isin(self.ids, ids)
            self.ids, self.vecs = self.ids[keep], self.vecs[keep]

    def search(self, q: np.ndarray, k: int) -> list[tuple[int, float]]:
        k = min(k, len(self))
        if k == 0:
            return []
        q = np.ascontiguousarray(q.reshape(1, -1), np.float32)
        if self.index is not None:
            scores, ids = self.index.search(q, k)
            return [(int(i), float(s)) for i, s in zip(ids[0], scores[0]) if i >= 0]
        sims = self.vecs @ q[0]
        top = np.argsort(-sims, kind="stable")[:k]
        return [(int(self.ids[i]), float(sims[i])) for i in top]

    def vectors(self, ids: list[int]) -> np.ndarray:
        if self.index is not None:
            return np.stack([self.index.reconstruct(int(i)) for i in ids]) if ids else np.zeros((0, self.dim))
        pos = {int(i): n for n, i in enumerate(self.ids)}
        return self.vecs[[pos[int(i)] for i in ids]]

    def save(self, folder: Path) -> None:
        if self.index is not None:
            tmp = folder / "index.faiss.tmp"
            self.faiss.write_index(self.index, str(tmp))
            tmp.replace(folder / "index.faiss")
        else:
            with open(folder / "index.npz.tmp", "wb") as f:
                np.savez(f, ids=self.ids, vecs=self.vecs)
            (folder / "index.npz.tmp").replace(folder / "index.npz")

    @classmethod
    def load(cls, folder: Path, dim: int) -> VectorIndex:
        idx = cls(dim)
        if idx.index is not None and (folder / "index.faiss").exists():
            idx.index = idx.faiss.read_index(str(folder / "index.faiss"))
        elif (folder / "index.npz").exists():
            data = np.load(folder / "index.npz")
            idx.add(data["ids"], data["vecs"])
        return idx


# --- the library -----------------------------------------------------------------------------------------------
@dataclass
class Entry:
    id: int
    sha256: str
    file: str
    source: str
    caption: str
    width: int
    height: int

    def to_dict(self) -> dict:
        return self.__dict__.copy()


@dataclass
class AddReport:
    added: list[Entry]
    duplicates: list[str]
    skipped: list[str]  # "path: reason"
    seconds: float


def _captions_for(folder: Path) -> dict[str, str]:
    """Sidecar captions: ``captions.json`` ({file name: caption}) in the folder."""
    side = folder / "captions.json"
    if not side.is_file():
        return {}
    try:
        data = json.loads(side.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise LibraryError(f"{side}: not valid JSON ({err})") from None
    if not isinstance(data, dict):
        raise LibraryError(f"{side}: expected an object mapping file names to captions")
    return {str(k): str(v)[:MAX_CAPTION] for k, v in data.items() if isinstance(v, (str, int, float))}


def _own_caption(path: Path, sidecar: dict[str, str]) -> str:
    if path.name in sidecar:
        return sidecar[path.name]
    txt = path.with_suffix(".txt")
    if txt.is_file():
        return txt.read_text(encoding="utf-8", errors="replace").strip()[:MAX_CAPTION]
    js = path.with_suffix(".json")
    if js.is_file():
        try:
            data = json.loads(js.read_text(encoding="utf-8"))
            if isinstance(data, dict) and isinstance(data.get("caption"), str):
                return data["caption"][:MAX_CAPTION]
        except (OSError, ValueError):
            pass
    return re.sub(r"[_\-]+", " ", path.stem)  # the file name is a caption of last resort


class Library:
    """One library folder. Open with :meth:`open`; writes are serialised by SQLite (one writer at a time)."""

    def __init__(self, folder: Path, embedder):
        self.folder = Path(folder)
        self.embedder = embedder
        self.folder.mkdir(parents=True, exist_ok=True)
        (self.folder / "images").mkdir(exist_ok=True)
        self.db = sqlite3.connect(self.folder / "catalog.sqlite", timeout=30, check_same_thread=False)
        self.db.executescript(
            "CREATE TABLE IF NOT EXISTS images (id INTEGER PRIMARY KEY, sha256 TEXT UNIQUE NOT NULL, file TEXT NOT NULL,"
            " source TEXT, caption TEXT, width INTEGER, height INTEGER, added REAL);"
            "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT);"
        )
        row = self.db.execute("SELECT value FROM meta WHERE key='embedder'").fetchone()
        if row and row[0] != embedder.id:
            raise LibraryError(
                f"library {self.folder} was built with embedder '{row[0]}' but this profile uses '{embedder.id}';"
                " use the profile that built it, or a new --library folder"
            )
        self._index: VectorIndex | None = None
        self._head = None
        self._head_checked = False

    # --- the trained head (RealRAG's reflective retriever) -----------------------------------------------------
    def pairs_digest(self) -> str:
        """Identity of what a head is trained on: the embedder and every (image, caption) pair."""
        rows = self.db.execute("SELECT sha256, caption FROM images ORDER BY sha256").fetchall()
        text = self.embedder.id + "\n" + "\n".join(f"{sha} {json.dumps(cap or '')}" for sha, cap in rows)
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    @property
    def head(self):
        """The trained head when the library has one (verified; a bad one raises ``LibraryError``), else None."""
        if not self._head_checked:
            from tools.retriever_head import HeadError, has_head, load_head

            if has_head(self.folder):
                try:
                    self._head = load_head(self.folder, base=self.embedder.id, library=self.pairs_digest(),
                                           dim=self.index.dim)
                except HeadError as err:
                    raise LibraryError(str(err)) from None
            self._head_checked = True
        return self._head

    def forget_head(self) -> None:
        """After the catalogue or the head files changed: check again on next use."""
        self._head, self._head_checked = None, False

    @property
    def ranking(self) -> str:
        """Which ranking text queries get (see the module doc)."""
        if self.head is not None:
            return f"trained head {self.head.short}"
        return "frozen CLIP" if self.embedder.id.startswith("clip:") else f"heuristic ({self.embedder.id})"

    @classmethod
    def exists(cls, folder: Path) -> bool:
        return (Path(folder) / "catalog.sqlite").is_file()

    @property
    def index(self) -> VectorIndex:
        if self._index is None:
            row = self.db.execute("SELECT value FROM meta WHERE key='dim'").fetchone()
            dim = int(row[0]) if row else self.embedder.dim
            self._index = VectorIndex.load(self.folder, dim)
        return self._index

    def __len__(self) -> int:
        return int(self.db.execute("SELECT COUNT(*) FROM images").fetchone()[0])

    def digest(self) -> str:
        """Content identity of the library (cache keys of retrieval nodes)."""
        shas = [r[0] for r in self.db.execute("SELECT sha256 FROM images ORDER BY sha256")]
        return hashlib.sha256((self.embedder.id + "\n" + "\n".join(shas)).encode()).hexdigest()[:16]

    def entries(self) -> list[Entry]:
        return [Entry(*r) for r in self.db.execute(
            "SELECT id, sha256, file, source, caption, width, height FROM images ORDER BY id")]

    def get(self, id: int) -> Entry | None:
        r = self.db.execute("SELECT id, sha256, file, source, caption, width, height FROM images WHERE id=?",
                            (int(id),)).fetchone()
        return Entry(*r) if r else None

    def image(self, entry: Entry) -> Image.Image:
        with Image.open(self.image_path(entry)) as im:
            if im.width * im.height > MAX_PIXELS:
                raise LibraryError(f"library image {entry.file} is {im.width}x{im.height}, more than {MAX_PIXELS} pixels")
            return im.convert("RGB")

    def image_path(self, entry: Entry) -> Path:
        """Where an entry's file is: always a plain name inside ``images/`` (the catalogue is data, not trusted:
        a ``file`` of ``../x`` never leads out of the library)."""
        folder = (self.folder / "images").resolve()
        name = str(entry.file or "")
        path = (folder / name).resolve()
        if "/" in name or "\\" in name or name in ("", ".", "..") or path.parent != folder:
            raise LibraryError(
                f"the catalogue entry {entry.id} names file '{name[:80]}', which is not inside {folder};"
                " the catalogue is damaged (remove the entry, or rebuild the library)"
            )
        return path

    # --- add / remove -------------------------------------------------------------------------------------------
    def add(self, paths: list[Path] | Path, batch: int = 64) -> AddReport:
        t0 = time.perf_counter()
        if isinstance(paths, Path) or isinstance(paths, str):
            root = Path(paths)
            if not root.exists():
                raise LibraryError(f"{root} does not exist")
            if not root.is_dir() and not root.is_file():
                raise LibraryError(f"{root} is not a regular file or a folder (a device, a pipe?); give image files")
            files = sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES) \
                if root.is_dir() else [root]
        else:
            files = [Path(p) for p in paths]
        known = {r[0] for r in self.db.execute("SELECT sha256 FROM images")}
        sidecars: dict[Path, dict[str, str]] = {}
        added, dups, skipped = [], [], []
        pending: list[tuple[Path, str, str, Image.Image, tuple[int, int], str]] = []  # decoded images: shrunk

        def flush():
            if not pending:
                return
            vecs = self.embedder.embed_images([p[3] for p in pending], [p[5] for p in pending])
            if not self.db.execute("SELECT 1 FROM meta WHERE key='embedder'").fetchone():
                self.db.execute("INSERT INTO meta VALUES ('embedder', ?), ('dim', ?)", (self.embedder.id, vecs.shape[1]))
            ids = []
            for (path, sha, name, im, (w, h), caption) in pending:
                cur = self.db.execute(
                    "INSERT INTO images (sha256, file, source, caption, width, height, added) VALUES (?,?,?,?,?,?,?)",
                    (sha, name, str(path.resolve()), caption, w, h, time.time()))
                ids.append(cur.lastrowid)
                added.append(Entry(cur.lastrowid, sha, name, str(path.resolve()), caption, w, h))
            self.index.add(np.asarray(ids), vecs)
            pending.clear()

        with self.db:  # one transaction: the catalogue and the index file change together
            for path in files:
                try:
                    st = path.stat()
                    if not stat.S_ISREG(st.st_mode):
                        skipped.append(f"{path}: not a regular file (a device, a pipe?)")
                        continue
                    if st.st_size > MAX_FILE_BYTES:
                        skipped.append(f"{path}: larger than {MAX_FILE_BYTES >> 20} MiB")
                        continue
                    with open(path, "rb") as fh:
                        data = fh.read(MAX_FILE_BYTES + 1)
                except OSError as err:
                    skipped.append(f"{path}: cannot read ({err.strerror or err})")
                    continue
                if len(data) > MAX_FILE_BYTES:  # it grew while we looked
                    skipped.append(f"{path}: larger than {MAX_FILE_BYTES >> 20} MiB")
                    continue
                sha = hashlib.sha256(data).hexdigest()
                if sha in known:
                    dups.append(str(path))
                    continue
                try:
                    with Image.open(io.BytesIO(data)) as probe:
                        size = probe.size
                        if size[0] * size[1] > MAX_PIXELS:
                            skipped.append(f"{path}: {size[0]}x{size[1]} is more than {MAX_PIXELS} pixels")
                            continue
                        probe.verify()
                    with Image.open(io.BytesIO(data)) as im:
                        im.draft("RGB", (KEEP_SIDE, KEEP_SIDE))  # JPEG: decode at a reduced scale
                        im = im.convert("RGB")
                    if max(im.size) > KEEP_SIDE:
                        im.thumbnail((KEEP_SIDE, KEEP_SIDE), Image.Resampling.BOX)
                except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError) as err:
                    skipped.append(f"{path}: not a readable image ({type(err).__name__})")
                    continue
                if path.parent not in sidecars:
                    sidecars[path.parent] = _captions_for(path.parent)
                known.add(sha)
                name = f"{sha[:32]}{path.suffix.lower()}"
                (self.folder / "images" / name).write_bytes(data)  # now: only the shrunk image waits for the batch
                del data
                pending.append((path, sha, name, im, size, _own_caption(path, sidecars[path.parent])))
                if len(pending) >= batch:
                    flush()
            flush()
            if added:
                self.index.save(self.folder)
        return AddReport(added, dups, skipped, time.perf_counter() - t0)

    def remove(self, key: str) -> list[Entry]:
        """Remove by catalogue id, sha256 prefix (>= 6 chars) or source path."""
        rows = []
        if key.isdigit():
            rows = [self.get(int(key))]
        elif re.fullmatch(r"[0-9a-f]{6,64}", key):
            rows = [Entry(*r) for r in self.db.execute(
                "SELECT id, sha256, file, source, caption, width, height FROM images WHERE sha256 LIKE ?", (key + "%",))]
        if not any(rows):
            src = str(Path(key).resolve())
            rows = [Entry(*r) for r in self.db.execute(
                "SELECT id, sha256, file, source, caption, width, height FROM images WHERE source=? OR source LIKE ?",
                (src, src.rstrip("/") + "/%"))]
        rows = [r for r in rows if r]
        if not rows:
            short = re.fullmatch(r"[0-9a-f]{1,5}", key) and not key.isdigit()
            raise LibraryError(f"a sha256 prefix needs at least 6 hex characters ('{key}' has {len(key)}); give more,"
                               " a catalogue id or a path" if short else
                               f"nothing in the library matches '{key}' (give an id, a sha256 prefix of at least 6"
                               " hex characters, or a path)")
        files = []
        for r in rows:
            try:
                files.append(self.image_path(r))
            except LibraryError:
                files.append(None)  # a damaged entry: drop it from the catalogue, delete nothing
        with self.db:
            self.db.executemany("DELETE FROM images WHERE id=?", [(r.id,) for r in rows])
            self.index.remove([r.id for r in rows])
            self.index.save(self.folder)
        for f in files:
            if f is not None:
                f.unlink(missing_ok=True)
        return rows

    # --- search ---------------------------------------------------------------------------------------------------
    def search(self, query: str | Image.Image, k: int = 5) -> list[tuple[Entry, float]]:
        if len(self) == 0:
            return []
        if isinstance(query, str):
            q = self.embedder.embed_texts([query])[0]
            head = self.head
            if head is not None:  # every image through the head's image map: exact search at library scale
                ids = [e.id for e in self.entries()]
                sims = head.image(self.index.vectors(ids)) @ head.text(q[None])[0]
                top = np.argsort(-sims, kind="stable")[: min(k, len(ids))]
                return [(e, float(sims[n])) for n in top if (e := self.get(ids[n])) is not None]
        else:
            q = self.embedder.embed_drafts([query])[0]
        out = []
        for i, s in self.index.search(q, k):
            e = self.get(i)
            if e is not None:
                out.append((e, s))
        return out

    def retrieve(self, query: str, draft: Image.Image | None, *, k: int = 20, weight: float = 0.5,
                 margin: float = 0.2, floor: float = 0.0) -> tuple[Entry | None, str, list[dict]]:
        """Reflective re-ranking of the top-k text matches; (chosen, reason, candidate table)."""
        hits = self.search(query, k)
        if not hits:
            return None, "the library is empty", []
        draft_sims = np.zeros(len(hits))
        if draft is not None:
            d = self.embedder.embed_drafts([draft])[0]
            draft_sims = self.index.vectors([e.id for e, _ in hits]) @ d
        table = []
        for (e, rel), ds in zip(hits, draft_sims):
            score = reflective_score(rel, float(ds), weight, margin)
            table.append({"id": e.id, "caption": e.caption, "relevance": round(rel, 4),
                          "draft_similarity": round(float(ds), 4), "score": round(score, 4),
                          "eligible": rel >= floor})
        table.sort(key=lambda r: (-r["eligible"], -r["score"], r["id"]))
        best = table[0]
        if not best["eligible"]:
            return None, f"no candidate reaches the relevance floor {floor} (best {best['relevance']})", table[:10]
        pen = best["relevance"] - best["score"]
        reason = (f"{self.ranking}: id {best['id']} '{best['caption'][:60]}': relevance {best['relevance']:.3f}, similarity to the"
                  f" draft {best['draft_similarity']:.3f} (penalty {pen:.3f}), score {best['score']:.3f},"
                  f" best of {len(table)} above the floor {floor}")
        return self.get(best["id"]), reason, table[:10]


def reflective_score(relevance: float, draft_similarity: float, weight: float = 0.5, margin: float = 0.2) -> float:
    """``rel - weight * max(0, sim_to_draft - margin)``: complement what the generator already drew."""
    return float(relevance) - float(weight) * max(0.0, float(draft_similarity) - float(margin))


def default_library_dir(home: Path | None = None) -> Path:
    """``$SCENEWRIGHT_LIBRARY``, else ``<home>/library`` (home: the store's, else ``$SCENEWRIGHT_HOME``)."""
    import os

    if os.environ.get("SCENEWRIGHT_LIBRARY"):
        return Path(os.environ["SCENEWRIGHT_LIBRARY"])
    return Path(home or os.environ.get("SCENEWRIGHT_HOME", "scenewright-runs")) / "library"


# --- the tool ----------------------------------------------------------------------------------------------------
class RetrieveReference(Tool):
    """``retrieve_reference``: gate on the draft's score, then reflective re-ranking over the library."""

    name = "retrieve_reference"
    version = "reflective-rerank-2"
    Input = RetrieveReferenceIn
    Output = RetrieveReferenceOut
    max_batch = 8

    def __init__(self, library: Library):
        self.library = library

    def identity(self) -> dict:
        head = self.library.head
        return {"library": self.library.digest(), "embedder": self.library.embedder.id,
                "ranking": self.library.ranking, "head": head.sha256 if head is not None else None}

    def run(self, batch: list[RetrieveReferenceIn], ctx=NO_CONTEXT) -> list[RetrieveReferenceOut]:
        from tools.model_utils import box_pixels

        outs = []
        for b in batch:
            if b.draft is not None and b.draft_score >= b.gate:
                outs.append(RetrieveReferenceOut(
                    reason=f"skipped: the draft already matches (check score {b.draft_score:.3f} >= {b.gate})"))
                continue
            draft = b.draft
            if draft is not None and b.box is not None:
                draft = draft.convert("RGB").crop(box_pixels(b.box, draft.width, draft.height))
            entry, reason, table = self.library.retrieve(b.query, draft, k=b.k, weight=b.weight, margin=b.margin,
                                                         floor=b.floor)
            ranking = self.library.ranking
            if entry is None:
                outs.append(RetrieveReferenceOut(reason=reason, candidates=table, ranking=ranking))
            else:
                outs.append(RetrieveReferenceOut(reference=self.library.image(entry), chosen=str(entry.id),
                                                 reason=reason, candidates=table, ranking=ranking))
        return outs


def library_tools(profile, folder: Path | None) -> list[Tool]:
    """The retrieval tool when ``folder`` holds a non-empty library built with this profile's embedder.

    A library of another embedder is not this profile's (no tool); a trained head that is tampered or stale
    raises ``LibraryError`` (one line): silently ranking without it would hide that the trained retriever is gone."""
    if folder is None or not Library.exists(folder):
        return []
    try:
        try:
            lib = Library(folder, embedder_for(profile))
        except LibraryError:
            return []
        if not len(lib):
            return []
        lib.ranking  # noqa: B018 - verifies the head now, not in the middle of a run
        return [RetrieveReference(lib)]
    except sqlite3.DatabaseError as err:  # a damaged catalogue: one line naming it, not a traceback in every run
        raise LibraryError(
            f"the library catalogue {Path(folder) / 'catalog.sqlite'} is damaged ({err}); move {folder} aside"
            " (or set SCENEWRIGHT_LIBRARY to another folder) and rebuild it with `scenewright library add`"
        ) from None


__all__ = [
    "ClipEmbedder",
    "Library",
    "LibraryError",
    "RetrieveReference",
    "StatsEmbedder",
    "default_library_dir",
    "embedder_for",
    "library_tools",
    "reflective_score",
]
