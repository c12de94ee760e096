"""A synthetic referring-video dataset, written in the on-disk layout of A2D-Sentences, Ref-YouTube-VOS,
MeViS or Ref-DAVIS17.

Each clip shows 2–4 moving shapes over a textured background; every object gets one or two sentences
naming a combination of its attributes that no other object of the clip shares, so only the text says
which object is meant. Held-out clips contain a colour×shape pair never seen in training and use
held-out phrasings. A seed fixes the dataset, byte for byte.

    attributes.py    the vocabulary: colours, shapes, sizes, motions, phrasings, held-out pairs, difficulties
    clip.py          SyntheticObject, Referral, SyntheticClip (objects, sentences, frames, labels)
    scene.py         objects, tracks, background, rendering (frames and per-pixel object labels)
    sentences.py     unambiguous sentences per object
    encode.py        JPEG / CSV bytes of frames and tables
    a2d_writer.py    the A2D-Sentences layout
    ytvos_writer.py  the Ref-YouTube-VOS layout (+ local ground truth of the valid videos)
    mevis_writer.py  the MeViS layout (expressions that may refer to several objects or none)
    davis_writer.py  the Ref-DAVIS17 layout
    generate.py      make_clip, generate_synthetic, split_plan
"""

from rvos_cli.data.synthetic.a2d_writer import A2D_FPS, A2dWriter, a2d_frame_h5
from rvos_cli.data.synthetic.attributes import (
    ATTRIBUTE_KEYS,
    COLOURS,
    DIFFICULTIES,
    DIRECTIONS,
    HELD_OUT_PAIRS,
    SHAPES,
    SIZES,
    SPEEDS,
    TEST_TEMPLATES,
    TRAIN_TEMPLATES,
)
from rvos_cli.data.synthetic.clip import (
    A2D_ANNOTATION_STRIDE,
    Referral,
    SyntheticClip,
    SyntheticObject,
    a2d_annotated_frames,
    video_id_for,
)
from rvos_cli.data.synthetic.generate import (
    SyntheticSummary,
    generate_synthetic,
    make_clip,
    sentences_per_object,
    split_plan,
)
from rvos_cli.data.synthetic.ytvos_writer import YTVOS_FRAME_STEP, YTVOS_GT_META, YtvosWriter

__all__ = [
    "A2D_ANNOTATION_STRIDE",
    "A2D_FPS",
    "ATTRIBUTE_KEYS",
    "COLOURS",
    "DIFFICULTIES",
    "DIRECTIONS",
    "HELD_OUT_PAIRS",
    "SHAPES",
    "SIZES",
    "SPEEDS",
    "TEST_TEMPLATES",
    "TRAIN_TEMPLATES",
    "YTVOS_FRAME_STEP",
    "YTVOS_GT_META",
    "A2dWriter",
    "Referral",
    "SyntheticClip",
    "SyntheticObject",
    "SyntheticSummary",
    "YtvosWriter",
    "a2d_annotated_frames",
    "a2d_frame_h5",
    "generate_synthetic",
    "make_clip",
    "sentences_per_object",
    "split_plan",
    "video_id_for",
]
