"""Tests for rvos_cli.viz.overlay (demo-style overlays and legend) and rvos_cli.viz.animate (GIF/PNG)."""

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from rvos_cli.errors import RvosError
from rvos_cli.viz.animate import write_gif, write_png
from rvos_cli.viz.overlay import (
    FONT_SIZE,
    PALETTE,
    brighter,
    draw_legend,
    fit_text,
    font_that_fits,
    legend_font,
    mask_boundary,
    overlay_masks,
    render_overlay_frames,
    sentence_colour,
)

PIXEL = (100, 50, 200)


def _flat_frame(height: int = 12, width: int = 12) -> np.ndarray:
    return np.tile(np.array(PIXEL, dtype=np.uint8), (height, width, 1))


def _box(height: int, width: int, top: int, left: int, bottom: int, right: int) -> np.ndarray:
    mask = np.zeros((height, width), dtype=bool)
    mask[top:bottom, left:right] = True
    return mask


def test_demo_colours_come_first_and_all_palette_colours_differ():
    assert PALETTE[:4] == ((41, 171, 226), (237, 30, 121), (35, 161, 90), (255, 148, 59))
    assert len({sentence_colour(i) for i in range(len(PALETTE))}) == len(PALETTE)
    assert sentence_colour(len(PALETTE)) == PALETTE[0]


def test_inside_mask_is_0_7_colour_plus_0_3_pixel_and_outside_unchanged():
    frame = _flat_frame()
    mask = _box(12, 12, 2, 2, 10, 10)
    out = overlay_masks(frame, [mask], alpha=0.7, contour_width=0)
    # 0.7·(41,171,226) + 0.3·(100,50,200) = (58.7, 134.7, 218.2) → rounded
    assert out[mask].tolist() == [[59, 135, 218]] * 64
    assert (out[~mask] == PIXEL).all()
    assert (frame == PIXEL).all()  # the input is not modified


def test_second_mask_uses_second_colour_and_is_painted_over_the_first():
    frame = _flat_frame()
    first = _box(12, 12, 0, 0, 6, 6)
    second = _box(12, 12, 4, 4, 10, 10)
    out = overlay_masks(frame, [first, second], contour_width=0)
    # 0.7·(237,30,121) + 0.3·(100,50,200) = (195.9, 36, 144.7)
    assert out[8, 8].tolist() == [196, 36, 145]
    # overlap: the second colour over the unrounded first blend (58.7, 134.7, 218.2): (183.51, 61.41, 150.16)
    assert out[5, 5].tolist() == [184, 61, 150]


def test_contour_is_the_brighter_colour_on_the_mask_inner_boundary():
    frame = _flat_frame()
    mask = _box(12, 12, 2, 2, 10, 10)
    out = overlay_masks(frame, [mask], contour_width=1)
    assert brighter((41, 171, 226)) == (148, 213, 240)
    assert out[2, 5].tolist() == [148, 213, 240]  # top edge of the box
    assert out[5, 9].tolist() == [148, 213, 240]  # right edge
    assert out[5, 5].tolist() == [59, 135, 218]  # interior keeps the blend
    assert out[1, 5].tolist() == list(PIXEL)  # just outside stays untouched


def test_mask_boundary_width_2_and_image_border_not_outlined():
    mask = _box(8, 8, 0, 0, 8, 6)  # touches the top, left and bottom image borders
    boundary = mask_boundary(mask, width=2)
    expected = np.zeros((8, 8), dtype=bool)
    expected[:, 4:6] = True
    assert (boundary == expected).all()


def test_mask_of_wrong_size_raises():
    with pytest.raises(RvosError, match=r"mask 0 has size \[5, 5\] but the frame is \[12, 12\]"):
        overlay_masks(_flat_frame(), [np.ones((5, 5), dtype=bool)])


def test_legend_adds_36_px_per_sentence_and_keeps_the_frame_below():
    frame = np.random.default_rng(0).integers(0, 256, (20, 200, 3), dtype=np.uint8)
    out = draw_legend(frame, ["a man riding a horse", "a dog", "the red car"])
    assert out.shape == (20 + 3 * 36, 200, 3)
    assert (out[108:] == frame).all()
    assert (out[:108, 0] == 0).all()  # the legend's left margin is black


def test_legend_prints_each_sentence_in_its_own_colour():
    out = draw_legend(np.zeros((4, 300, 3), dtype=np.uint8), ["first sentence", "second sentence"])
    for index in range(2):
        strip = out[36 * index : 36 * (index + 1)]
        colours = {tuple(p) for p in strip.reshape(-1, 3).tolist()}
        assert sentence_colour(index) in colours  # fully covered glyph pixels carry the exact colour
        assert sentence_colour(1 - index) not in colours


def test_legend_of_no_sentence_returns_the_frame():
    frame = _flat_frame()
    assert (draw_legend(frame, []) == frame).all()


def test_long_text_is_truncated_with_an_ellipsis_to_fit():
    font = legend_font()
    text = "a very long referring expression about a person walking a dog along the beach"
    shown = fit_text(text, 120, font)
    assert shown.endswith("…")
    assert text.startswith(shown[:-1].rstrip())
    assert font.getlength(shown) <= 120
    assert fit_text("a dog", 120, font) == "a dog"


def test_render_overlay_frames_streams_legend_plus_overlay():
    frames = [_flat_frame(), _flat_frame() // 2]
    masks = [[_box(12, 12, 2, 2, 6, 6)], [_box(12, 12, 4, 4, 10, 10)]]
    rendered = list(render_overlay_frames(iter(frames), iter(masks), ["a cat"]))
    assert len(rendered) == 2
    for frame, frame_masks, image in zip(frames, masks, rendered, strict=True):
        assert image.shape == (48, 12, 3)
        assert (image[36:] == overlay_masks(frame, frame_masks)).all()


def test_render_overlay_frames_rejects_fewer_masks_than_frames():
    frames = [_flat_frame(), _flat_frame()]
    with pytest.raises(RvosError, match="masks stop after 1 frames"):
        list(render_overlay_frames(frames, [[np.zeros((12, 12), bool)]], ["a cat"]))


def test_write_gif_keeps_frame_count_size_and_delay(tmp_path: Path):
    frames = [np.full((10, 14, 3), value, dtype=np.uint8) for value in (0, 120, 250)]
    path = write_gif(tmp_path / "out" / "clip.gif", iter(frames), fps=10)
    with Image.open(path) as gif:
        assert gif.n_frames == 3
        assert gif.size == (14, 10)
        assert gif.info["duration"] == 100
    assert sorted(p.name for p in path.parent.iterdir()) == ["clip.gif"]  # no temp file left


def test_write_gif_without_frames_raises(tmp_path: Path):
    with pytest.raises(RvosError, match="no frames to write"):
        write_gif(tmp_path / "empty.gif", [], fps=6)
    assert not (tmp_path / "empty.gif").exists()


def test_write_png_round_trips(tmp_path: Path):
    image = np.random.default_rng(1).integers(0, 256, (5, 7, 3), dtype=np.uint8)
    path = write_png(tmp_path / "a.png", image)
    assert (np.asarray(Image.open(path)) == image).all()


def test_narrow_frames_get_a_smaller_font_before_the_sentence_is_cut() -> None:
    sentence = "segment the red triangle"
    assert legend_font(FONT_SIZE).getlength(sentence) > 150  # would be cut at 20 px in a 160-px frame
    font = font_that_fits(sentence, 150)
    assert font.getlength(sentence) <= 150
    assert fit_text(sentence, 150, font) == sentence
