"""Transforms: text normalisation, left/right swap, resize arithmetic, flip, mask resize, normalisation."""

import numpy as np
import pytest
import torch

from rvos_cli.data.transforms import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    VideoTransforms,
    resized_size,
    swap_left_right,
)


def _flip_generator() -> torch.Generator:
    return torch.Generator().manual_seed(1)  # first torch.rand draw 0.7576 > 0.5


def _no_flip_generator() -> torch.Generator:
    return torch.Generator().manual_seed(0)  # first torch.rand draw 0.4963 <= 0.5


def test_generator_draws_are_the_ones_the_flip_tests_rely_on() -> None:
    assert torch.rand(1, generator=_flip_generator()).item() > 0.5
    assert torch.rand(1, generator=_no_flip_generator()).item() <= 0.5




def test_swap_left_right_swaps_both_words() -> None:
    assert swap_left_right("the man on the left hits the ball to the right") == (
        "the man on the right hits the ball to the left"
    )


def test_swap_left_right_keeps_words_that_contain_them() -> None:
    assert swap_left_right("the upright bird leftover brightly") == "the upright bird leftover brightly"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("the leftmost dog", "the rightmost dog"),
        ("the rightmost dog", "the leftmost dog"),
        ("the left-most car", "the right-most car"),
        ("the right-most car", "the left-most car"),
        ("leftmost man to the rightmost door on the left", "rightmost man to the leftmost door on the right"),
        ("the left-most and the right-most bird", "the right-most and the left-most bird"),
    ],
)
def test_swap_left_right_swaps_the_most_forms(text: str, expected: str) -> None:
    assert swap_left_right(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "a bright red car",
        "the upright man",
        "the leftover food",
        "a bright upright leftover",
        "the brightmost lamp",
        "the uprightmost pole",
        "leftovers",
        "a rightful owner",
    ],
)
def test_swap_left_right_never_touches_words_that_contain_left_or_right(text: str) -> None:
    assert swap_left_right(text) == text


def test_flipped_clip_text_swaps_leftmost_but_keeps_bright() -> None:
    frames, targets = _clip()
    _, _, text = VideoTransforms(4, None, True)(
        frames, targets, "the leftmost bright bird on the right-most branch", _flip_generator()
    )
    assert text == "the rightmost bright bird on the left-most branch"


@pytest.mark.parametrize(
    ("size", "short", "max_size", "expected"),
    [
        ((240, 320), 320, 576, (320, 426)),  # long side truncated: 426.67 -> 426
        ((720, 1280), 360, 640, (360, 640)),  # long side exactly at the cap is allowed
        ((320, 480), 320, 576, (320, 480)),  # short side already at the target: unchanged
        ((100, 400), 320, 576, (144, 576)),  # capped: short = round(576 * 100 / 400)
        ((500, 300), 360, 640, (600, 360)),  # portrait: width is the short side
    ],
)
def test_resized_size(size: tuple[int, int], short: int, max_size: int, expected: tuple[int, int]) -> None:
    assert resized_size(*size, short, max_size) == expected


def _clip() -> tuple[np.ndarray, list]:
    frames = np.zeros((2, 4, 6, 3), dtype=np.uint8)
    frames[:, :, 0] = 255  # left column white
    masks = torch.zeros(1, 4, 6, dtype=torch.uint8)
    masks[0, 1:3, 0:2] = 1
    target = {"masks": masks, "size": torch.tensor([4, 6]), "orig_size": torch.tensor([4, 6])}
    return frames, [None, target]


def test_flip_mirrors_frames_masks_and_swaps_text() -> None:
    frames, targets = _clip()
    out, out_targets, text = VideoTransforms(4, None, True)(
        frames, targets, "left of the tree", _flip_generator()
    )
    white = (1.0 - torch.tensor(IMAGENET_MEAN)) / torch.tensor(IMAGENET_STD)
    assert torch.allclose(out[:, :, :, 5], white.view(1, 3, 1).expand(2, 3, 4))
    assert out_targets[1]["masks"][0].nonzero().tolist() == [[1, 4], [1, 5], [2, 4], [2, 5]]
    assert out_targets[0] is None
    assert text == "right of the tree"


def test_no_flip_when_the_draw_is_at_most_half() -> None:
    frames, targets = _clip()
    _, out_targets, text = VideoTransforms(4, None, True)(frames, targets, "left", _no_flip_generator())
    assert out_targets[1]["masks"][0].nonzero().tolist() == [[1, 0], [1, 1], [2, 0], [2, 1]]
    assert text == "left"


def test_flip_disabled_never_flips() -> None:
    frames, targets = _clip()
    out, out_targets, text = VideoTransforms(4, None, False)(frames, targets, "left", _flip_generator())
    white = (1.0 - torch.tensor(IMAGENET_MEAN)) / torch.tensor(IMAGENET_STD)
    assert torch.allclose(out[:, :, :, 0], white.view(1, 3, 1).expand(2, 3, 4))  # still the left column
    assert not torch.allclose(out[:, :, :, 5], white.view(1, 3, 1).expand(2, 3, 4))
    assert out_targets[1]["masks"][0].nonzero().tolist() == [[1, 0], [1, 1], [2, 0], [2, 1]]
    assert text == "left"


def test_resize_uses_nearest_for_masks_and_updates_size_only() -> None:
    frames, targets = _clip()
    out, out_targets, _ = VideoTransforms(8, None, False)(frames, targets, "x")
    assert out.shape == (2, 3, 8, 12)
    masks = out_targets[1]["masks"]
    assert masks.dtype == torch.bool
    assert masks[0].nonzero()[:, 0].unique().tolist() == [2, 3, 4, 5]
    assert masks[0].nonzero()[:, 1].unique().tolist() == [0, 1, 2, 3]
    assert out_targets[1]["size"].tolist() == [8, 12]
    assert out_targets[1]["orig_size"].tolist() == [4, 6]


def test_frames_are_imagenet_normalised() -> None:
    frames = np.full((1, 2, 2, 3), 51, dtype=np.uint8)  # 51 / 255 = 0.2
    out, _, _ = VideoTransforms(2, None, False)(frames, [None], "x")
    expected = (0.2 - torch.tensor(IMAGENET_MEAN)) / torch.tensor(IMAGENET_STD)
    assert torch.allclose(out[0, :, 0, 0], expected)
