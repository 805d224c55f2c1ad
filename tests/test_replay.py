"""Regression replay: an unchanged run matches; a changed tool (behaviour or version) is named, exit 1."""

from __future__ import annotations

import json
import shutil
import xml.etree.ElementTree as ET

import numpy as np
import pytest
from typer.testing import CliRunner

import tools.preview as preview
from agent.api import Engine
from agent.cli import app
from agent.replay import Tolerances, psnr, replay, ssim, suite_add
from agent.sessions import Sessions
from agent.store import Store
from tests.chat_fixtures import scene_blueprint


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("SCENEWRIGHT_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


@pytest.fixture
def recorded(home):
    outcome = Engine("preview", home=home).run_blueprint(scene_blueprint())
    assert outcome.ok
    return outcome.run_id


def cli(*args):
    return CliRunner().invoke(app, list(args), catch_exceptions=False)


def change_composite(monkeypatch):
    """A deliberate behaviour change in one tool, version unchanged: one pixel of every composite turns red."""
    original = preview.PreviewComposite.one

    def one(self, inp):
        out = original(self, inp)
        out.image.putpixel((0, 0), (255, 0, 0))
        return out

    monkeypatch.setattr(preview.PreviewComposite, "one", one)


def test_unchanged_run_replays_clean(recorded, tmp_path):
    res = cli("replay", recorded, "--junit", str(tmp_path / "r.xml"), "--html", str(tmp_path / "r.html"))
    assert res.exit_code == 0, res.output
    assert "PASS" in res.stdout and "1/1 match" in res.stdout
    suite = ET.parse(tmp_path / "r.xml").getroot().find("testsuite")
    assert suite.get("failures") == "0" and suite.get("tests") == "1"


def test_changed_tool_behaviour_is_reported_at_its_node(recorded, tmp_path, monkeypatch):
    change_composite(monkeypatch)
    res = cli("replay", recorded, "--junit", str(tmp_path / "r.xml"), "--html", str(tmp_path / "r.html"), "--json")
    assert res.exit_code == 1, res.output
    report = json.loads(res.stdout)
    first = report["cases"][0]["first"]
    assert first["node"] == "compose" and first["tool"] == "composite" and not first["downstream"]
    nodes = {d["node"]: d for d in report["cases"][0]["diffs"]}
    assert nodes["text"]["downstream"]  # text is drawn on the composite: a consequence, not a cause
    assert "scene" not in nodes and not any(n.startswith("check.") for n in nodes)
    failure = ET.parse(tmp_path / "r.xml").getroot().find("testsuite/testcase/failure")
    assert "compose" in failure.get("message")
    page = (tmp_path / "r.html").read_text()
    assert "compose" in page and page.count("data:image/png;base64,") >= 3  # recorded, new, difference


def test_changed_tool_version_is_reported(recorded, monkeypatch):
    monkeypatch.setattr(preview.PreviewComposite, "version", "preview-2")
    res = cli("replay", recorded)
    assert res.exit_code == 1
    assert "node 'compose' (composite): tool version changed preview-1 → preview-2" in res.stdout


def test_replay_leaves_the_cache_alone(recorded, home, monkeypatch):
    change_composite(monkeypatch)
    assert replay(recorded, store=Store(home)).exit_code == 1
    monkeypatch.undo()
    again = Engine("preview", home=home).run_blueprint(scene_blueprint())  # fully cached, and still right
    assert again.cached_nodes == again.total_nodes
    assert replay(again.run_id, store=Store(home)).ok


def test_suite_is_self_contained(recorded, tmp_path, monkeypatch):
    suite = tmp_path / "repo" / "golden"
    res = cli("suite", "add", recorded, "--suite", str(suite), "--name", "cat-bench")
    assert res.exit_code == 0, res.output
    case = suite / "cases" / "cat-bench"
    assert (suite / "suite.toml").exists() and (case / "graph.json").exists()
    assert len(list((case / "artifacts").glob("*.png"))) >= 2  # scene (= compose here) and text
    assert cli("suite", "add", recorded, "--suite", str(suite), "--name", "cat-bench").exit_code == 2  # exists
    # a fresh machine: an empty store, only the suite folder
    monkeypatch.setenv("SCENEWRIGHT_HOME", str(tmp_path / "fresh"))
    assert cli("replay", str(suite)).exit_code == 0
    change_composite(monkeypatch)
    res = cli("replay", str(suite))
    assert res.exit_code == 1 and "compose" in res.stdout


def test_suite_tolerances_for_non_deterministic_tools(recorded, tmp_path, monkeypatch):
    suite = tmp_path / "golden"
    suite_add(recorded, suite, store=Store(tmp_path / "home"))
    change_composite(monkeypatch)  # one pixel: PSNR ≈ 57 dB
    monkeypatch.setattr(preview.PreviewComposite, "deterministic", False)
    monkeypatch.setattr(preview.PreviewRenderText, "deterministic", False)
    assert replay(suite).ok  # within the default 40 dB / SSIM 0.98
    (suite / "suite.toml").write_text("[tolerances]\npsnr_min = 80.0\n")
    report = replay(suite)
    assert not report.ok and "PSNR" in report.cases[0].first.reason
    (suite / "suite.toml").write_text("[tolerances]\npsnr_min = 'high'\n")
    assert cli("replay", str(suite)).exit_code == 2


def test_chat_session_runs_replay(home):
    s = Sessions(Engine("preview", home=home)).create(blueprint=scene_blueprint())
    t = s.send("make the cat red")
    u = s.send("warmer light")
    for run_id in (t.run_id, u.run_id):
        assert cli("replay", run_id).exit_code == 0


def test_bad_input_exits_2(home, tmp_path, recorded):
    assert cli("replay", "no-such-run").exit_code == 2
    (tmp_path / "empty").mkdir()
    assert cli("replay", str(tmp_path / "empty")).exit_code == 2
    broken = tmp_path / "broken"
    shutil.copytree(home / "runs" / recorded, broken)
    (broken / "graph.json").write_text("{ nope")
    res = cli("replay", str(broken))
    assert res.exit_code == 2 and "Traceback" not in res.output
    unfinished = tmp_path / "unfinished"
    shutil.copytree(home / "runs" / recorded, unfinished)
    (unfinished / "status.json").write_text('{"status": "running"}')
    assert cli("replay", str(unfinished)).exit_code == 2
    assert cli("suite", "add", "no-such-run").exit_code == 2


def test_image_metrics():
    rng = np.random.default_rng(0)
    a = rng.integers(0, 256, (64, 64, 3)).astype(np.uint8)
    assert psnr(a, a) == float("inf") and ssim(a, a) == pytest.approx(1.0)
    b = np.clip(a.astype(int) + rng.integers(-20, 21, a.shape), 0, 255).astype(np.uint8)
    assert 20 < psnr(a, b) < 40 and ssim(a, b) < 0.99
    assert Tolerances().psnr_min == 40.0


def test_prompt_run_replans_and_recompiles(home, monkeypatch):
    outcome = Engine("preview", home=home).generate(
        'Three red apples on a wooden table to the left of a blue vase. A sign above the vase says "FRESH".', seed=2
    )
    assert cli("replay", outcome.run_id).exit_code == 0
    from planners.rule_based import RuleBasedPlanner

    original = RuleBasedPlanner.plan

    def plan(self, prompt, **kw):  # a planner change: every plan now asks for a sketch
        return original(self, prompt, **kw).model_copy(update={"style": "sketch"})

    monkeypatch.setattr(RuleBasedPlanner, "plan", plan)
    res = cli("replay", outcome.run_id, "--json")
    assert res.exit_code == 1
    first = json.loads(res.stdout)["cases"][0]["first"]
    assert first["node"] == "<plan>" and "style" in first["reason"]


def test_clip_similarity_where_available(tmp_path):
    pytest.importorskip("transformers")
    from PIL import Image

    from agent.replay import clip_similarity
    from tests.tiny_models import build_clip

    model, proc = build_clip()
    model.save_pretrained(tmp_path / "clip")
    proc.save_pretrained(tmp_path / "clip")
    a = Image.new("RGB", (64, 64), (200, 30, 30))
    assert clip_similarity(a, a, str(tmp_path / "clip")) == pytest.approx(1.0, abs=1e-4)
    assert clip_similarity(a, a, str(tmp_path / "missing")) is None  # offline and absent: a note, not a failure


# --- runs a user actually makes: other canvas sizes, repaint, a critique whose VLM is gone -------------------------
def test_a_256px_prompt_run_replays_clean(home, tmp_path, monkeypatch):
    """Replay re-plans on the run's canvas: a 256-px profile (every sdxl run is 1024) is no false regression."""
    config = tmp_path / "p.toml"
    config.write_text('[profiles.small]\nbackend = "preview"\nwidth = 256\nheight = 256\n')
    monkeypatch.setenv("SCENEWRIGHT_CONFIG", str(config))
    r = cli("generate", "a red cube left of a blue sphere", "--profile", "small", "--config", str(config), "--json")
    assert r.exit_code == 0, r.output
    run_id = json.loads(r.stdout)["run_id"]
    assert json.loads((home / "runs" / run_id / "blueprint.json").read_text())["canvas"] == {"width": 256, "height": 256}
    rep = cli("replay", run_id, "--json")
    assert rep.exit_code == 0, rep.output
    assert json.loads(rep.stdout)["cases"][0]["compared"] > 0


def test_a_repaint_run_replays_round_by_round(home, tmp_path):
    ref = tmp_path / "ref.png"
    assert cli("generate", "a red apple left of a blue vase", "--out", str(ref)).exit_code == 0
    r = cli("repaint", str(ref), "--rounds", "2", "--variants", "2", "--json")
    assert r.exit_code == 0, r.output
    run_id = json.loads(r.stdout)["run_id"]
    rep = cli("replay", run_id, "--json")
    assert rep.exit_code == 0, rep.output
    case = json.loads(rep.stdout)["cases"][0]
    assert case["status"] == "pass" and case["compared"] >= 3  # describe, then each round's nodes


def test_a_repaint_run_reports_a_changed_tool_with_its_round(home, tmp_path, monkeypatch):
    ref = tmp_path / "ref.png"
    assert cli("generate", "a red apple left of a blue vase", "--out", str(ref)).exit_code == 0
    r = cli("repaint", str(ref), "--rounds", "1", "--variants", "1", "--json")
    run_id = json.loads(r.stdout)["run_id"]
    change_composite(monkeypatch)
    rep = cli("replay", run_id, "--json")
    assert rep.exit_code == 1
    first = json.loads(rep.stdout)["cases"][0]["first"]
    assert first["node"].startswith("r1/") and first["tool"] == "composite"


class _VLMServer:
    """A loopback OpenAI-compatible server that answers every chat completion with one critique."""

    ANSWER = {"score": 0.4, "global_edits": [{"aspect": "lighting", "edit": "warmer light", "reason": "cold"}],
              "box_edits": []}

    def __init__(self):
        import http.server
        import threading

        answer = json.dumps(self.ANSWER)
        self.calls = 0
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - http.server's naming
                self.rfile.read(int(self.headers.get("content-length", 0)))
                server.calls += 1
                body = json.dumps({"choices": [{"index": 0, "finish_reason": "stop",
                                                "message": {"content": answer}}]}).encode()
                self.send_response(200)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *a):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()


def test_a_critique_run_replays_from_its_recording_with_the_vlm_gone(home, tmp_path, monkeypatch):
    server = _VLMServer()
    config = tmp_path / "p.toml"
    config.write_text(f'[profiles.critic]\nbackend = "preview"\n'
                      f'vlm = {{ kind = "vllm-server", url = "{server.url}", model = "tiny-vlm", repairs = 0 }}\n')
    monkeypatch.setenv("SCENEWRIGHT_CONFIG", str(config))
    try:
        r = cli("generate", "a red apple on a red table, red wall", "--profile", "critic", "--config", str(config),
                "--critique", "--critique-rounds", "2", "--json")
        assert r.exit_code == 0, r.output
        assert server.calls >= 1
    finally:
        server.stop()  # from here on, a live VLM call would fail
    run_id = json.loads(r.stdout)["run_id"]
    rows = [json.loads(line) for line in (home / "runs" / run_id / "llm.jsonl").read_text().splitlines()]
    sent = rows[0]["request"]["sent"]
    assert sent["response_format"]["type"] == "json_schema" and sent["endpoint"] == "POST /chat/completions"
    rep = cli("replay", run_id, "--json")
    assert rep.exit_code == 0, rep.output
    case = json.loads(rep.stdout)["cases"][0]
    assert case["status"] == "pass" and case["compared"] > 0
