"""PanopticFCN inference steps: candidate peaks, kernel fusion, and the thing/stuff combination at
the edges of its thresholds; the vectorised overlap rule against a sequential loop."""
import math

import numpy as np
import paddle
import pytest

from paddleseg_ext.models.panoptic_fcn.dual_cells import argmax_channel, thing_units
from paddleseg_ext.models.panoptic_fcn.layout import ClassLayout
from paddleseg_ext.models.panoptic_fcn.postprocess import (PanopticFCNPostprocess, accept_things, fuse_things,
                                                           mask_patterns, sort_desc, thing_candidates)

THINGS = list(range(11, 19))
VOID = 255000


def layer(**kw):
    return PanopticFCNPostprocess(5, ClassLayout(19, THINGS), 1000, VOID, **kw)


def t(x, dtype="float32"):
    return paddle.to_tensor(np.asarray(x), dtype=dtype)


def test_sort_desc_is_deterministic_on_ties():
    assert sort_desc(t([0.5, 0.9, 0.5, 0.1, 0.9])).numpy().tolist() == [1, 4, 0, 2, 3]


def test_candidate_smoothing_counts_padding_and_nms_keeps_ties():
    logit = np.full((1, 2, 5, 5), -30.0, np.float32)
    logit[0, 1, 0, 0] = 30.0  # a corner peak: the 3x3 average counts the 5 padded cells -> 1/9
    logit[0, 0, 2, 2] = logit[0, 0, 2, 3] = 30.0  # two equal neighbours: both survive NMS
    kmap = np.arange(3 * 25, dtype=np.float32).reshape(1, 3, 5, 5)
    s, c, k, v = thing_candidates(t(logit), t(kmap), 3, 50, 0.05)
    s, c, v = s.numpy(), c.numpy(), v.numpy()
    assert v.sum() == 3
    corner = s[v & (c == 1)]
    assert corner == pytest.approx([(1 + 1 / 9) / 2], abs=1e-6)  # exclusive=True would give (1 + 1/4) / 2
    pair = s[v & (c == 0)]
    assert pair == pytest.approx([(1 + 2 / 9) / 2] * 2, abs=1e-6)
    np.testing.assert_allclose(k.numpy()[v & (c == 1)][0], kmap[0, :, 0, 0])
    # 5x5 pooling (P6, P7)
    s5, c5, _, v5 = thing_candidates(t(logit[:, 1:]), t(kmap), 5, 50, 0.05)
    assert s5.numpy()[v5.numpy()] == pytest.approx([(1 + 1 / 25) / 2], abs=1e-6)


def test_top_k_per_level_is_min_of_map_size_and_top():
    rng = np.random.default_rng(0)
    logit = rng.normal(size=(1, 2, 2, 3)).astype(np.float32)  # 6 pixels, 2 classes
    s, c, _, v = thing_candidates(t(logit), t(np.zeros((1, 4, 2, 3))), 3, 50, -0.5)  # every position passes
    assert v.numpy().sum() == 6  # the original's top_num = min(h * w, 50) = 6 candidates
    s_small, _, _, v_small = thing_candidates(t(logit), t(np.zeros((1, 4, 2, 3))), 3, 4, -0.5)
    assert v_small.numpy().sum() == 4
    np.testing.assert_allclose(s_small.numpy(), s.numpy()[:4])  # the best ones, in decreasing order


def unit(deg):
    return [math.cos(math.radians(deg)), math.sin(math.radians(deg)), 0.0]


def test_fusion_chain_a_b_c():
    # cos(a, b) = cos(b, c) = cos 20 deg = 0.94 >= 0.9 but cos(a, c) = cos 40 deg = 0.77: a absorbs b;
    # c's first similar predecessor is b, which was dropped, so c disappears with it
    kernels = t([unit(0), unit(20), unit(40)])
    fused, keep = fuse_things(kernels, t([0.9, 0.8, 0.7]), t([3, 3, 3], "int64"), t([True] * 3, "bool"))
    assert keep.numpy().tolist() == [True, False, False]
    np.testing.assert_allclose(fused.numpy()[0], (np.array(unit(0)) + np.array(unit(20))) / 2, atol=1e-6)
    # a fourth kernel similar to a (and to b, c): its first similar predecessor is a -> merged into a
    kernels = t([unit(0), unit(20), unit(40), unit(10)])
    fused, keep = fuse_things(kernels, t([0.9, 0.8, 0.7, 0.6]), t([3] * 4, "int64"), t([True] * 4, "bool"))
    assert keep.numpy().tolist() == [True, False, False, False]
    expected = (np.array(unit(0)) + np.array(unit(20)) + np.array(unit(10))) / 3
    np.testing.assert_allclose(fused.numpy()[0], expected, atol=1e-6)


def test_fusion_is_class_specific_and_ignores_invalid_candidates():
    kernels = t([unit(0), unit(5), unit(90), unit(1)])
    scores = t([0.9, 0.8, 0.7, 0.6])
    classes = t([1, 2, 1, 1], "int64")
    valid = t([True, True, True, False], "bool")
    _, keep = fuse_things(kernels, scores, classes, valid, 0.9, True)
    assert keep.numpy().tolist() == [True, True, True, False]  # same direction, other class: kept
    fused, keep = fuse_things(kernels, scores, classes, valid, 0.9, False)
    assert keep.numpy().tolist() == [True, False, True, False]
    np.testing.assert_allclose(fused.numpy()[0], (np.array(unit(0)) + np.array(unit(5))) / 2, atol=1e-6)
    # a similarity exactly at the threshold fuses (>=): cos(a, b) = 0.9
    b = [0.9, math.sqrt(1 - 0.81), 0.0]
    _, keep = fuse_things(t([unit(0), b]), t([0.9, 0.8]), t([0, 0], "int64"), t([True, True], "bool"),
                          float(np.float32(0.9)))
    assert keep.numpy().tolist() == [True, False]


# ----------------------------------------------------------------------------- combination

H, W = 8, 8


def combine(layer_, masks, scores, channels, stuff_channel, valid=None):
    """Run the combination on exact masks: probabilities 0/1 at a 'stride 4' grid equal to the output
    grid (valid = 4H x 4W, original = H x W; x4 then /4 bilinear resizing keeps 0/1 maps exact)."""
    k = len(masks)
    probs = np.asarray(masks, np.float32).reshape(k, H, W) if k else np.zeros((0, H, W), np.float32)
    lay = layer_.layout
    stuff = np.zeros((lay.num_stuff_channels, H, W), np.float32)
    stuff[np.asarray(stuff_channel), np.arange(H)[:, None], np.arange(W)[None, :]] = 0.9
    keep = np.ones(k, bool) if valid is None else np.asarray(valid)
    out = layer_.combine(t(probs), t(scores), t(channels, "int64"), t(keep, "bool"), t(stuff),
                         t([4 * H, 4 * W], "int64"), t([H, W], "int64"))
    return [o.numpy() for o in out]


def box(y0, x0, y1, x1):
    m = np.zeros((H, W), bool)
    m[y0:y1, x0:x1] = True
    return m


def test_overlap_threshold_edge():
    a = box(0, 0, 4, 4)  # 16 px
    b = box(2, 0, 6, 4)  # 16 px, 8 on a: overlap / area = 0.5 -> kept (skipped only when > 0.5)
    stuff = np.full((H, W), 1)  # stuff channel 1 = train id 0
    pan, sem, ids, scores = combine(layer(stuff_area=0), [a, b], [0.9, 0.8], [0, 0], stuff)
    assert (pan[a] == 11001).all() and (pan[b & ~a] == 11002).all() and (pan[~(a | b)] == 0).all()
    assert ids.tolist() == [11001, 11002] and scores[:, 0] == pytest.approx([0.9, 0.8])
    b2 = b.copy()
    b2[5, 3] = False  # 15 px, 8 on a: 8 / 15 > 0.5 -> skipped
    pan, sem, ids, _ = combine(layer(stuff_area=0), [a, b2], [0.9, 0.8], [0, 0], stuff)
    assert ids.tolist() == [11001] and (pan[b2 & ~a] == 0).all()
    # a skipped mask does not block later ones: c overlaps only b2
    c = box(4, 0, 8, 4)
    pan, _, ids, _ = combine(layer(stuff_area=0), [a, b2, c], [0.9, 0.8, 0.7], [0, 0, 1], stuff)
    assert ids.tolist() == [11001, 12001] and (pan[c] == 12001).all()


def test_stuff_area_edge():
    stuff = np.full((H, W), 2)  # train id 1 on 54 px
    stuff[0, :] = 1  # train id 0 on 10 px
    stuff[1, :2] = 1
    stuff[7, :] = 0  # the "things" channel: never painted as stuff
    for area, painted in [(10, True), (11, False)]:
        pan, sem, ids, _ = combine(layer(stuff_area=area), [], [], [], stuff)
        assert ids.size == 0
        assert (pan[stuff == 1] == (0 if painted else VOID)).all()
        assert (pan[stuff == 2] == 1000).all() and (pan[stuff == 0] == VOID).all()
        assert (sem[stuff == 1] == 0).all()  # the semantic map keeps the class either way


def test_instance_score_threshold_edge():
    a = box(0, 0, 3, 3)
    stuff = np.full((H, W), 1)
    for score, painted in [(0.2, True), (float(np.nextafter(np.float32(0.2), np.float32(0))), False)]:
        pan, sem, ids, _ = combine(layer(stuff_area=0), [a], [score], [2], stuff)
        assert (ids.tolist() == [13001]) == painted
        assert (pan[a] == (13001 if painted else 0)).all()
        assert (sem[a] == (13 if painted else 0)).all()
    # the "things" region without an accepted instance: void, semantic from the covering mask
    stuff0 = np.zeros((H, W), np.int64)
    pan, sem, ids, _ = combine(layer(stuff_area=0), [a], [0.1], [2], stuff0)
    assert (pan == VOID).all() and (sem[a] == 13).all()


def test_empty_masks_and_invalid_slots_are_never_painted():
    stuff = np.full((H, W), 1)
    pan, _, ids, _ = combine(layer(stuff_area=0), [np.zeros((H, W), bool), box(0, 0, 2, 2)], [0.9, 0.8], [0, 1],
                             stuff, valid=[True, False])
    assert ids.size == 0 and (pan == 0).all()


@pytest.mark.parametrize("seed", range(4))
def test_vectorised_acceptance_equals_the_sequential_rule(seed):
    rng = np.random.default_rng(seed)
    k, h, w = 12, 16, 16
    masks = np.zeros((k, h, w), bool)
    for i in range(k):  # overlapping boxes of random sizes, some empty
        y0, x0 = rng.integers(0, h, 2)
        masks[i, y0:y0 + rng.integers(0, 9), x0:x0 + rng.integers(0, 9)] = True
    eligible = rng.uniform(size=k) < 0.8
    # sequential reference (the original's loop)
    painted = np.zeros((h, w), bool)
    expected = []
    for i in range(k):
        area, inter = masks[i].sum(), (masks[i] & painted).sum()
        ok = bool(eligible[i] and area > 0 and inter <= 0.5 * area)
        expected.append(ok)
        if ok:
            painted |= masks[i]
    bits, counts, inverse = mask_patterns(t(masks.astype(np.float32)), t([4 * h, 4 * w], "int64"),
                                          t([h, w], "int64"), 0.4, 5)
    accept, area = accept_things(bits, counts, t(eligible, "bool"), 0.5)
    assert accept.numpy().tolist() == expected
    np.testing.assert_array_equal(area.numpy(), masks.reshape(k, -1).sum(1))
    # the patterns reproduce every mask
    recon = bits.numpy()[inverse.numpy()].T.reshape(k, h, w) > 0.5
    np.testing.assert_array_equal(recon, masks)


def test_more_than_one_pattern_word():
    # 120 masks need three 50-bit words; every mask is one pixel
    k, h, w = 120, 11, 11
    masks = np.zeros((k, h * w), np.float32)
    masks[np.arange(k), np.arange(k)] = 1
    bits, counts, inverse = mask_patterns(t(masks.reshape(k, h, w)), t([4 * h, 4 * w], "int64"),
                                          t([h, w], "int64"), 0.4, 7)
    assert bits.shape == [k + 1, k]
    recon = bits.numpy()[inverse.numpy()].T
    np.testing.assert_array_equal(recon, masks)


def test_unknown_setting_is_a_user_error():
    from paddleseg_ext.utils import UserInputError

    with pytest.raises(UserInputError, match="overlap_thresh"):
        layer(overlap_thresh=0.5)


class _Combine(paddle.nn.Layer):
    def __init__(self, post):
        super().__init__()
        self.post = post

    def forward(self, probs, scores, classes, keep, stuff, valid_hw, ori_hw):
        return self.post.combine(probs, scores, classes, keep, stuff, valid_hw, ori_hw)


def test_eager_shortcuts_give_the_traced_maps():
    # Eagerly, combine upsamples only the kept slots and the stuff channels with a kernel; traced, all.
    # Soft random maps, a resize to a different original size, and pixels where every stuff channel
    # with a kernel is 0 (the tie then goes to the lowest channel without one, channel 0).
    rng = np.random.default_rng(0)
    post = layer(stuff_area=0, instance_threshold=0.0)
    k, h, w = 10, 6, 8
    probs = rng.uniform(size=(k, h, w)).astype(np.float32) ** 3
    keep = np.array([1, 0, 1, 1, 0, 0, 1, 1, 0, 1], bool)
    scores = np.sort(rng.uniform(0.1, 1, size=k)).astype(np.float32)[::-1].copy()
    classes = rng.integers(0, len(THINGS), size=k)
    stuff = rng.uniform(size=(post.layout.num_stuff_channels, h, w)).astype(np.float32)
    stuff[[0, 1, 3, 4, 6, 8, 10]] = 0.0
    stuff[:, :2] = 0.0
    args = [t(probs * keep[:, None, None]), t(scores), t(classes, "int64"), t(keep, "bool"), t(stuff),
            t([4 * h, 4 * w], "int64"), t([4 * h - 3, 4 * w + 5], "int64")]
    eager = [o.numpy() for o in post.combine(*args)]
    traced = [o.numpy() for o in paddle.jit.to_static(_Combine(post), full_graph=True)(*args)]
    assert eager[2].size > 0 and (eager[1][:2] == 0).any()
    for a, b in zip(eager, traced):
        np.testing.assert_array_equal(a, b)


def _cell_case(name, rng, post, h, w):
    """(probs, keep, stuff) of one edge of the eager cell path (see dual_cells)."""
    s = post.layout.num_stuff_channels
    k = 120 if name == "crowded" else 10
    probs = rng.uniform(size=(k, h, w)).astype(np.float32) ** 3
    keep = rng.uniform(size=k) < 0.7
    stuff = rng.uniform(0, 0.3, size=(s, h, w)).astype(np.float32)  # channels 2, 5, 9 win columns 0-2, 3-5, 6-7
    stuff[[2] * 3 + [5] * 3 + [9] * (w - 6), :, np.arange(w)] += 0.6
    if name == "noise":  # most cells undecided: the full resize instead
        probs = rng.uniform(0.3, 0.5, size=(k, h, w)).astype(np.float32)
        keep[:] = True
        stuff = rng.uniform(size=(s, h, w)).astype(np.float32)
    elif name == "thresholds":  # corners on the mask threshold and within MARGIN of it, equal stuff channels
        # (columns 1-3 mostly above, a few corners just under the threshold; columns 4-7 the reverse)
        high = np.float32(0.4) + np.array([2e-5, 2e-5, 2e-5, -9e-6, -1e-6, 0], np.float32)
        low = np.float32(0.4) + np.array([-2e-5, -2e-5, -2e-5, 9e-6, 9e-6, 0], np.float32)
        probs = np.concatenate([rng.choice(high, size=(k, h, 4)), rng.choice(low, size=(k, h, w - 4))], 2)
        probs[:, :, :1] = 0.4
        keep[:] = np.arange(k) == 0  # one mask: each of its pixels shows in the maps
        stuff[:, :3] = 0.5
        stuff[[2, 5], :, 3:] = 0.7
    elif name == "no_kernel":  # nothing kept, stuff everywhere
        keep[:] = False
        stuff[[0, 1, 3, 4, 6, 8, 10]] = 0.0
    elif name == "crowded":  # every cell undecided for 60 masks (more than a word's 53 bits): masks
        # 0-52 cover (almost) nothing (0.4 and 0.4 - 2e-5 in a checkerboard), masks 53-59 vary; the
        # other 60 are 0 (under half of the pairs undecided: the cell path is kept)
        probs = np.where((np.arange(h)[:, None] + np.arange(w)) % 2 == 1, np.float32(0.39998), np.float32(0.4))
        probs = np.concatenate([np.repeat(probs[None], 53, 0), rng.uniform(0.35, 0.45, size=(7, h, w)),
                                np.zeros((k - 60, h, w))]).astype(np.float32)
        keep[:] = True
    return probs * keep[:, None, None], keep, stuff


@pytest.mark.parametrize("name, crop", [("soft", (0, 0)), ("thresholds", (3, 2)), ("no_kernel", (1, 0)),
                                        ("crowded", (2, 3)), ("noise", (0, 1))])
def test_eager_cell_path_gives_the_traced_maps(name, crop):
    # Eagerly, without a resize after the crop, combine upsamples only the undecided cells (dual_cells);
    # traced, all maps: the maps must be the same, also on the thresholds' edges and when no kernel survives.
    rng = np.random.default_rng(len(name))
    post = layer(stuff_area=0, instance_threshold=0.0, mask_block=32)
    h, w = 6, 8
    probs, keep, stuff = _cell_case(name, rng, post, h, w)
    k = len(keep)
    scores = np.sort(rng.uniform(0.1, 1, size=k)).astype(np.float32)[::-1].copy()
    classes = rng.integers(0, len(THINGS), size=k)
    size = [4 * h - crop[0], 4 * w - crop[1]]
    args = [t(probs), t(scores), t(classes, "int64"), t(keep, "bool"), t(stuff), t(size, "int64"), t(size, "int64")]
    grid = post._cell_grid(args[0], args[5], args[6])
    assert grid == (h, w) + tuple(size)
    cells = thing_units(args[0], 0.4, grid) is not None, argmax_channel(args[4], grid) is not None
    assert cells == ((False, False) if name == "noise" else (True, True))
    eager = [o.numpy() for o in post.combine(*args)]
    traced = [o.numpy() for o in paddle.jit.to_static(_Combine(post), full_graph=True)(*args)]
    assert (eager[2].size > 0) == (name != "no_kernel")
    for a, b in zip(eager, traced):
        np.testing.assert_array_equal(a, b)
