"""Colour overlays on tiny hand-made maps: expected colours are computed by hand here."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from paddleseg_ext.visualize import (class_palette, distinct_colors, jittered_colors, panoptic_panel,
                                     segment_borders, tile_horizontal, visualize_instance,
                                     visualize_panoptic, visualize_semantic)

WHITE = [255, 255, 255]
# Cityscapes colours (from the Cityscapes label table): road, building, car
ROAD, BUILDING, CAR = (128, 64, 128), (70, 70, 70), (0, 0, 142)


def _image(h, w, rgb=(100, 50, 200)):
    img = np.empty((h, w, 3), dtype=np.uint8)
    img[:] = rgb
    return img


def _scene():
    """8x14 map: road (class 0) left, building (class 2) right, two cars (class 13) touching
    each other at column 5|6 inside the road, and a void strip at the bottom."""
    pan = np.zeros((8, 14), dtype=np.int64)
    pan[:, 10:] = 2000
    pan[1:4, 2:6] = 13001
    pan[1:4, 6:9] = 13002
    pan[7, :] = 255000
    return pan


def test_palette_cityscapes_and_generated():
    pal = class_palette(19)
    assert pal.dtype == np.uint8 and pal.shape == (19, 3)
    assert tuple(pal[0]) == ROAD and tuple(pal[2]) == BUILDING and tuple(pal[13]) == CAR
    gen = class_palette(5)
    assert gen.shape == (5, 3) and len({tuple(c) for c in gen}) == 5
    with pytest.raises(ValueError):
        class_palette(3, palette=[[0, 0, 0]])


def test_semantic_blends_class_colour_and_leaves_ignore():
    sem = np.array([[0, 2], [255, 0]])
    out = visualize_semantic(sem, class_palette(19), _image(2, 2), alpha=0.5)
    # (100 + 128) / 2 = 114, (50 + 64) / 2 = 57, (200 + 128) / 2 = 164
    assert out[0, 0].tolist() == [114, 57, 164]
    # (100 + 70) / 2 = 85, (50 + 70) / 2 = 60, (200 + 70) / 2 = 135
    assert out[0, 1].tolist() == [85, 60, 135]
    assert out[1, 0].tolist() == [100, 50, 200]  # ignore pixel: image unchanged
    no_image = visualize_semantic(sem, class_palette(19))
    assert no_image[0, 0].tolist() == list(ROAD) and no_image[1, 0].tolist() == [0, 0, 0]


def test_segment_borders_by_hand():
    ids = np.array([[1, 1, 2, 2],
                    [1, 1, 2, 2],
                    [3, 3, 3, 3]])
    expected = np.array([[0, 1, 1, 0],
                         [1, 1, 1, 1],
                         [1, 1, 1, 1]], dtype=bool)
    assert (segment_borders(ids) == expected).all()
    # only boundaries touching segment 2
    expected_2 = np.array([[0, 1, 1, 0],
                           [0, 1, 1, 1],
                           [0, 0, 1, 1]], dtype=bool)
    assert (segment_borders(ids, ids == 2) == expected_2).all()


def test_panoptic_colours_and_borders():
    pan = _scene()
    img = _image(8, 14)
    out = visualize_panoptic(pan, class_palette(19), 1000, img, alpha=0.5, jitter=40)
    # stuff pixels away from things: blended class colour
    assert out[5, 0].tolist() == [114, 57, 164]
    assert out[5, 12].tolist() == [85, 60, 135]
    # no border between two stuff classes (road | building at column 9|10, rows 4-6)
    assert out[5, 9].tolist() == [114, 57, 164] and out[5, 10].tolist() == [85, 60, 135]
    # void: image unchanged
    assert out[7, 4].tolist() == [100, 50, 200]
    # where the two cars meet (column 5|6) and around them: white borders
    assert out[2, 5].tolist() == WHITE and out[2, 6].tolist() == WHITE
    assert out[0, 3].tolist() == WHITE and out[1, 3].tolist() == WHITE  # car top edge, both sides
    # car interiors: blended colours jittered from the car colour, different per instance
    c1, c2 = out[2, 3].astype(int), out[2, 7].astype(int)
    assert c1.tolist() != c2.tolist() and c1.tolist() != WHITE and c2.tolist() != WHITE
    blended_car = (np.array([100, 50, 200]) + np.array(CAR)) / 2
    # each channel stays in an 81-wide window around the car colour (clamped to 0..255, so up to
    # 80 away from it), halved by the blend (+1 for rounding)
    assert np.abs(c1 - blended_car).max() <= 41 and np.abs(c2 - blended_car).max() <= 41
    # every pixel of one instance has one colour (except borders)
    inner = out[1:4, 2:6][1:2, 1:3]
    assert (inner == out[2, 3]).all()


def test_panoptic_without_borders_matches_instance_colour_table():
    pan = _scene()
    out = visualize_panoptic(pan, class_palette(19), 1000, None, border_color=None)
    expected = jittered_colors([CAR, CAR], [1, 2])
    assert out[1, 2].tolist() == expected[0].tolist() and out[1, 7].tolist() == expected[1].tolist()
    assert out[0, 0].tolist() == list(ROAD) and out[7, 0].tolist() == [0, 0, 0]


def test_instance_things_only_distinct_colours():
    pan = _scene()
    img = _image(8, 14)
    out = visualize_instance(pan, 1000, img, alpha=0.5)
    # stuff and void pixels away from things: the image itself
    assert out[5, 0].tolist() == [100, 50, 200] and out[5, 12].tolist() == [100, 50, 200]
    assert out[7, 3].tolist() == [100, 50, 200]
    assert out[2, 5].tolist() == WHITE and out[2, 6].tolist() == WHITE
    a, b = out[2, 3].tolist(), out[2, 7].tolist()
    assert a != b and a != [100, 50, 200] and b != [100, 50, 200]
    # blended colour = (image + distinct colour) / 2
    col = distinct_colors(np.array([13001, 13002])).astype(np.float64)
    expected = np.rint((np.array([100, 50, 200]) + col) / 2).astype(int)
    assert a == expected[0].tolist() and b == expected[1].tolist()


def test_panel_layout():
    pan = _scene()
    img = _image(8, 14)
    panel = panoptic_panel(img, pan // 1000, pan, class_palette(19), gap=2)
    assert panel.shape == (8, 4 * 14 + 3 * 2, 3) and panel.dtype == np.uint8
    assert (panel[:, :14] == img).all()
    assert (panel[:, 14:16] == 255).all()
    assert (panel[:, 16:30] == visualize_semantic(pan // 1000, class_palette(19), img)).all()
    with pytest.raises(ValueError):
        tile_horizontal([img, _image(7, 14)])


@settings(max_examples=50, deadline=None)
@given(base=st.tuples(*[st.integers(0, 255)] * 3), ids=st.sets(st.integers(1, 999), min_size=2, max_size=40),
       jitter=st.integers(1, 60))
def test_jittered_colours_distinct_and_near_base(base, ids, jitter):
    # distinct for ids below (2 * jitter + 1) ** 3 (the number of colours in the window)
    ids = np.array(sorted({i % (2 * jitter + 1) ** 3 for i in ids}))
    cols = jittered_colors([base] * len(ids), ids, jitter).astype(int)
    assert len({tuple(c) for c in cols}) == len(ids)
    assert (np.abs(cols - np.array(base)) <= 2 * jitter).all()
    assert cols.min() >= 0 and cols.max() <= 255


@settings(max_examples=50, deadline=None)
@given(ids=st.sets(st.integers(0, (1 << 21) - 1), min_size=2, max_size=100))
def test_distinct_colours_unique_and_bright(ids):
    cols = distinct_colors(np.array(sorted(ids)))
    assert len({tuple(c) for c in cols.tolist()}) == len(ids)
    assert cols.min() >= 60
