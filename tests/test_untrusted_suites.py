"""A suite is someone else's files: it replays inside its folder, on the local profile, and fails loudly."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import shutil
import socket
import threading

import pytest
from PIL import Image
from typer.testing import CliRunner

import tools.preview as preview
from agent.api import Engine
from agent.cli import app
from agent.graph import Graph
from agent.replay import replay, suite_add
from agent.store import Store, image_digest
from tests.chat_fixtures import scene_blueprint


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("SCENEWRIGHT_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


@pytest.fixture
def case(home, tmp_path):
    """A pinned golden case of the shared scene."""
    outcome = Engine("preview", home=home).run_blueprint(scene_blueprint())
    return suite_add(outcome.run_id, tmp_path / "suite", store=Store(home), name="scene")


def cli(*args):
    return CliRunner().invoke(app, list(args), catch_exceptions=False)


def _secret_png(path) -> bytes:
    img = Image.new("RGB", (16, 16), (1, 2, 3))
    img.save(path)
    return path.read_bytes()


def _rewrite_events(case, fn) -> None:
    rows = [json.loads(line) for line in (case / "events.jsonl").read_text().splitlines()]
    (case / "events.jsonl").write_text("".join(json.dumps(r) + "\n" for r in fn(rows)))


def test_artifact_names_are_hashes_only(case, tmp_path):
    _secret_png(tmp_path / "secret.png")

    def point_out(rows):
        for r in rows:
            if r.get("node") == "compose" and "outputs" in r:
                r["outputs"]["image"]["$artifact"] = "../../../../secret"
        return rows

    _rewrite_events(case, point_out)
    res = cli("replay", str(case.parent.parent), "--html", str(tmp_path / "r.html"))
    assert res.exit_code == 2 and "not a sha256" in res.output and "Traceback" not in res.output
    page = (tmp_path / "r.html").read_text()
    thumb = io.BytesIO()
    Image.new("RGB", (16, 16), (1, 2, 3)).save(thumb, format="PNG")
    assert "data:image/png" not in page and base64.b64encode(thumb.getvalue()).decode()[:40] not in page


def _compose_sha(case) -> str:
    rows = [json.loads(line) for line in (case / "events.jsonl").read_text().splitlines()]
    return next(r["outputs"]["image"]["$artifact"] for r in rows if r.get("node") == "compose" and "outputs" in r)


def _change_composite(monkeypatch):
    original = preview.PreviewComposite.one

    def one(self, inp):
        out = original(self, inp)
        out.image.putpixel((0, 0), (255, 0, 0))
        return out

    monkeypatch.setattr(preview.PreviewComposite, "one", one)


def test_swapped_or_linked_suite_image_is_refused(case, tmp_path, monkeypatch):
    """Where a recorded image is shown (a divergence), it must be the recorded one."""
    _change_composite(monkeypatch)
    image = case / "artifacts" / f"{_compose_sha(case)}.png"
    Image.new("RGB", (512, 512), (0, 255, 0)).save(image)  # other pixels under the same name
    res = cli("replay", str(case), "--html", str(tmp_path / "r.html"))
    assert res.exit_code == 2 and "other pixels" in res.output
    image.unlink()
    _secret_png(tmp_path / "secret.png")
    image.symlink_to(tmp_path / "secret.png")
    res = cli("replay", str(case))
    assert res.exit_code == 2 and "regular file" in res.output


def test_case_folder_symlinked_out_of_the_suite_is_refused(case, tmp_path):
    outside = tmp_path / "elsewhere"
    shutil.move(str(case), outside)
    case.symlink_to(outside, target_is_directory=True)
    res = cli("replay", str(case.parent.parent))
    assert res.exit_code == 2 and "outside" in res.output


def _graph_case(home, tmp_path, image_path):
    """A run of a load_image graph (as `scenewright run graph.json` makes), pinned."""
    sha = hashlib.sha256(image_path.read_bytes()).hexdigest()
    graph = Graph.model_validate({"seed": 0, "output": "ref.image", "nodes": [
        {"id": "ref", "tool": "load_image", "inputs": {"path": str(image_path), "sha256": sha}}]})
    outcome = Engine("preview", home=home).run_graph(graph)
    assert outcome.ok
    return suite_add(outcome.run_id, tmp_path / "gsuite", store=Store(home), name="g"), sha


def test_load_image_reads_its_pinned_copy_never_outside(home, tmp_path, monkeypatch):
    src = tmp_path / "ref.png"
    Image.new("RGB", (32, 32), (200, 10, 10)).save(src)
    case, sha = _graph_case(home, tmp_path, src)
    assert (case / "inputs" / f"{sha}.png").read_bytes() == src.read_bytes()
    src.unlink()  # another machine: only the suite
    monkeypatch.setenv("SCENEWRIGHT_HOME", str(tmp_path / "fresh"))
    assert cli("replay", str(case)).exit_code == 0
    # a hostile graph names a file outside the case, with no pinned copy
    secret = tmp_path / "secret.png"
    _secret_png(secret)
    graph = json.loads((case / "graph.json").read_text())
    graph["nodes"][0]["inputs"] = {"path": str(secret), "sha256": hashlib.sha256(secret.read_bytes()).hexdigest()}
    (case / "graph.json").write_text(json.dumps(graph))
    res = cli("replay", str(case))
    assert res.exit_code == 2 and "outside" in res.output
    graph["nodes"][0]["inputs"]["path"] = "../../../secret.png"
    (case / "graph.json").write_text(json.dumps(graph))
    assert cli("replay", str(case)).exit_code == 2


def _load_graph(path, sha) -> Graph:
    return Graph.model_validate({"seed": 0, "output": "ref.image", "nodes": [
        {"id": "ref", "tool": "load_image", "inputs": {"path": str(path), "sha256": sha}}]})


def test_load_image_cache_follows_the_content(home, tmp_path):
    src = tmp_path / "ref.png"
    Image.new("RGB", (32, 32), (200, 10, 10)).save(src)
    red = hashlib.sha256(src.read_bytes()).hexdigest()
    engine = Engine("preview", home=home)
    first = engine.run_graph(_load_graph(src, red))
    Image.new("RGB", (32, 32), (10, 200, 10)).save(src)  # the file changes under the same path
    green = hashlib.sha256(src.read_bytes()).hexdigest()
    second = engine.run_graph(_load_graph(src, green))
    assert second.ok and second.cached_nodes == 0  # a new key: never the stale red image
    with Image.open(second.image) as im:
        assert im.convert("RGB").getpixel((0, 0)) == (10, 200, 10)
    assert first.image != second.image
    stale = Engine("preview", home=tmp_path / "other").run_graph(_load_graph(src, red))
    assert not stale.ok and "changed since it was planned" in next(iter(stale.failed.values()))
    no_sha = {"seed": 0, "output": "ref.image", "nodes": [{"id": "ref", "tool": "load_image", "inputs": {"path": str(src)}}]}
    (tmp_path / "g.json").write_text(json.dumps(no_sha))
    res = cli("run", str(tmp_path / "g.json"))
    assert res.exit_code == 2 and "sha256" in res.output and "Traceback" not in res.output


class _Listener:
    """A TCP port that counts who connects (and closes on them)."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.connections = 0
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.connections += 1
            conn.close()


def test_replay_never_contacts_the_suites_endpoints(home, tmp_path):
    src = tmp_path / "ref.png"
    Image.new("RGB", (64, 64), (200, 10, 10)).save(src)
    sha = hashlib.sha256(src.read_bytes()).hexdigest()
    graph = Graph.model_validate({"seed": 0, "output": "describe.description", "nodes": [  # a VLM role
        {"id": "ref", "tool": "load_image", "inputs": {"path": str(src), "sha256": sha}},
        {"id": "describe", "tool": "describe_image", "inputs": {"image": {"ref": "ref.image"}}}]})
    outcome = Engine("preview", home=home).run_graph(graph)
    assert outcome.ok
    case = suite_add(outcome.run_id, tmp_path / "suite", store=Store(home), name="described")
    listener = _Listener()
    env = json.loads((case / "env.json").read_text())
    url = f"http://127.0.0.1:{listener.port}/v1"
    env["profile"]["vlm"] = {"kind": "vllm-server", "model": "m", "url": url, "api_key": "sk-suite"}
    env["profile"]["planner"] = {"kind": "vllm-server", "model": "m", "url": url, "api_key": "sk-suite"}
    (case / "env.json").write_text(json.dumps(env))
    res = cli("replay", str(case))
    assert res.exit_code == 0, res.output
    assert listener.connections == 0
    listener.sock.close()


def test_a_node_that_fails_on_replay_is_a_failure(case, monkeypatch):
    """Even where the recording does not mention the node (a suite edited to drop it)."""
    _rewrite_events(case, lambda rows: [r for r in rows if r.get("node") != "text"])

    def broken(self, inp):
        raise RuntimeError("font cache is gone")

    monkeypatch.setattr(preview.PreviewRenderText, "one", broken)
    res = cli("replay", str(case))
    assert res.exit_code == 1 and "failed on replay" in res.output and "PASS" not in res.output


@pytest.mark.parametrize("name,content", [
    ("request.json", b"[1, 2]"),
    ("request.json", b"\xff\xfe\x00garbage"),
    ("status.json", b'"done"'),
    ("env.json", b"{" * 100000),
    ("events.jsonl", b"\xff\xfe garbage\n"),
    ("graph.json", b'{"seed": ' + b"9" * 5000 + b"}"),
])
def test_garbled_suite_files_are_one_line(case, name, content):
    (case / name).write_bytes(content)
    res = cli("replay", str(case))
    assert res.exit_code == 2 and "Traceback" not in res.output, res.output
    assert name in res.output or "damaged" in res.output or "not valid" in res.output


def test_events_lines_that_are_not_objects_are_skipped(case):
    with open(case / "events.jsonl", "a") as fh:
        fh.write("5\n[1]\nnull\n")
    assert cli("replay", str(case)).exit_code == 0


def test_recorded_images_are_checked_against_their_names(case):
    for p in (case / "artifacts").glob("*.png"):
        with Image.open(p) as im:
            assert image_digest(im.convert("RGB")) == p.stem
