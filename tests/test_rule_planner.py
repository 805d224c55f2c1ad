"""The offline rule-based planner: counts, attributes, relations, texts, style and setting, robustness."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from agent.blueprint import MAX_OBJECTS, MAX_TEXTS, Blueprint, Canvas, _base_name, semantic_errors
from planners.base import PlanningError
from planners.rule_based import RuleBasedPlanner, expected_counts

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
import planner_eval

PLANNER = RuleBasedPlanner()


def plan(prompt: str, **kw) -> Blueprint:
    bp = PLANNER.plan(prompt, **kw)
    assert semantic_errors(bp) == [], semantic_errors(bp)
    Blueprint.model_validate_json(bp.to_json())  # every limit holds after a round trip
    return bp


def named(bp: Blueprint, noun: str) -> list:
    return [o for o in bp.objects if _base_name(o.name) == noun]


def centre(obj) -> tuple[float, float]:
    x0, y0, x1, y1 = obj.box
    return (x0 + x1) / 2, (y0 + y1) / 2


def one(bp: Blueprint, noun: str):
    found = named(bp, noun)
    assert len(found) == 1, [o.name for o in bp.objects]
    return found[0]


# -- counts and names ------------------------------------------------------------------------------------------


def test_counts_are_numbered_instances_of_the_singular_noun():
    bp = plan("three red apples on a table")
    assert [o.name for o in named(bp, "apple")] == ["apple 1", "apple 2", "apple 3"]
    assert all(o.description == "a red apple" for o in named(bp, "apple"))
    assert one(bp, "table").name == "table"  # a single thing carries no number


@pytest.mark.parametrize(
    ("prompt", "noun", "count"),
    [
        ("two dogs", "dog", 2), ("seven candles", "candle", 7), ("12 eggs", "egg", 12), ("a cat", "cat", 1),
        ("an owl", "owl", 1), ("one lamp", "lamp", 1), ("a pair of white swans", "swan", 2),
        ("a couple of chairs", "chair", 2), ("several crows", "crow", 3), ("a few stones", "stone", 3),
        ("some cookies", "cookie", 2), ("a dozen eggs", "egg", 12), ("eleven stars on a flag", "star", 11),
    ],
)
def test_count_words(prompt, noun, count):
    assert len(named(plan(prompt), noun)) == count


@pytest.mark.parametrize(
    ("prompt", "noun"),
    [
        ("two people", "person"), ("three mice", "mouse"), ("two geese", "goose"), ("four children", "child"),
        ("three knives", "knife"), ("two wolves", "wolf"), ("two shelves", "shelf"), ("three cacti", "cactus"),
        ("two fish", "fish"), ("three sheep", "sheep"), ("two deer", "deer"), ("two women", "woman"),
        ("three tomatoes", "tomato"), ("two boxes", "box"), ("three cherries", "cherry"), ("two buses", "bus"),
        ("two wine glasses", "wine glass"), ("two horses", "horse"), ("three cookies", "cookie"),
    ],
)
def test_irregular_plurals_are_singularised(prompt, noun):
    assert len(named(plan(prompt), noun)) > 1


@pytest.mark.parametrize(
    "noun", ["coffee mug", "street lamp", "fire hydrant", "teddy bear", "hot air balloon", "rocking horse"]
)
def test_compound_nouns_keep_their_modifier(noun):
    bp = plan(f"a big red {noun} next to a tree")
    assert one(bp, noun).description == f"a big red {noun}"


def test_glasses_on_a_face_are_one_thing_but_counted_glasses_are_several():
    assert [o.name for o in plan("a man wearing glasses").objects] == ["man", "glasses"]
    assert len(named(plan("two glasses of wine"), "glass")) == 2


def test_expected_counts_are_the_stated_ones_and_agree_with_the_blueprint():
    prompt = "Three red apples, a pair of pears and some grapes on a white plate, and 12 eggs."
    counts = expected_counts(prompt)
    assert counts == {"apple": 3, "pear": 2, "egg": 12}  # "some grapes" and "a plate" are not counted out
    assert semantic_errors(plan(prompt), counts) == []


def test_objects_are_capped_keeping_the_first_mentioned():
    bp = plan("twenty dogs, ten cats and a horse")
    assert len(bp.objects) == MAX_OBJECTS
    assert len(named(bp, "dog")) == 20 and len(named(bp, "cat")) == 4 and not named(bp, "horse")


def test_elliptical_instances_get_their_own_words():
    cats = named(plan("Two cats, one black and one white, sleep on a sofa."), "cat")
    assert [c.description for c in cats] == ["a black cat", "a white cat"]


def test_definite_phrases_refer_back_instead_of_adding_objects():
    bp = plan("A dog sits on a rug. The dog is brown. The rug is next to the fireplace.")
    assert sorted(o.name for o in bp.objects) == ["dog", "fireplace", "rug"]
    assert one(bp, "dog").description == "a brown dog"


def test_one_instance_can_be_singled_out():
    bp = plan("Three boats in a harbor. The blue boat is on the left and the red boat is on the right.")
    boats = named(bp, "boat")
    assert [b.description for b in boats] == ["a blue boat", "a red boat", "a boat"]
    assert centre(boats[0])[0] < 0.45 and centre(boats[1])[0] > 0.55
    second = plan("Four cupcakes on a tray. A flag stuck in the second cupcake says 'Yum!'.")
    flag, cupcake = one(second, "flag"), named(second, "cupcake")[1]
    assert cupcake.box[0] <= centre(flag)[0] <= cupcake.box[2]


def test_each_gives_one_per_owner():
    bp = plan("Four cupcakes sit on a tray, each topped with a cherry.")
    assert len(named(bp, "cherry")) == 4
    for cherry, cupcake in zip(named(bp, "cherry"), named(bp, "cupcake"), strict=True):
        assert cupcake.box[0] <= centre(cherry)[0] <= cupcake.box[2]


def test_pronouns_refer_back():
    bp = plan("A red car is parked to the left of a blue truck. There is a bicycle between them.")
    assert centre(one(bp, "car"))[0] < centre(one(bp, "bicycle"))[0] < centre(one(bp, "truck"))[0]
    bp = plan("A fisherman sits on a bucket. A heron stands to his right.")
    assert centre(one(bp, "heron"))[0] > centre(one(bp, "fisherman"))[0]


def test_a_participle_describes_the_attached_thing_a_finite_verb_its_owner():
    shelf = plan("A shop window with five teddy bears sitting on a shelf.")
    assert all(centre(b)[1] < centre(one(shelf, "shelf"))[1] for b in named(shelf, "teddy bear"))
    platform = plan("Three travelers with suitcases wait on a platform.")
    assert all(centre(t)[1] < centre(one(platform, "platform"))[1] for t in named(platform, "traveler"))


# -- attributes ------------------------------------------------------------------------------------------------


def test_attributes_stay_with_their_own_noun():
    bp = plan("a red cube to the left of a blue sphere")
    assert one(bp, "cube").description == "a red cube"
    assert one(bp, "sphere").description == "a blue sphere"


def test_worn_things_are_objects_inside_the_wearer_and_in_its_description():
    bp = plan("a cat wearing a tiny hat")
    cat, hat = one(bp, "cat"), one(bp, "hat")
    assert "wearing a tiny hat" in cat.description and hat.description == "a tiny hat"
    assert cat.box[0] <= hat.box[0] and hat.box[2] <= cat.box[2] and cat.box[1] <= hat.box[1]


def test_features_go_into_the_description_only():
    bp = plan("a girl with long pink hair")
    assert [o.name for o in bp.objects] == ["girl"] and "with long pink hair" in bp.objects[0].description


# -- relations ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("prompt", "a", "b", "axis", "sign"),
    [
        ("a cat to the left of a dog", "cat", "dog", 0, -1),
        ("a cat left of a dog", "cat", "dog", 0, -1),
        ("a cat on the right of a dog", "cat", "dog", 0, 1),
        ("a cat to the right of a dog", "cat", "dog", 0, 1),
        ("a lamp above a desk", "lamp", "desk", 1, -1),
        ("a bird flying over a house", "bird", "house", 1, -1),
        ("a cup on a table", "cup", "table", 1, -1),
        ("a vase on top of a piano", "vase", "piano", 1, -1),
        ("a ball below a shelf", "ball", "shelf", 1, 1),
        ("a cat under a table", "cat", "table", 1, 1),
        ("a fox beneath a tree", "fox", "tree", 1, 1),
        ("a dog in front of a house", "dog", "house", 1, 1),
        ("a goat behind a fence", "goat", "fence", 1, -1),
        ("Above the fireplace hangs a painting.", "painting", "fireplace", 1, -1),
        ("To the left of the barn, there is a horse.", "horse", "barn", 0, -1),
    ],
)
def test_each_relation_is_realised_by_box_centres(prompt, a, b, axis, sign):
    bp = plan(prompt)
    ca, cb = centre(one(bp, a))[axis], centre(one(bp, b))[axis]
    assert (ca - cb) * sign > 0


def test_relations_hold_for_every_instance():
    bp = plan("three birds above two houses, and four rocks to the left of the houses")
    for bird in named(bp, "bird"):
        assert all(centre(bird)[1] < centre(h)[1] for h in named(bp, "house"))
    for rock in named(bp, "rock"):
        assert all(centre(rock)[0] < centre(h)[0] for h in named(bp, "house"))


def test_a_thing_on_another_sits_on_its_top_within_its_width():
    bp = plan("a cup on a table")
    cup, table = one(bp, "cup"), one(bp, "table")
    assert table.box[0] <= centre(cup)[0] <= table.box[2]
    assert cup.box[3] > table.box[1] - 0.01  # resting on it, not floating above


def test_next_to_keeps_things_side_by_side():
    bp = plan("a dog next to a cat")
    dog, cat = one(bp, "dog"), one(bp, "cat")
    assert dog.box[2] <= cat.box[0] + 0.01 or cat.box[2] <= dog.box[0] + 0.01
    assert abs(dog.box[3] - cat.box[3]) < 0.15


def test_between():
    bp = plan("a teddy bear sits between a toy train and a rocking horse")
    assert centre(one(bp, "toy train"))[0] < centre(one(bp, "teddy bear"))[0] < centre(one(bp, "rocking horse"))[0]


@pytest.mark.parametrize(
    ("phrase", "check"),
    [
        ("in the top-left corner", lambda x, y: x < 0.45 and y < 0.45),
        ("in the bottom right corner", lambda x, y: x > 0.55 and y > 0.55),
        ("at the top", lambda x, y: y < 0.45),
        ("at the bottom", lambda x, y: y > 0.55),
        ("in the middle", lambda x, y: 0.25 < x < 0.75 and 0.2 < y < 0.8),
        ("on the left", lambda x, y: x < 0.45),
        ("on the right side of the image", lambda x, y: x > 0.55),
    ],
)
def test_frame_regions(phrase, check):
    bp = plan(f"a tree and a clock {phrase}, and a dog")
    assert check(*centre(one(bp, "clock")))


def test_from_left_to_right():
    bp = plan("From left to right: a red ball, a green cube and a yellow pyramid.")
    xs = [centre(one(bp, n))[0] for n in ("ball", "cube", "pyramid")]
    assert xs == sorted(xs)


def test_unrelated_objects_do_not_pile_up():
    bp = plan("a cat, a dog, a horse, a cow, a pig, a goat, a duck and a chicken")
    assert len(bp.objects) == 8 and semantic_errors(bp) == []


def test_sky_things_sit_higher_than_ground_things():
    bp = plan("a car and the moon")
    assert centre(one(bp, "moon"))[1] < centre(one(bp, "car"))[1]


# -- scene text ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("prompt", "content"),
    [
        ('a sign that says "OPEN"', "OPEN"),
        ("a sign that says 'Joe's Diner'", "Joe's Diner"),
        ("a banner reading \u201cHappy Birthday, Mia!\u201d", "Happy Birthday, Mia!"),
        ("a sign with \u2018Caf\u00e9 Ol\u00e9\u2019 on it", "Caf\u00e9 Ol\u00e9"),
        ("a poster saying \u00abBonjour\u00bb", "Bonjour"),
        ("a lantern with \u300c\u30e9\u30fc\u30e1\u30f3\u300d on it", "\u30e9\u30fc\u30e1\u30f3"),
        ("a sign that says OPEN 24 HOURS on the door", "OPEN 24 HOURS"),
        ("a door labeled EXIT", "EXIT"),
        ("a sign reading Welcome Home, next to a tree", "Welcome Home"),
        ('a blackboard with the words "E = mc\u00b2" written on it', "E = mc\u00b2"),
    ],
)
def test_text_is_kept_exactly(prompt, content):
    assert [t.content for t in plan(prompt).texts] == [content]


def test_text_sits_inside_the_thing_that_carries_it_and_never_becomes_an_object():
    bp = plan('A wooden sign that says "FRESH EGGS" stands next to a red barn.')
    sign = one(bp, "sign")
    text = bp.texts[0]
    assert sign.box[0] <= text.box[0] and text.box[2] <= sign.box[2]
    assert sign.box[1] <= text.box[1] and text.box[3] <= sign.box[3]
    assert not any("egg" in o.name.lower() for o in bp.objects)


def test_text_width_follows_its_length_and_style_is_read():
    bp = plan("a title 'HI' at the top and a caption 'A MUCH LONGER LINE OF TEXT' at the bottom, in bold red letters")
    short, long = bp.texts
    assert long.box[2] - long.box[0] > short.box[2] - short.box[0]
    assert centre(short)[1] < 0.5 < centre(long)[1]
    assert long.style == "bold red letters" and bp.objects == []


def test_texts_are_capped():
    bp = plan(" ".join(f"'T{i}'" for i in range(20)))
    assert len(bp.texts) == MAX_TEXTS


def test_reading_a_book_is_not_text():
    assert plan("a girl reading a book").texts == []


# -- style, setting, exclusions ----------------------------------------------------------------------------------


def test_style_and_medium_are_not_objects():
    bp = plan("A watercolor painting of a fox in a forest, cinematic lighting, in the style of Studio Ghibli")
    assert [o.name for o in bp.objects] == ["fox"]
    assert "watercolor painting" in bp.style and "cinematic lighting" in bp.style and "Ghibli" in bp.style
    assert bp.background == "a forest"


@pytest.mark.parametrize(
    ("prompt", "background"),
    [
        ("a dog on a beach at sunset", "at sunset, a beach"),
        ("a chef in a kitchen", "a kitchen"),
        ("a castle, in the background snowy mountains", "snowy mountains"),
        ("a deer under a starry sky", "a starry sky"),
    ],
)
def test_setting_becomes_the_background(prompt, background):
    assert plan(prompt).background == background


def test_exclusions_go_to_the_negative_prompt_not_the_objects():
    bp = plan("A quiet street without cars, no people or dogs, and a single lamp post.")
    assert bp.negative_prompt == "cars, people, dogs"
    assert [o.name for o in bp.objects] == ["lamp post"]


def test_proper_names_ask_for_a_reference():
    bp = plan("A Shiba Inu sits in front of the Eiffel Tower.")
    dog, tower = one(bp, "Shiba Inu"), one(bp, "Eiffel Tower")
    assert dog.needs_reference and tower.needs_reference
    assert (dog.description, tower.description) == ("a Shiba Inu", "the Eiffel Tower")
    assert {r.object for r in bp.references} == {"Shiba Inu", "Eiffel Tower"}


# -- contract: determinism, odd input, identity ------------------------------------------------------------------


def test_same_prompt_and_seed_give_identical_blueprints():
    prompt = "Two owls perch on a branch at the top of the image, and a fox sits below them. Sign: 'OWLS'."
    a, b = plan(prompt, seed=7), plan(prompt, seed=7)
    assert a.to_json() == b.to_json() and a.seed == 7
    assert plan(prompt, seed=8).objects == a.objects


@pytest.mark.parametrize(
    "prompt",
    [
        "\U0001f431\U0001f436 on a \U0001f6cb\ufe0f", "\u4e00\u53ea\u732b\u5750\u5728\u684c\u5b50\u4e0a", "!!!???",
        "12345 678", "castle", "Hello", "x" * 20000, "a red apple on a table. " * 900, "the", "three",
        "a\x00 cat\x07 on\n a\tmat", "'", '"', "left of right of above below", "A RED APPLE ON A TABLE",
        "no", "in the style of", "a sign that says", '"' + "A" * 500 + '"', "Ein Hund sitzt auf einem Stuhl",
    ],
)
def test_odd_prompts_still_give_a_valid_blueprint(prompt):
    bp = plan(prompt)
    assert bp.prompt == prompt[:8000]
    if not bp.objects and not bp.texts:
        assert bp.background  # something to draw: the prompt itself, cleaned


def test_prompt_without_any_known_thing_becomes_the_background():
    chinese = "\u4e00\u53ea\u732b\u5750\u5728\u684c\u5b50\u4e0a"
    assert plan(chinese).background == chinese
    assert plan("  lots\x01 of\n\nvibes  ").background == "lots of . vibes"


@pytest.mark.parametrize("prompt", ["", "   ", "\n\t "])
def test_empty_prompt_is_an_error(prompt):
    with pytest.raises(PlanningError, match="the prompt is empty"):
        PLANNER.plan(prompt)


def test_canvas_and_identity():
    bp = plan("a wide red bus next to a bus stop", canvas=Canvas(width=1024, height=512))
    assert bp.canvas.width == 1024
    assert PLANNER.identity() == {"planner": "rule", "version": "1"} and PLANNER.name == "rule"


# -- held-out style evaluation -----------------------------------------------------------------------------------


def test_eval_targets_on_the_case_file():
    cases = json.loads((ROOT / "tests" / "data" / "planner_cases.json").read_text(encoding="utf-8"))
    assert len(cases) >= 40
    result = planner_eval.evaluate(cases, PLANNER)
    assert result["object_recall"] >= 0.85
    assert result["text_recall"] >= 0.9
    assert result["relation_accuracy"] >= 0.8
