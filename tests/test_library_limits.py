"""The reference library and batch input against hostile files: pixel bombs, devices, pipes, catalogues that point
outside the library."""

from __future__ import annotations

import os
import sqlite3
import struct
import threading
import time
import zlib

import pytest
from PIL import Image
from typer.testing import CliRunner

from agent.cli import app
from tools.retrieval import MAX_PIXELS, Library, LibraryError, StatsEmbedder


def cli(*args):
    return CliRunner().invoke(app, list(args), catch_exceptions=False)


def finishes(fn, seconds: float = 20.0):
    """Run ``fn`` in a thread; fail (instead of hanging the suite) when it blocks."""
    box = {}
    t = threading.Thread(target=lambda: box.setdefault("v", fn()), daemon=True)
    t.start()
    t.join(seconds)
    assert not t.is_alive(), f"blocked for more than {seconds} s"
    return box["v"]


def png_bomb(path, side: int = 12000) -> None:
    """A small PNG whose header claims side x side pixels (a decompression bomb; under Pillow's own 178 M limit)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    row = b"\x00" + b"\x00" * side
    idat = zlib.compress(row * 64, 9)  # the first rows only; a decoder would expand it to side*side bytes
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0))
                     + chunk(b"IDAT", idat) + chunk(b"IEND", b""))


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("SCENEWRIGHT_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


def test_pixel_bombs_are_skipped_before_decoding(tmp_path):
    folder = tmp_path / "refs"
    folder.mkdir()
    for i in range(4):
        png_bomb(folder / f"bomb{i}.png")
    Image.new("RGB", (64, 64), (200, 0, 0)).save(folder / "fine.png")
    lib = Library(tmp_path / "lib", StatsEmbedder())
    t0 = time.perf_counter()
    report = lib.add(folder)
    assert time.perf_counter() - t0 < 10
    assert [e.file.endswith(".png") for e in report.added] == [True]
    assert len(report.skipped) == 4 and all(f"more than {MAX_PIXELS} pixels" in s for s in report.skipped)


def test_large_images_are_kept_whole_but_held_small(tmp_path):
    big = tmp_path / "big.png"
    Image.new("RGB", (3000, 2000), (10, 120, 200)).save(big)
    lib = Library(tmp_path / "lib", StatsEmbedder())
    entry = lib.add(big).added[0]
    assert (entry.width, entry.height) == (3000, 2000)  # the catalogue and the file are the original
    assert lib.image(entry).size == (3000, 2000)


def test_devices_and_pipes_are_refused(home, tmp_path):
    res = finishes(lambda: cli("library", "add", "/dev/zero"))
    assert res.exit_code == 2 and "not a regular file" in res.stderr
    fifo = tmp_path / "pipe.png"
    os.mkfifo(fifo)
    res = finishes(lambda: cli("library", "add", str(fifo)))
    assert res.exit_code == 2 and "not a regular file" in res.stderr
    folder = tmp_path / "refs"
    folder.mkdir()
    os.mkfifo(folder / "inside.png")
    Image.new("RGB", (64, 64), (0, 200, 0)).save(folder / "ok.png")
    res = finishes(lambda: cli("library", "add", str(folder)))
    assert res.exit_code == 0 and "added 1" in res.stdout
    prompts = tmp_path / "prompts.fifo"
    os.mkfifo(prompts)
    res = finishes(lambda: cli("batch", str(prompts)))
    assert res.exit_code == 2 and "not a regular file" in res.stderr


def test_batch_out_folder_is_one_line(home, tmp_path):
    prompts = tmp_path / "p.txt"
    prompts.write_text("a red cube\n")
    res = cli("batch", str(prompts), "--out", str(tmp_path))
    assert res.exit_code == 2 and "is a folder" in res.stderr and "Traceback" not in res.output


def test_remove_never_deletes_outside_the_library(tmp_path):
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me")
    src = tmp_path / "red.png"
    Image.new("RGB", (64, 64), (200, 0, 0)).save(src)
    lib = Library(tmp_path / "lib", StatsEmbedder())
    entry = lib.add(src).added[0]
    db = sqlite3.connect(tmp_path / "lib" / "catalog.sqlite")
    db.execute("UPDATE images SET file = ? WHERE id = ?", ("../../victim.txt", entry.id))
    db.commit()
    db.close()
    lib = Library(tmp_path / "lib", StatsEmbedder())
    with pytest.raises(LibraryError, match="not inside"):
        lib.image(lib.get(entry.id))
    gone = lib.remove(str(entry.id))
    assert [g.id for g in gone] == [entry.id] and len(lib) == 0
    assert victim.read_text() == "keep me"
