"""The English prompt reader: read a prompt into a :class:`Scene`: the things to draw with their counts and words, how they are placed
relative to each other and to the frame, the text that appears in the picture, and the style, setting and
exclusions.

There is no tagger. The reader works in three passes, each removing an ambiguity the next would trip on:

1. *Spans* are cut out of the raw text: quoted or "that says ..." text (so words on a sign never become objects),
   style phrases, exclusions ("no people") and times of day. Each leaves a placeholder or a neutral mark, so the
   sentence keeps its shape.
2. Each sentence becomes a list of *items*: noun phrases (found by their determiner, or by a known noun, and ended
   by the first word that cannot be inside one), relation phrases ("to the left of"), frame regions ("in the
   top-left corner"), conjunctions, and "wearing/holding/with" attachments.
3. Items are *linked*: a relation's object is the phrase right after it and its subject the phrase before it (or,
   when the relation is fronted - "Above the fireplace hangs a painting" - the phrase after its object); "the cat"
   refers back to "a cat"; places become the background; relations to the background or the frame become regions.
"""

from __future__ import annotations

import re

from planners.reader.items import _tokens
from planners.reader.linking import _Reader
from planners.reader.scene import Group, Relation, Scene, Target, Text
from planners.reader.spans import (
    _cut_names,
    _cut_negatives,
    _cut_prose,
    _cut_style,
    _cut_text_styles,
    _cut_texts,
    _cut_times,
    clean,
)

__all__ = ["Group", "Relation", "Scene", "Target", "Text", "clean", "read"]


def read(prompt: str) -> Scene:
    """The whole reading: spans, then sentence by sentence."""
    scene = Scene()
    contents: list[str] = []
    text = clean(prompt)
    text = _cut_names(text)
    text = _cut_texts(text, contents)
    text, text_styles = _cut_text_styles(text)
    text = _cut_style(text, scene.style)
    text = _cut_prose(text, scene.style)
    text = _cut_negatives(text, scene.negatives)
    text = _cut_times(text, scene.background)
    scene.texts = [Text(c, style=text_styles.get(i, "")) for i, c in enumerate(contents)]
    words = re.findall(r"[^\W\d_][\w'-]*", text)
    titlecase = len(words) > 3 and sum(w[0].isupper() for w in words) > 0.6 * len(words)
    reader = _Reader(scene, titlecase)
    for sentence in _tokens(text):
        reader.sentence(sentence)
    return scene
