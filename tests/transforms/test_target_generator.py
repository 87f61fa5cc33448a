"""PanopticTargetGenerator against hand-computed targets on small crafted label maps."""
import math

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from paddleseg_ext.transforms import PanopticTargetGenerator, segment_index_map

# 9x11 map: stuff row 0 (id 7, road=0), car A rows 1-3 x cols 1-3 (id 26000), person B rows 5-7 x
# cols 6-8 plus pixel (5, 9) (id 24000), a car crowd at row 8 cols 0-2 (id 26), void elsewhere.
# A: 9 px, centre (2, 2). B: 10 px, centre y = (3*(5+6+7)+5)/10 = 5.9, x = (3*(6+7+8)+9)/10 = 7.2,
# rounded (6, 7). Crowd: 3 px, centre (8, 1).
STUFF, A, B, CROWD = 7, 26000, 24000, 26


def crafted():
    p = np.zeros((9, 11), np.int32)
    p[0, :] = STUFF
    p[1:4, 1:4] = A
    p[5:8, 6:9] = B
    p[5, 9] = B
    p[8, 0:3] = CROWD
    segments = [
        {"id": STUFF, "category_id": 0, "iscrowd": 0},
        {"id": A, "category_id": 13, "iscrowd": 0},
        {"id": B, "category_id": 11, "iscrowd": 0},
        {"id": CROWD, "category_id": 13, "iscrowd": 1},
    ]
    return p, segments


def gen(**kw):
    args = dict(ignore_index=255, thing_ids=list(range(11, 19)), sigma=2, small_instance_area=10)
    args.update(kw)
    return PanopticTargetGenerator(**args)


def test_shapes_and_dtypes():
    p, segs = crafted()
    out = gen()(p, segs)
    assert out["semantic"].dtype == np.int64 and out["semantic"].shape == (9, 11)
    assert out["panoptic"].dtype == np.int64 and out["panoptic"].shape == (9, 11)
    assert out["center"].dtype == np.float32 and out["center"].shape == (1, 9, 11)
    assert out["offset"].dtype == np.float32 and out["offset"].shape == (2, 9, 11)
    for k in ("semantic_weights", "center_weights", "offset_weights"):
        assert out[k].dtype == np.float32 and out[k].shape == (9, 11)


def test_semantic_and_panoptic():
    p, segs = crafted()
    out = gen()(p, segs)
    sem, pan = out["semantic"], out["panoptic"]
    assert sem[0, 5] == 0 and sem[2, 2] == 13 and sem[6, 7] == 11 and sem[5, 9] == 11
    assert sem[8, 1] == 13  # crowd keeps its class by default
    assert sem[4, 4] == 255 and sem[8, 10] == 255  # void
    # instances numbered from 1 per class in segments order; the crowd is the 2nd car segment
    assert pan[0, 0] == 0 and pan[2, 2] == 13001 and pan[6, 7] == 11001 and pan[8, 0] == 13002
    assert pan[4, 4] == 255000
    sem2 = gen(ignore_crowd_in_semantic=True)(p, segs)["semantic"]
    assert sem2[8, 1] == 255 and sem2[2, 2] == 13


def test_centers_and_heatmap():
    p, segs = crafted()
    out = gen()(p, segs)
    np.testing.assert_allclose(out["centers"], [[2, 2], [5.9, 7.2], [8, 1]], atol=1e-9)
    c = out["center"][0]
    assert c[2, 2] == pytest.approx(1.0) and c[6, 7] == pytest.approx(1.0) and c[8, 1] == pytest.approx(1.0)
    # (2,4): A at distance^2 4 -> exp(-4/8); B at 4^2+3^2=25 -> exp(-25/8); max wins
    assert c[2, 4] == pytest.approx(math.exp(-0.5), rel=1e-6)
    # (4,5): A 2^2+3^2=13 -> exp(-13/8) = 0.197; B 2^2+2^2=8 -> exp(-1) = 0.368;
    # crowd (8,1): 4^2+4^2=32 -> exp(-4)
    assert c[4, 5] == pytest.approx(math.exp(-1.0), rel=1e-6)
    # (0,10): A dx=8 > 3*sigma+1=7 (outside its window); B dy=6, dx=3 -> exp(-45/8)
    assert c[0, 10] == pytest.approx(math.exp(-45 / 8), rel=1e-5)
    # sigma=1: window radius 4; (0,8): A dx=6, B dy=6 and crowd dy=8 are all outside -> exactly 0
    c1 = gen(sigma=1)(p, segs)["center"][0]
    assert c1[0, 8] == 0.0
    assert c1[3, 2] == pytest.approx(math.exp(-0.5), rel=1e-6)


def test_offsets():
    p, segs = crafted()
    off = gen()(p, segs)["offset"]
    assert tuple(off[:, 1, 1]) == (1.0, 1.0)
    assert tuple(off[:, 3, 2]) == (-1.0, 0.0)
    np.testing.assert_allclose(off[:, 5, 9], [0.9, -1.8], atol=1e-6)
    np.testing.assert_allclose(off[:, 7, 6], [-1.1, 1.2], atol=1e-6)
    assert tuple(off[:, 0, 4]) == (0.0, 0.0)  # stuff
    assert tuple(off[:, 4, 4]) == (0.0, 0.0)  # void


def test_weights():
    p, segs = crafted()
    out = gen()(p, segs)
    sw, cw, ow = out["semantic_weights"], out["center_weights"], out["offset_weights"]
    # small_instance_area=10: A (9 px) and the crowd (3 px) are small, B (10 px) is not
    assert sw[2, 2] == 3 and sw[8, 1] == 3 and sw[6, 7] == 1 and sw[0, 0] == 1 and sw[4, 4] == 1
    assert cw[2, 2] == 1 and cw[6, 7] == 1 and cw[0, 0] == 1
    assert cw[4, 4] == 0 and cw[8, 1] == 0  # void, crowd
    assert ow[2, 2] == 1 and ow[5, 9] == 1
    assert ow[0, 0] == 0 and ow[4, 4] == 0 and ow[8, 1] == 0  # stuff, void, crowd
    assert ow.sum() == 19
    ow2 = gen(ignore_stuff_in_offset=False)(p, segs)["offset_weights"]
    assert ow2[0, 0] == 1 and ow2[8, 1] == 0 and ow2[4, 4] == 0 and ow2.sum() == 19 + 11
    sw2 = gen(small_instance_area=4096, small_instance_weight=5)(p, segs)["semantic_weights"]
    assert sw2[6, 7] == 5 and sw2[0, 0] == 1


def test_absent_segment_and_empty_info():
    p, segs = crafted()
    segs = [segs[0], {"id": 25000, "category_id": 12, "iscrowd": 0}] + segs[1:]  # 25000 not in the map
    out = gen()(p, segs)
    assert len(out["centers"]) == 3
    assert out["panoptic"][2, 2] == 13001
    empty = gen()(p, [])
    assert (empty["semantic"] == 255).all() and (empty["center"] == 0).all()
    assert (empty["center_weights"] == 0).all() and (empty["panoptic"] == 255000).all()


def test_large_coco_ids_match_small_ids():
    p, segs = crafted()
    big = {STUFF: 256 ** 3 - 7, A: 256 ** 3 - 100, B: 5_000_000, CROWD: 2_000_001}
    p_big = np.zeros_like(p)
    for old, new in big.items():
        p_big[p == old] = new
    segs_big = [dict(s, id=big[s["id"]]) for s in segs]
    a, b = gen()(p, segs), gen()(p_big, segs_big)
    for k in ("semantic", "center", "offset", "semantic_weights", "center_weights", "offset_weights", "panoptic"):
        np.testing.assert_array_equal(a[k], b[k])


def test_segment_index_map_paths():
    p = np.array([[0, 5, 9], [70, 5, 3]])
    np.testing.assert_array_equal(segment_index_map(p, [9, 5, 70]), [[3, 1, 0], [2, 1, 3]])
    p2 = p * 100000  # beyond the lookup-table bound: binary search path
    np.testing.assert_array_equal(segment_index_map(p2, [900000, 500000, 7000000]), [[3, 1, 0], [2, 1, 3]])


def brute_force(p, segs, thing_ids, sigma, small_area):
    """Pixel-by-pixel definition of the targets, for the property test."""
    h, w = p.shape
    r = 3 * sigma + 1
    sem = np.full((h, w), 255)
    center = np.zeros((h, w))
    off = np.zeros((2, h, w))
    sw, cw, ow = np.ones((h, w)), np.zeros((h, w)), np.zeros((h, w))
    for s in segs:
        pix = [(y, x) for y in range(h) for x in range(w) if p[y, x] == s["id"]]
        if not pix:
            continue
        thing = s["category_id"] in thing_ids
        cy = sum(y for y, _ in pix) / len(pix)
        cx = sum(x for _, x in pix) / len(pix)
        for y, x in pix:
            sem[y, x] = s["category_id"]
            cw[y, x] = 0 if s["iscrowd"] else 1
            ow[y, x] = 1 if thing and not s["iscrowd"] else 0
            if thing:
                sw[y, x] = 3 if len(pix) < small_area else 1
                off[:, y, x] = (cy - y, cx - x)
        if thing:
            y0, x0 = int(np.round(cy)), int(np.round(cx))
            for y in range(max(0, y0 - r), min(h, y0 + r + 1)):
                for x in range(max(0, x0 - r), min(w, x0 + r + 1)):
                    center[y, x] = max(center[y, x], math.exp(-((y - y0) ** 2 + (x - x0) ** 2) / (2 * sigma ** 2)))
    return sem, center, off, sw, cw, ow


@settings(max_examples=25, deadline=None)
@given(st.data())
def test_matches_brute_force(data):
    h, w = data.draw(st.integers(3, 14)), data.draw(st.integers(3, 14))
    n = data.draw(st.integers(0, 6))
    p = np.zeros((h, w), np.int32)
    segs = []
    for i in range(n):
        y0, x0 = data.draw(st.integers(0, h - 1)), data.draw(st.integers(0, w - 1))
        y1, x1 = data.draw(st.integers(y0 + 1, h)), data.draw(st.integers(x0 + 1, w))
        p[y0:y1, x0:x1] = i + 1
        segs.append({"id": i + 1, "category_id": data.draw(st.sampled_from([0, 3, 11, 13])),
                     "iscrowd": data.draw(st.integers(0, 1))})
    sigma = data.draw(st.sampled_from([1, 2]))
    out = gen(sigma=sigma, small_instance_area=6)(p, segs)
    sem, center, off, sw, cw, ow = brute_force(p, segs, list(range(11, 19)), sigma, 6)
    np.testing.assert_array_equal(out["semantic"], sem)
    np.testing.assert_allclose(out["center"][0], center, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(out["offset"], off, atol=1e-5)
    np.testing.assert_array_equal(out["semantic_weights"], sw)
    np.testing.assert_array_equal(out["center_weights"], cw)
    np.testing.assert_array_equal(out["offset_weights"], ow)
