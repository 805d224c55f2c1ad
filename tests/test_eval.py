"""``scenewright eval``: GenEval's rules, the suites, planted cases with a fixed fake detector, resuming, the
report, and the real detector path on a tiny random OWL-ViT loaded through ``from_pretrained``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from agent.api import Engine, UserError
from agent.cli import app
from agent.eval import Evaluation, Seen, build_scorers, relative_position, score_case
from agent.eval_report import table
from agent.eval_suites import Case, lmd_suite, load_suite, write_jsonl
from tests.tiny_models import build_tiny_owl
from tools.detector import Found

DATA = Path(__file__).parent / "data"
GENEVAL = DATA / "eval_geneval_tiny.jsonl"


def case(**kw) -> Case:
    return Case.model_validate({"id": "c", "tag": "t", "prompt": "p", **kw})


# -- GenEval's rules -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        ((0.0, 0.4, 0.2, 0.6), (0.6, 0.4, 0.8, 0.6), {"left of"}),
        ((0.6, 0.4, 0.8, 0.6), (0.0, 0.4, 0.2, 0.6), {"right of"}),
        ((0.4, 0.0, 0.6, 0.2), (0.4, 0.7, 0.6, 0.9), {"above"}),
        ((0.0, 0.0, 0.2, 0.2), (0.25, 0.7, 0.45, 0.9), {"above"}),  # mostly vertical: not "left of"
        ((0.0, 0.0, 0.2, 0.2), (0.7, 0.7, 0.9, 0.9), {"left of", "above"}),  # diagonal: both
        ((0.3, 0.3, 0.6, 0.6), (0.35, 0.3, 0.65, 0.6), set()),  # within the margin: no relation
    ],
)
def test_relative_position_is_genevals_rule(a, b, expected):
    assert relative_position(a, b) == expected


def test_include_exclude_colour_position_and_text_clauses():
    c = case(include=[{"class": "dog", "count": 2}, {"class": "cat", "position": ["right of", 0], "color": "red"}],
             exclude=[{"class": "dog", "count": 3}], texts=["OPEN"])
    dogs = [Seen((0.0, 0.4, 0.2, 0.6), 0.9), Seen((0.0, 0.1, 0.2, 0.3), 0.8)]
    cat = [Seen((0.7, 0.3, 0.9, 0.5), 0.9, "red")]

    def colours(cls, things):
        return [s.colour for s in things]

    def exact(t, read):
        return t in read

    ok, clauses = score_case(c, {"dog": dogs, "cat": cat}, ["OPEN"], colours, exact)
    assert ok is True and all(r.passed for r in clauses)
    ok, clauses = score_case(c, {"dog": dogs + [Seen((0.3, 0.8, 0.4, 0.9), 0.5)], "cat": cat}, ["OPEN"], colours, exact)
    assert ok is False and [r.kind for r in clauses if not r.passed] == ["exclude"]
    blue = [Seen((0.7, 0.3, 0.9, 0.5), 0.9, "blue")]
    ok, clauses = score_case(c, {"dog": dogs, "cat": blue}, ["OPN"], colours, exact)
    assert ok is False and [r.kind for r in clauses if not r.passed] == ["include", "text"]
    left = [Seen((0.0, 0.7, 0.1, 0.8), 0.9, "red")]  # below-left of the dogs: not right of them
    ok, clauses = score_case(c, {"dog": dogs, "cat": left}, ["OPEN"], colours, exact)
    assert ok is False and "expected cat right of target" in clauses[1].reason
    ok, clauses = score_case(c, {"dog": dogs, "cat": cat}, None, lambda cls, t: None, exact)
    assert ok is None and [r.passed for r in clauses if r.passed is None] == [None, None]  # colour and text


# -- suites ----------------------------------------------------------------------------------------------------


def test_geneval_file_and_round_trip(tmp_path):
    cases = load_suite(GENEVAL)
    assert [c.id for c in cases][:2] == ["00000", "00001"] and cases[6].include[1].position == ("right of", 0)
    write_jsonl(cases, tmp_path / "again.jsonl")
    assert load_suite(tmp_path / "again.jsonl") == cases


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("{not json", "not valid JSON"),
        ('["a"]', "must be a JSON object"),
        ('{"tag": "x", "prompt": "p", "include": [{"class": "cat", "count": 0}]}', "include.0.count"),
        ('{"tag": "x", "prompt": "p", "include": [{"class": "cat", "position": ["left of", 0]}]}', "not another"),
        ('{"tag": "x", "prompt": "p", "include": [], "weights": 1}', "unknown field"),
        ('{"prompt": "p", "objects": {"cat": "two"}}', "whole count"),
        ('{"prompt": "p", "objects": {"cat": 1}, "relations": [["cat", "near", "dog"]]}', "not one of"),
    ],
)
def test_bad_suite_lines_name_the_line(tmp_path, line, message):
    path = tmp_path / "suite.jsonl"
    path.write_text('{"tag": "x", "prompt": "ok", "include": [{"class": "cat"}]}\n' + line + "\n"
                    if "objects" not in line else line + "\n")
    with pytest.raises(UserError, match=message) as info:
        load_suite(path)
    assert str(path) in str(info.value) and "\n" not in str(info.value)


def test_objects_jsonl_becomes_exact_counts_and_positions(tmp_path):
    path = tmp_path / "mine.jsonl"
    path.write_text(json.dumps({"prompt": "two cats left of a dog", "objects": {"cat": 2, "dog": 1},
                                "relations": [["cat", "left", "dog"]], "texts": ["HI"]}) + "\n")
    (c,) = load_suite(path)
    assert [(x.cls, x.count, x.position) for x in c.include] == [("cat", 2, None), ("dog", 1, None),
                                                                 ("cat", 2, ("left of", 1))]
    assert [(x.cls, x.count) for x in c.exclude] == [("cat", 3), ("dog", 2)] and c.tag == "position"


def test_lmd_suite_is_deterministic_and_has_four_categories():
    a, b = lmd_suite(per_category=4, seed=1), lmd_suite(per_category=4, seed=1)
    assert a == b and a != lmd_suite(per_category=4, seed=2)
    assert [c.tag for c in a] == ["negation"] * 4 + ["numeracy"] * 4 + ["attribution"] * 4 + ["spatial"] * 4
    num = a[4]
    assert num.exclude[0].count == num.include[0].count + 1


# -- plans alone -----------------------------------------------------------------------------------------------


def test_plans_only_on_the_geneval_file_gives_the_known_score(tmp_path):
    summary = Evaluation(Engine("preview", home=tmp_path / "home"), load_suite(GENEVAL), tmp_path / "out",
                         plans_only=True).run()
    # the file plants one failure in single_object (teapot asked, lamp checked), counting (four cups, fewer
    # than four allowed) and position (a bottle below the kite, checked above)
    scores = {tag: c["score"] for tag, c in summary["categories"].items()}
    assert scores == {"single_object": 0.5, "two_object": 1.0, "counting": 0.5, "colors": 1.0, "position": 0.5,
                      "color_attr": 1.0}
    assert summary["overall"] == pytest.approx(0.75)
    saved = json.loads((tmp_path / "out" / "eval.json").read_text())
    assert saved["overall"] == pytest.approx(0.75) and saved["settings"]["mode"] == "plans"
    assert all(len(line) <= 80 for line in table(summary).splitlines())


# -- images, with a fixed fake detector ------------------------------------------------------------------------


class FakeDetector:
    """Answers from a table by label; the same for every image (that is the point: a known score)."""

    def __init__(self, table: dict[str, list[Found]]):
        self.table = table
        self.calls = 0

    def identity(self) -> dict:
        return {"model": "fake"}

    def detect(self, image, labels):
        self.calls += 1
        return {label: list(self.table.get(label, [])) for label in labels}


class FakeColours:
    def identity(self) -> dict:
        return {"model": "fake-colours"}

    def colours_of(self, image, boxes, noun):
        return ["red" if b[0] < 0.5 else "blue" for b in boxes]


PLANTED = [
    {"id": "one-cat", "tag": "objects", "prompt": "a cat", "include": [{"class": "cat"}]},
    {"id": "two-dogs", "tag": "counting", "prompt": "two dogs", "include": [{"class": "dog", "count": 2}],
     "exclude": [{"class": "dog", "count": 3}]},
    {"id": "three-dogs", "tag": "counting", "prompt": "three dogs", "include": [{"class": "dog", "count": 3}]},
    {"id": "no-bird", "tag": "negation", "prompt": "a cat and no birds", "include": [{"class": "cat"}],
     "exclude": [{"class": "bird", "count": 1}]},
    {"id": "red-cat", "tag": "colour", "prompt": "a red cat", "include": [{"class": "cat", "color": "red"}]},
    {"id": "blue-cat", "tag": "colour", "prompt": "a blue cat", "include": [{"class": "cat", "color": "blue"}]},
    {"id": "cat-left", "tag": "position", "prompt": "a cat left of a dog",
     "include": [{"class": "dog"}, {"class": "cat", "position": ["left of", 0]}]},
    {"id": "cat-right", "tag": "position", "prompt": "a cat right of a dog",
     "include": [{"class": "dog"}, {"class": "cat", "position": ["right of", 0]}]},
]
DETECTIONS = {
    "cat": [Found((0.05, 0.4, 0.25, 0.6), 0.9)],
    "dog": [Found((0.6, 0.4, 0.8, 0.6), 0.8), Found((0.7, 0.1, 0.9, 0.3), 0.7)],
    "bird": [],
}


def planted() -> list[Case]:
    return [Case.model_validate(c) for c in PLANTED]


def test_planted_cases_with_a_fixed_detector_give_the_known_score(tmp_path):
    engine = Engine("preview", home=tmp_path / "home")
    det = FakeDetector(DETECTIONS)
    summary = Evaluation(engine, planted(), tmp_path / "out", detector=det, colours=FakeColours()).run()
    got = {r["id"]: r["correct"] for r in summary["results"]}
    assert got == {"one-cat": True, "two-dogs": True, "three-dogs": False, "no-bird": True, "red-cat": True,
                   "blue-cat": False, "cat-left": True, "cat-right": False}
    assert {t: c["score"] for t, c in summary["categories"].items()} == {
        "objects": 1.0, "counting": 0.5, "negation": 1.0, "colour": 0.5, "position": 0.5}
    assert summary["overall"] == pytest.approx(0.7)
    html = (tmp_path / "out" / "report.html").read_text()
    assert html.count("class='case'") == 8 and (tmp_path / "out" / "pictures" / "cat-left.png").exists()


def test_without_a_colour_model_colour_clauses_are_unjudged_not_guessed(tmp_path):
    summary = Evaluation(Engine("preview", home=tmp_path / "home"), planted(), tmp_path / "out",
                         detector=FakeDetector(DETECTIONS), colours=None).run()
    assert summary["categories"]["colour"] == {"cases": 2, "correct": 0, "judged": 0, "unjudged": 2, "errors": 0,
                                               "score": None}
    assert "not judged" in (tmp_path / "out" / "report.html").read_text()


def test_a_killed_eval_continues_and_an_edited_case_runs_again(tmp_path):
    engine = Engine("preview", home=tmp_path / "home")
    out = tmp_path / "out"
    first = FakeDetector(DETECTIONS)
    Evaluation(engine, planted()[:5], out, detector=first, colours=FakeColours()).run()
    assert first.calls == 5
    with open(out / "results.jsonl", "a") as f:
        f.write('{"id": "cat-left", "digest": "trunc')  # the line a killed eval was writing
    again = FakeDetector(DETECTIONS)
    summary = Evaluation(engine, planted(), out, detector=again, colours=FakeColours()).run()
    assert again.calls == 3 and summary["done"] == 8
    edited = planted()
    edited[0] = Case.model_validate({**PLANTED[0], "include": [{"class": "cat", "count": 2}]})
    third = FakeDetector(DETECTIONS)
    summary = Evaluation(engine, edited, out, detector=third, colours=FakeColours()).run()
    assert third.calls == 1 and next(r for r in summary["results"] if r["id"] == "one-cat")["correct"] is False
    with pytest.raises(UserError, match="other settings"):
        Evaluation(engine, planted(), out, plans_only=True).run()


def test_report_escapes_every_text(tmp_path):
    bad = Case.model_validate({"id": "x", "tag": "objects", "prompt": "<script>alert(1)</script> a cat",
                               "include": [{"class": "cat"}]})
    Evaluation(Engine("preview", home=tmp_path / "home"), [bad], tmp_path / "out", plans_only=True).run()
    html = (tmp_path / "out" / "report.html").read_text()
    assert "<script>" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html


# -- the real detector path: a tiny random OWL-ViT --------------------------------------------------------------


@pytest.fixture(scope="module")
def owl_dir(tmp_path_factory) -> Path:
    return build_tiny_owl(tmp_path_factory.mktemp("tiny-owl"))


def test_tiny_owl_detector_loads_with_from_pretrained_and_returns_boxes(owl_dir):
    from PIL import Image

    from tools.detector import OwlDetector
    from tools.models import ModelManager

    image = Image.new("RGB", (64, 48), (200, 40, 40))
    found = OwlDetector(ModelManager(), str(owl_dir), threshold=0.0, overlap=1.0).detect(image, ["cat", "dog"])
    assert set(found) == {"cat", "dog"} and len(found["cat"]) + len(found["dog"]) == 16  # one per 8 px patch
    for items in found.values():
        assert [f.score for f in items] == sorted((f.score for f in items), reverse=True)
        assert all(0 <= f.box[0] < f.box[2] <= 1 and 0 <= f.box[1] < f.box[3] <= 1 for f in items)
    none = OwlDetector(ModelManager(), str(owl_dir), threshold=1.0).detect(image, ["cat"])
    assert none == {"cat": []}


def test_image_eval_with_the_real_detector_path(owl_dir, tmp_path):
    from agent.profiles import get_profile

    profile = get_profile("preview").model_copy(update={"models": {"detector": str(owl_dir)}})
    detector, colours = build_scorers(profile, threshold=0.0)
    assert colours is None  # no clip in this profile: colour clauses will say "not judged"
    engine = Engine(profile, home=tmp_path / "home")
    summary = Evaluation(engine, planted()[:2], tmp_path / "out", detector=detector).run()
    assert summary["done"] == 2 and summary["settings"]["detector"]["model"].startswith("local:")
    rows = [json.loads(line) for line in (tmp_path / "out" / "results.jsonl").read_text().splitlines()]
    assert rows[0]["run_id"] and rows[0]["found"]["cat"]  # detections from the real model path
    assert rows[0]["correct"] is True  # threshold 0: every patch is a cat


def test_no_detector_in_the_profile_is_one_line(tmp_path):
    with pytest.raises(UserError, match="names no detector"):
        build_scorers(Engine("preview", home=tmp_path).profile)


# -- the command -----------------------------------------------------------------------------------------------


def test_cli_eval_plans_only_on_the_lmd_suite(tmp_path, monkeypatch):
    monkeypatch.setenv("SCENEWRIGHT_HOME", str(tmp_path / "home"))
    out = tmp_path / "out"
    result = CliRunner().invoke(app, ["eval", "--lmd", "--plans-only", "--per-category", "2", "--out", str(out)],
                                catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "negation" in result.stdout and "overall" in result.stdout
    assert json.loads((out / "eval.json").read_text())["done"] == 8


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["eval", "--plans-only"], "give a suite file or --lmd"),
        (["eval", "missing.jsonl", "--plans-only"], "does not exist"),
        (["eval", "--lmd"], "names no detector"),
        (["eval", "--lmd", "--plans-only", "--per-category", "1", "--write-suite", "."], "cannot write the suite"),
    ],
)
def test_cli_eval_bad_input_is_one_line_and_exit_2(tmp_path, monkeypatch, args, message):
    monkeypatch.setenv("SCENEWRIGHT_HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2 and message in result.output
    assert "Traceback" not in result.output
