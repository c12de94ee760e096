"""Sentences for synthetic objects: each names a set of its attributes that no other object of the clip
shares, so only the text says which object is meant.

Two difficulties (`DIFFICULTIES`): "basic" names colour and/or shape ("the red object", "a blue circle");
"full" names any attribute, so sentences often need size and motion words ("the red circle moving left"
next to a red square and a blue circle moving left). Held-out clips use held-out phrasings.
"""

from __future__ import annotations

import itertools

import numpy as np

from rvos_cli.data.synthetic.attributes import (
    ADVERBS,
    ATTRIBUTE_KEYS,
    HELD_OUT_PAIRS,
    TEST_MOTION,
    TEST_STILL,
    TEST_TEMPLATES,
    TRAIN_MOTION,
    TRAIN_STILL,
    TRAIN_TEMPLATES,
)
from rvos_cli.data.synthetic.clip import Referral, SyntheticObject


def refer(
    rng: np.random.Generator,
    obj: SyntheticObject,
    objects: list[SyntheticObject],
    held_out: bool,
    max_sentences: int,
    nameable: tuple[str, ...] = ATTRIBUTE_KEYS,
) -> list[Referral]:
    """1..max_sentences sentences for `obj`, each naming a set of its attributes (drawn from `nameable`,
    a subsequence of `ATTRIBUTE_KEYS`) that fits no other object.

    Subsets of minimal size are preferred (one more attribute is allowed for variety). A held-out object
    (held-out colour×shape pair) is always named by its colour and shape.
    """
    own = obj.attributes()
    others = [other for other in objects if other.obj_id != obj.obj_id]
    must = {"colour", "shape"} if (obj.colour, obj.shape) in HELD_OUT_PAIRS else set()
    candidates = []
    for n in range(1, len(nameable) + 1):
        for keys in itertools.combinations(nameable, n):
            if not must <= set(keys) or (
                "speed" in keys and (own["speed"] is None or "direction" not in keys)
            ):
                continue
            named = {key: own[key] for key in keys}
            if not any(other.matches(named) for other in others):
                candidates.append(named)
    smallest = len(candidates[0])
    pool = [named for named in candidates if len(named) <= smallest + 1]
    count = min(len(pool), int(rng.integers(1, max_sentences + 1)))
    first = int(rng.integers(sum(len(named) == smallest for named in pool)))
    rest = [i for i in range(len(pool)) if i != first]
    chosen = [first, *rng.choice(rest, size=count - 1, replace=False).tolist()] if count > 1 else [first]
    return [sentence_for(rng, obj.obj_id, pool[i], held_out) for i in chosen]


def sentence_for(
    rng: np.random.Generator, obj_id: int, named: dict[str, str | None], held_out: bool
) -> Referral:
    """Build the text for the attributes `named`: "[size] [colour] shape|object [motion [adverb]]"."""
    templates, motions, stills = (
        (TEST_TEMPLATES, TEST_MOTION, TEST_STILL)
        if held_out
        else (TRAIN_TEMPLATES, TRAIN_MOTION, TRAIN_STILL)
    )
    words = [named[key] for key in ("size", "colour") if key in named]
    words.append(named.get("shape") or "object")
    motion_template = None
    if "direction" in named:
        if named["direction"] == "static":
            motion_template = str(rng.choice(stills))
            words.append(motion_template)
        else:
            motion_template = str(rng.choice(motions))
            words.append(motion_template.format(d=named["direction"]))
            if "speed" in named:
                words.append(ADVERBS[str(named["speed"])])
    template = str(rng.choice(templates))
    phrase = " ".join(str(word) for word in words)
    article_fixed = "an" + template[1:] if template.startswith("a ") and phrase[0] in "aeiou" else template
    text = article_fixed.format(np=phrase)
    return Referral(obj_id, text, named, template, motion_template)
