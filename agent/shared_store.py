"""Artifacts by content hash in a place every Ray worker can reach: a folder (this machine's store, or a shared
filesystem) or an fsspec URL (``s3://bucket/prefix``, ``gs://…``, ``file:///mnt/shared/…``).

Nodes on Ray pass artifact *references* (``{"$artifact": sha256, "kind": "image", "size": [w, h]}``), never
pixels or pickled objects: an actor reads its inputs here and writes its outputs here, and the driver copies what
a run needs into its own store (the record, the cache and ``final.png`` stay on the driver's machine). The
layout is the store's own (``<root>/<sha[:2]>/<sha>.png``), so ``store = ""`` on one machine is simply the
driver's artifacts folder and nothing is copied. Every read is verified: the pixels must hash to the name.
"""

from __future__ import annotations

import io
from pathlib import Path

from PIL import Image as PILImage

from agent.store import ArtifactError, atomic_write, encode_png, image_digest, is_digest


class SharedArtifacts:
    def __init__(self, spec: str):
        if not spec:
            raise ValueError("a shared artifact store needs a folder or a URL")
        self.spec = spec
        self.remote = "://" in spec
        self._fs = None
        if self.remote:
            import fsspec  # comes with huggingface_hub; s3/gs need s3fs/gcsfs on every node

            self._fs, self._root = fsspec.core.url_to_fs(spec)
            self._root = self._root.rstrip("/")
        else:
            self._root = str(Path(spec).expanduser().resolve())

    def path(self, digest: str) -> str:
        if not is_digest(digest):
            raise ValueError(f"'{str(digest)[:80]}' is not an artifact hash (64 lower-case hex digits)")
        return f"{self._root}/{digest[:2]}/{digest}.png"

    def exists(self, digest: str) -> bool:
        p = self.path(digest)
        return self._fs.exists(p) if self.remote else Path(p).exists()

    def put_bytes(self, digest: str, data: bytes) -> None:
        if self.exists(digest):
            return
        p = self.path(digest)
        if self.remote:
            self._fs.makedirs(p.rsplit("/", 1)[0], exist_ok=True)
            tmp = f"{p}.tmp-{id(data):x}"
            self._fs.pipe_file(tmp, data)
            self._fs.mv(tmp, p)  # readers never see half a file where the backend can rename
        else:
            atomic_write(Path(p), data)

    def get_bytes(self, digest: str) -> bytes:
        p = self.path(digest)
        try:
            return self._fs.cat_file(p) if self.remote else Path(p).read_bytes()
        except FileNotFoundError:
            raise ArtifactError(digest, Path(p), "is missing from the shared store") from None

    def put_image(self, image: PILImage.Image) -> str:
        """Store an (RGB) image under the hash of its pixels; returns the hash."""
        digest = image_digest(image)
        if not self.exists(digest):
            self.put_bytes(digest, encode_png(image))
        return digest

    def get_image(self, digest: str) -> PILImage.Image:
        data = self.get_bytes(digest)
        try:
            with PILImage.open(io.BytesIO(data)) as im:
                im.load()
                image = im.convert("RGB") if im.mode != "RGB" else im.copy()
        except (OSError, SyntaxError, ValueError, PILImage.DecompressionBombError) as err:
            raise ArtifactError(digest, Path(self.path(digest)), f"is not a readable PNG ({type(err).__name__})") from None
        if image_digest(image) != digest:
            raise ArtifactError(digest, Path(self.path(digest)), "holds other pixels than its hash says")
        return image
