"""What a new user hits following the README on the preview profile (issue 13): markup in user text, tracebacks
where one line and exit 2 are promised, `--out` surprises, 80-column tables, `chat -m`, and PNGs that carry their
own recipe so `scenewright run image.png` reproduces them."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import pytest
from PIL import Image
from typer.testing import CliRunner

from agent.cli import app
from agent.store import image_digest

README = Path(__file__).resolve().parents[1] / "README.md"


@pytest.fixture
def cli(tmp_path, monkeypatch):
    monkeypatch.setenv("SCENEWRIGHT_HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()

    def invoke(*args, env=None, input=None):
        return runner.invoke(app, list(args), catch_exceptions=False, env=env, input=input)

    return invoke


def generated(cli, prompt="a red cube left of a blue sphere", *extra) -> dict:
    res = cli("generate", prompt, "--json", *extra)
    assert res.exit_code == 0, res.output
    return json.loads(res.stdout)


# --- 1: user text is never markup --------------------------------------------------------------------------------
def test_markup_in_a_prompt_is_shown_verbatim_everywhere(cli):
    prompt = "a cat [/] on a [bold]mat[/bold]"
    run = generated(cli, prompt)
    for args in (["runs"], ["show", run["run_id"]]):
        res = cli(*args, env={"COLUMNS": "200"})
        assert res.exit_code == 0, res.output
        assert "a cat [/] on a [bold]mat[/bold]" in res.stdout, args
    res = cli("chat", prompt, "-m", "make the cat bigger")
    assert res.exit_code == 0, res.output
    assert "[/]" in res.stdout
    res = cli("chat", "--list", env={"COLUMNS": "200"})
    assert res.exit_code == 0 and "[/]" in res.stdout, res.output


def test_box_notation_survives_in_tables_and_errors(cli, tmp_path):
    res = cli("plan", "a red cube", env={"COLUMNS": "120"})
    assert "[x0, y0, x1, y1]" in res.stdout
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"objects": [{"name": "cube", "description": "a cube", "box": [0.5, 0.5, 0.1, 0.9]}]}))
    res = cli("chat", "--blueprint", str(bad))
    assert res.exit_code == 2 and "[x0, y0, x1, y1]" in res.stderr, res.stderr


# --- 2: a missing extra is one line naming what to install --------------------------------------------------------
@pytest.mark.parametrize("module, args, extra", [
    ("uvicorn", ["serve"], "serve"),
    ("httpx", ["generate", "a cat", "--planner", "vllm-server"], "llm"),
    ("diffusers", ["generate", "a cat", "--profile", "sd15", "--planner", "rule"], "gpu"),
])
def test_a_missing_extra_names_the_install(cli, monkeypatch, module, args, extra, tmp_path):
    monkeypatch.setitem(sys.modules, module, None)  # `import module` now raises ImportError
    res = cli(*args)
    assert res.exit_code == 2, res.output
    assert f"scenewright[{extra}]" in res.stderr and "Traceback" not in res.output
    assert len(res.stderr.strip().splitlines()) == 1, res.stderr
    runs = tmp_path / "home" / "runs"
    for status in runs.glob("*/status.json") if runs.exists() else []:
        assert json.loads(status.read_text())["status"] != "created"  # never left looking alive


def test_an_unknown_planner_is_a_usage_error(cli):
    res = cli("generate", "a cat", "--planner", "foo")
    assert res.exit_code == 2 and "foo" in res.output and "vllm-server" in res.output


def test_distill_checks_its_folder_before_importing_torch(cli, monkeypatch):
    monkeypatch.setitem(sys.modules, "torch", None)
    res = cli("distill", "no-such-folder")
    assert res.exit_code == 2 and "no-such-folder" in res.stderr and "does not exist" in res.stderr


# --- 3: one plan file in batch is one item ------------------------------------------------------------------------
def test_batch_of_one_plan_file_runs_that_plan(cli, tmp_path):
    plan = tmp_path / "plan.json"
    plan.write_text(cli("plan", "a red cube left of a blue sphere", "--json").stdout)
    res = cli("batch", str(plan), "--json")
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["items"] == 1
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    res = cli("batch", str(broken))
    assert res.exit_code == 2 and "broken.json" in res.stderr


# --- 5: `runs` at 80 columns keeps the id whole ------------------------------------------------------------------
def test_runs_at_80_columns_shows_whole_ids_and_zero_cached(cli):
    run = generated(cli, "a yellow boat on a calm sea, " * 5)
    res = cli("runs", env={"COLUMNS": "80"})
    assert res.exit_code == 0
    assert run["run_id"] in res.stdout
    assert max(len(line) for line in res.stdout.splitlines()) <= 80
    row = next(line for line in res.stdout.splitlines() if run["run_id"] in line)
    assert row.split()[:5] == [run["run_id"], "done", "preview", str(run["total_nodes"]), "0"], row  # cached: 0


# --- 6: chat -m goes on after a rejected message; --json is JSON throughout ---------------------------------------
def test_chat_messages_continue_after_a_rejection(cli):
    res = cli("chat", "a black cat next to a wooden bench", "-m", "make the unicorn pink", "-m", "make the cat bigger",
              "--json")
    assert res.exit_code == 2, res.output
    lines = [json.loads(line) for line in res.stdout.splitlines()]
    assert [t["status"] for t in lines] == ["done", "rejected", "done"]
    assert "unicorn" in lines[1]["error"]
    assert len({t["session_id"] for t in lines}) == 1 and lines[0]["session_id"].startswith("s-")


def test_chat_errors_are_json_under_json(cli):
    res = cli("chat", "--session", "s-nonexistent", "--json")
    assert res.exit_code == 2
    assert "error" in json.loads(res.stdout)


def test_readme_chat_blueprint_example_works_with_its_own_plan(cli, tmp_path):
    text = README.read_text()
    plan_line = next(line for line in text.splitlines() if line.startswith("scenewright plan ") and "> plan.json" in line)
    prompt = re.search(r'plan "([^"]+)"', plan_line).group(1)
    (tmp_path / "plan.json").write_text(cli("plan", prompt, "--json").stdout)
    chat_line = next(line for line in text.splitlines() if "chat --blueprint plan.json" in line)
    messages = re.findall(r'-m "([^"]+)"', chat_line)
    assert messages
    args = ["chat", "--blueprint", "plan.json", "--json"]
    for m in messages:
        args += ["-m", m]
    res = cli(*args)
    assert res.exit_code == 0, res.output
    assert all(json.loads(line)["status"] == "done" for line in res.stdout.splitlines())


# --- 7: --out -----------------------------------------------------------------------------------------------------
def test_out_to_a_new_folder_writes_a_unique_file_inside(cli, tmp_path):
    first = generated(cli, "a red cube", "--out", "shots/")
    second = generated(cli, "a red cube", "--seed", "1", "--out", "shots/")
    files = sorted(p.name for p in (tmp_path / "shots").iterdir())
    assert files == sorted([f"{first['run_id']}.png", f"{second['run_id']}.png"])
    assert first["saved"] == str((tmp_path / "shots" / f"{first['run_id']}.png").resolve())
    res = cli("generate", "a red cube", "--out", "shots")  # an existing folder, no slash
    assert res.exit_code == 0 and "saved: " in res.stdout
    assert len(list((tmp_path / "shots").iterdir())) == 3
    dotted = generated(cli, "a red cube", "--out", "v1.d/")  # a folder, whatever its name looks like
    assert (tmp_path / "v1.d" / f"{dotted['run_id']}.png").is_file()


def test_out_into_a_missing_folder_is_refused_before_running(cli, tmp_path):
    res = cli("generate", "a red cube", "--out", str(tmp_path / "nope" / "x.png"))
    assert res.exit_code == 2 and "nope" in res.stderr
    assert not (tmp_path / "nope").exists() and not (tmp_path / "home" / "runs").exists()
    res = cli("generate", "a red cube", "--out", "x.jpg")
    assert res.exit_code == 2 and ".png" in res.stderr


# --- 8: small things ----------------------------------------------------------------------------------------------
def test_version_and_short_help(cli):
    res = cli("--version")
    assert res.exit_code == 0 and re.match(r"scenewright \d+\.\d+", res.stdout)
    res = cli("-h")
    assert res.exit_code == 0 and "generate" in res.stdout
    res = cli("generate", "-h")
    assert res.exit_code == 0 and "--seed" in res.stdout


def test_suite_list_takes_the_folder_as_an_argument(cli, tmp_path):
    run = generated(cli)
    assert cli("suite", "add", run["run_id"], "--suite", "golden", "--name", "cube").exit_code == 0
    for args in (["suite", "list", "golden"], ["suite", "list", "--suite", "golden"]):
        res = cli(*args)
        assert res.exit_code == 0 and res.stdout.startswith("cube"), res.output


def test_show_prints_a_blueprint_summary(cli):
    run = generated(cli, 'a red cube left of a blue sphere, a sign that says "OPEN"')
    res = cli("show", run["run_id"], env={"COLUMNS": "100"})
    assert res.exit_code == 0
    assert '"kind"' not in res.stdout  # no JSON dump
    assert "cube" in res.stdout and "sphere" in res.stdout and "OPEN" in res.stdout
    assert "seed 0" in res.stdout and "preview" in res.stdout


def test_branch_says_how_much_came_from_cache(cli):
    res = cli("chat", "a black cat next to a wooden bench", "--json")
    sid = json.loads(res.stdout.splitlines()[0])["session_id"]
    res = cli("chat", "--session", sid, "--branch", "0")
    assert res.exit_code == 0, res.output
    assert "(0 from cache)" not in res.output


def test_library_remove_names_the_minimum_prefix(cli, tmp_path):
    folder = tmp_path / "imgs"
    folder.mkdir()
    Image.new("RGB", (64, 64), (200, 30, 30)).save(folder / "red.png")
    assert cli("library", "add", str(folder)).exit_code == 0
    res = cli("library", "remove", "ab")
    assert res.exit_code == 2 and "at least 6 hex characters" in res.stderr, res.stderr


# --- 9: one notices channel ---------------------------------------------------------------------------------------
def test_planner_notices_reach_the_cli_json_and_record(cli, monkeypatch):
    """A planner that says what it left out (``plan_with_notices``) is heard on the one notices channel."""
    import agent.api
    from planners.rule_based import RuleBasedPlanner

    class Noisy(RuleBasedPlanner):
        def plan_with_notices(self, prompt, **kw):
            bp, said = super().plan_with_notices(prompt, **kw)
            return bp, said + ["only the first 8000 characters were read"]

    monkeypatch.setattr(agent.api, "build_planner", lambda profile, recorder=None, client=None: Noisy())
    out = generated(cli, "a red cube")
    assert "only the first 8000 characters were read" in out["notices"]
    env = json.loads((Path(out["run_dir"]) / "env.json").read_text())
    assert "only the first 8000 characters were read" in env["notices"]
    res = cli("generate", "a red cube")
    assert "note: only the first 8000 characters were read" in res.stderr
    res = cli("plan", "a red cube")
    assert "note: only the first 8000 characters were read" in res.stderr
    res = cli("runs", "--json")
    shown = cli("show", json.loads(res.stdout)[0]["run_id"])
    assert "note: only the first 8000 characters were read" in shown.stdout
    res = cli("chat", "a red cube", "--json")  # a session's first turn: with its changes
    assert "note: only the first 8000 characters were read" in json.loads(res.stdout)["changes"]


# --- the recipe in the PNG ----------------------------------------------------------------------------------------
def test_png_carries_its_recipe_and_run_reproduces_it(cli, tmp_path):
    out = generated(cli, 'a red cube left of a blue sphere, a sign that says "OPEN"', "--seed", "7",
                    "--out", "cube.png")
    with Image.open(tmp_path / "cube.png") as im:
        recipe = json.loads(im.text["scenewright"])
        assert "Seed: 7" in im.text["parameters"]
    assert recipe["run_id"] == out["run_id"] and recipe["seed"] == 7 and recipe["profile"] == "preview"
    assert recipe["blueprint"]["objects"] and recipe["graph"]["nodes"]
    again = json.loads(cli("run", "cube.png", "--json").stdout)
    assert again["run_id"] != out["run_id"]
    assert again["cached_nodes"] == again["total_nodes"]  # the same graph: everything from the cache
    with Image.open(again["image"]) as a, Image.open(out["image"]) as b:
        assert image_digest(a) == image_digest(b)
    res = cli("chat", "--blueprint", "cube.png", "-m", "make the cube bigger", "--json")  # continue it
    assert res.exit_code == 0, res.output


def test_a_png_without_a_recipe_is_one_line(cli, tmp_path):
    Image.new("RGB", (8, 8)).save(tmp_path / "plain.png")
    res = cli("run", "plain.png")
    assert res.exit_code == 2 and "recipe" in res.stderr and "Traceback" not in res.output


# --- 11: /docs works offline --------------------------------------------------------------------------------------
def test_docs_page_loads_swagger_from_this_server(tmp_path):
    from fastapi.testclient import TestClient

    from agent.api import Engine
    from agent.server import create_app

    with TestClient(create_app(Engine("preview", home=tmp_path / "home")), base_url="http://127.0.0.1:8765") as c:
        page = c.get("/docs")
        assert page.status_code == 200
        assert "cdn." not in page.text and "https://" not in page.text, page.text
        for src in re.findall(r"(?:src|href)=['\"](/[^'\"]+)['\"]", page.text):
            asset = c.get(src)
            assert asset.status_code == 200 and len(asset.content) > 500, src
        assert c.get("/web/swagger/swagger-ui-bundle.js").text.lstrip().startswith("/*")
        assert c.get("/web/swagger/..%2Fsecret").status_code == 404
        assert c.get("/redoc").status_code == 404


def test_chat_list_at_80_columns_shows_whole_session_ids(cli):
    res = cli("chat", "a black cat next to a wooden bench under a street lamp in a quiet park at night", "--json")
    sid = json.loads(res.stdout.splitlines()[0])["session_id"]
    listed = cli("chat", "--list", env={"COLUMNS": "80"})
    assert sid in listed.stdout and max(len(line) for line in listed.stdout.splitlines()) <= 80


def test_a_repaint_png_carries_its_best_rounds_blueprint(cli, tmp_path):
    generated(cli, "a red cube left of a blue sphere", "--out", "cube.png")
    res = cli("repaint", "cube.png", "--rounds", "1", "--variants", "1", "--out", "again.png", "--json")
    assert res.exit_code == 0, res.output
    run_id = json.loads(res.stdout)["run_id"]
    with Image.open(tmp_path / "again.png") as im:
        recipe = json.loads(im.text["scenewright"])
    assert recipe["kind"] == "repaint" and recipe["run_id"] == run_id
    assert recipe["blueprint"]["objects"] and recipe["graph"]["nodes"]
    assert cli("run", "again.png", "--json").exit_code == 0


@pytest.mark.parametrize("text, compress, says", [
    ("{not json", False, "not valid JSON"),
    (json.dumps({"seed": 1}), False, "neither a blueprint nor a graph"),
    ("x" * (9 * 1024 * 1024), True, "larger than"),  # inflates past the cap: refused, not read into memory
])
def test_a_damaged_recipe_is_one_line(cli, tmp_path, text, compress, says):
    from agent.png_recipe import PNG_MAGIC, _itxt

    Image.new("RGB", (8, 8)).save(tmp_path / "plain.png")
    data = (tmp_path / "plain.png").read_bytes()
    (tmp_path / "bad.png").write_bytes(PNG_MAGIC + data[8:33] + _itxt("scenewright", text, compress) + data[33:])
    res = cli("run", "bad.png")
    assert res.exit_code == 2 and says in res.stderr and "Traceback" not in res.output, res.output
    (tmp_path / "cut.png").write_bytes(data[:20])
    res = cli("run", "cut.png")
    assert res.exit_code == 2 and "cut.png" in res.stderr


def test_the_recipe_is_spliced_in_without_reencoding(cli, tmp_path):
    out = generated(cli, "a red cube", "--out", "cube.png")
    sha = json.loads((Path(out["run_dir"]) / "result.json").read_text())["image_sha256"]
    home = tmp_path / "home"
    stored = next(home.glob(f"artifacts/*/{sha}.png")).read_bytes()
    written = (tmp_path / "cube.png").read_bytes()
    idat = lambda b: b[b.index(b"IDAT") - 4:]  # noqa: E731  (the image data and everything after it)
    assert idat(written) == idat(stored)


def test_show_of_a_damaged_blueprint_says_so(cli):
    run = generated(cli)
    (Path(run["run_dir"]) / "blueprint.json").write_text('{"objects": "nope"}')
    res = cli("show", run["run_id"])
    assert res.exit_code == 0 and "blueprint.json is damaged" in res.stdout
