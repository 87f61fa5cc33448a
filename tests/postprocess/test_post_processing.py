"""Tests of paddleseg_ext.postprocess: hand-computed cases, a brute-force cross-check, properties."""
import numpy as np
import paddle
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import paddleseg_ext.postprocess.panoptic_ops as ops
import paddleseg_ext.postprocess.post_processing as pp
from paddleseg_ext.postprocess import (find_instance_centers, instance_scores, panoptic_postprocess,
                                       semantic_from_logits)
from paddleseg_ext.utils import UserInputError


def offsets_to(shape, targets):
    """[2,H,W] offsets sending each pixel of `targets` {(y, x): (cy, cx)} to (cy, cx), 0 elsewhere."""
    off = np.zeros((2,) + shape, np.float32)
    for (y, x), (cy, cx) in targets.items():
        off[:, y, x] = (cy - y, cx - x)
    return off


# ----------------------------------------------------------------------------- hand-built cases

SEM_A = np.array([
    [0, 0, 0, 0, 1, 1, 1, 1],
    [0, 11, 11, 0, 1, 12, 12, 1],
    [0, 11, 11, 0, 1, 12, 12, 1],
    [0, 0, 0, 0, 1, 1, 1, 1],
    [2, 0, 0, 0, 1, 1, 11, 1],
    [0, 0, 0, 0, 1, 1, 1, 1]])


def case_a():
    heat = np.zeros((1, 6, 8), np.float32)
    heat[0, 1, 1], heat[0, 2, 6] = 0.9, 0.8
    targets = {(y, x): (1, 1) for y in (1, 2) for x in (1, 2)}
    targets.update({(y, x): (2, 6) for y in (1, 2) for x in (5, 6)})
    targets[(4, 6)] = (2, 6)  # a stray class-11 pixel voting in the class-12 instance
    return SEM_A.copy(), heat, offsets_to((6, 8), targets)


def test_two_instances_stuff_and_small_stuff():
    sem, heat, off = case_a()
    pan, centers = panoptic_postprocess(sem, heat, off, [11, 12], stuff_area=2, void_label=255000)
    v = 255000
    expected = np.array([
        [0, 0, 0, 0, 1000, 1000, 1000, 1000],
        [0, 11001, 11001, 0, 1000, 12001, 12001, 1000],
        [0, 11001, 11001, 0, 1000, 12001, 12001, 1000],
        [0, 0, 0, 0, 1000, 1000, 1000, 1000],
        [v, 0, 0, 0, 1000, 1000, 12001, 1000],  # class 2 has 1 px < stuff_area; (4,6) joins 12001
        [0, 0, 0, 0, 1000, 1000, 1000, 1000]])
    assert isinstance(pan, np.ndarray) and pan.dtype == np.int64
    np.testing.assert_array_equal(pan, expected)
    np.testing.assert_array_equal(centers, [[1, 1], [2, 6]])


def test_negative_void_label_and_other_divisor():
    sem, heat, off = case_a()
    pan, _ = panoptic_postprocess(sem, heat, off, [11, 12], label_divisor=256, stuff_area=2, void_label=-1)
    assert pan[4, 0] == -1
    assert pan[1, 1] == 11 * 256 + 1 and pan[1, 5] == 12 * 256 + 1 and pan[4, 6] == 12 * 256 + 1
    assert pan[0, 4] == 256 and pan[0, 0] == 0


def test_instance_numbers_per_class_and_vote_tie():
    h, w = 5, 15
    sem = np.zeros((h, w), np.int64)
    sem[1:4, 1:4] = 11
    sem[1, 6:8] = 13
    sem[3, 6:8] = 12
    sem[1:4, 11:14] = 11
    heat = np.zeros((h, w), np.float32)
    heat[2, 2] = heat[2, 7] = heat[2, 12] = 0.7
    targets = {}
    for y in range(h):
        for x in range(w):
            if sem[y, x]:
                targets[(y, x)] = (2, 2) if x < 5 else (2, 7) if x < 10 else (2, 12)
    off = offsets_to((h, w), targets)
    pan, centers = panoptic_postprocess(sem, heat, off, [13, 11, 12], stuff_area=0)
    expected = np.zeros((h, w), np.int64)
    expected[1:4, 1:4] = 11001
    expected[1, 6:8] = 12001  # 2 votes for 12, 2 for 13: the smaller class id wins
    expected[3, 6:8] = 12001
    expected[1:4, 11:14] = 11002  # second class-11 instance in centre order
    np.testing.assert_array_equal(pan, expected)
    np.testing.assert_array_equal(centers, [[2, 2], [2, 7], [2, 12]])


def test_equidistant_pixel_goes_to_lowest_centre():
    sem = np.zeros((3, 11), np.int64)
    sem[1, 1] = sem[1, 5] = sem[1, 9] = sem[0, 5] = 11
    heat = np.zeros((3, 11), np.float32)
    heat[1, 1] = heat[1, 9] = 0.5
    off = np.zeros((2, 3, 11), np.float32)
    off[1, 0, 5] = 0.5  # (0, 5.5): nearer to (1, 9)
    pan, _ = panoptic_postprocess(sem, heat, off, [11], stuff_area=0)
    # (1,5) points at itself, 4 px from both centres: centre 0 (1,1) wins the tie.
    assert pan[1, 1] == 11001 and pan[1, 5] == 11001
    assert pan[1, 9] == 11002 and pan[0, 5] == 11002


def test_center_nms_threshold_plateau_and_kernel():
    heat = np.zeros((7, 16), np.float32)
    heat[1, 1] = heat[1, 2] = 0.5  # plateau: both equal their window maximum
    heat[5, 1] = 0.3  # 4 rows from the plateau: outside a 7x7 window
    heat[3, 8], heat[5, 10] = 0.9, 0.6  # 2 px apart: 0.6 suppressed by a 7x7 window, not by 3x3
    heat[0, 11] = 0.1  # equal to the threshold: dropped
    heat[6, 14] = 0.11
    np.testing.assert_array_equal(find_instance_centers(heat, 0.1, 7, None),
                                  [[1, 1], [1, 2], [3, 8], [5, 1], [6, 14]])
    np.testing.assert_array_equal(find_instance_centers(heat, 0.1, 3, None),
                                  [[1, 1], [1, 2], [3, 8], [5, 1], [5, 10], [6, 14]])
    np.testing.assert_array_equal(find_instance_centers(heat, 0.4, 7, None), [[1, 1], [1, 2], [3, 8]])
    # A negative threshold never makes 0 (or negative) values centres.
    assert find_instance_centers(np.zeros((5, 5), np.float32), -1.0, 3, None).shape == (0, 2)


def test_top_k():
    heat = np.zeros((9, 9), np.float32)
    for (y, x), v in {(0, 0): 0.5, (0, 8): 0.9, (4, 4): 0.5, (8, 0): 0.7, (8, 8): 0.5}.items():
        heat[y, x] = v
    all5 = [[0, 0], [0, 8], [4, 4], [8, 0], [8, 8]]
    np.testing.assert_array_equal(find_instance_centers(heat, 0.1, 3, None), all5)
    np.testing.assert_array_equal(find_instance_centers(heat, 0.1, 3, 5), all5)  # K == top_k: all kept
    np.testing.assert_array_equal(find_instance_centers(heat, 0.1, 3, 200), all5)
    # 0.9 and 0.7, then ties at 0.5 broken by raster order; output in raster order.
    np.testing.assert_array_equal(find_instance_centers(heat, 0.1, 3, 4), [[0, 0], [0, 8], [4, 4], [8, 0]])
    np.testing.assert_array_equal(find_instance_centers(heat, 0.1, 3, 3), [[0, 0], [0, 8], [8, 0]])
    np.testing.assert_array_equal(find_instance_centers(heat, 0.1, 3, 1), [[0, 8]])


def test_top_k_limits_instances_in_panoptic():
    heat = np.zeros((1, 9, 9), np.float32)
    heat[0, 0, 0], heat[0, 8, 8] = 0.3, 0.6
    sem = np.full((9, 9), 11)
    pan, centers = panoptic_postprocess(sem, heat, np.zeros((2, 9, 9), np.float32), [11], top_k=1,
                                        nms_kernel=3)
    np.testing.assert_array_equal(centers, [[8, 8]])
    assert (pan == 11001).all()


def test_no_center_makes_thing_pixels_void():
    sem, heat, off = case_a()
    heat[:] = 0.05
    pan, centers = panoptic_postprocess(sem, heat, off, [11, 12], stuff_area=2, void_label=255000)
    assert centers.shape == (0, 2)
    thing = np.isin(SEM_A, [11, 12])
    assert (pan[thing] == 255000).all()
    np.testing.assert_array_equal(pan[SEM_A == 0], 0)
    np.testing.assert_array_equal(pan[SEM_A == 1], 1000)
    assert pan[4, 0] == 255000


def test_empty_thing_ids_everything_is_stuff():
    sem, heat, off = case_a()
    pan, centers = panoptic_postprocess(sem, heat, off, [], stuff_area=0)
    np.testing.assert_array_equal(pan, SEM_A * 1000)
    assert centers.shape == (2, 2)  # centres are still reported


def test_thing_ids_absent_from_semantic():
    sem, heat, off = case_a()
    pan, _ = panoptic_postprocess(sem, heat, off, [17, 300], stuff_area=0)
    np.testing.assert_array_equal(pan, SEM_A * 1000)


def test_all_void_and_all_stuff():
    void_sem = np.full((10, 10), 255)
    zeros = np.zeros((2, 10, 10), np.float32)
    heat = np.zeros((10, 10), np.float32)
    heat[5, 5] = 1.0
    # Void class 255 is treated like any non-thing class: pasted as 255 * 1000 when big enough.
    pan, _ = panoptic_postprocess(void_sem, heat, zeros, [11], stuff_area=0, void_label=255000)
    assert (pan == 255000).all()
    pan, _ = panoptic_postprocess(void_sem, heat, zeros, [11], stuff_area=101, void_label=-1)
    assert (pan == -1).all()
    stuff = np.full((10, 10), 3)
    pan, _ = panoptic_postprocess(stuff, heat, zeros, [11], stuff_area=100)
    assert (pan == 3000).all()
    pan, _ = panoptic_postprocess(stuff, heat, zeros, [11], stuff_area=101)
    assert (pan == 255).all()


def test_single_row_and_column():
    for shape in [(1, 9), (9, 1)]:
        sem = np.full(shape, 11)
        heat = np.zeros(shape, np.float32)
        heat.flat[4] = 0.5
        pan, centers = panoptic_postprocess(sem, heat, np.zeros((2,) + shape, np.float32), [11])
        assert (pan == 11001).all() and centers.shape == (1, 2)


def test_paddle_in_paddle_out_and_batch_axes():
    sem, heat, off = case_a()
    ref, ref_c = panoptic_postprocess(sem, heat, off, [11, 12], stuff_area=2)
    pan, centers = panoptic_postprocess(paddle.to_tensor(sem[None]), paddle.to_tensor(heat[None]),
                                        paddle.to_tensor(off[None]), [11, 12], stuff_area=2)
    assert isinstance(pan, paddle.Tensor) and pan.dtype == paddle.int64 and list(pan.shape) == [6, 8]
    np.testing.assert_array_equal(pan.numpy(), ref)
    np.testing.assert_array_equal(centers.numpy(), ref_c)
    # int32 / uint8 semantic and float64 inputs are accepted
    pan2, _ = panoptic_postprocess(sem.astype(np.uint8), heat.astype(np.float64), off.astype(np.float64),
                                   [11, 12], stuff_area=2)
    np.testing.assert_array_equal(pan2, ref)
    # read-only numpy arrays (cannot be shared zero-copy) work too
    ro = [a.copy() for a in (sem, heat, off)]
    for a in ro:
        a.setflags(write=False)
    np.testing.assert_array_equal(panoptic_postprocess(*ro, [11, 12], stuff_area=2)[0], ref)


def test_inputs_not_modified():
    sem, heat, off = case_a()
    copies = [a.copy() for a in (sem, heat, off)]
    panoptic_postprocess(sem, heat, off, [11, 12])
    for a, b in zip((sem, heat, off), copies):
        np.testing.assert_array_equal(a, b)


def test_grouping_in_many_blocks_gives_same_result(monkeypatch):
    rng = np.random.default_rng(3)
    sem = rng.integers(0, 4, size=(40, 50))
    heat = rng.random((40, 50)).astype(np.float32)
    off = rng.normal(0, 5, size=(2, 40, 50)).astype(np.float32)
    ref, _ = panoptic_postprocess(sem, heat, off, [2, 3], nms_kernel=3, stuff_area=5)
    monkeypatch.setattr(ops, "GROUP_BLOCK", 37)  # blocks of a pixel or two
    pan, centers = panoptic_postprocess(sem, heat, off, [2, 3], nms_kernel=3, stuff_area=5)
    assert centers.shape[0] > 37
    np.testing.assert_array_equal(pan, ref)


@pytest.mark.parametrize("kwargs, match", [
    (dict(nms_kernel=4), "nms_kernel"),
    (dict(nms_kernel=0), "nms_kernel"),
    (dict(top_k=0), "top_k"),
    (dict(threshold="x"), "threshold"),
    (dict(thing_ids=[-1]), "thing_ids"),
])
def test_bad_arguments(kwargs, match):
    sem, heat, off = case_a()
    args = dict(thing_ids=[11, 12])
    args.update(kwargs)
    with pytest.raises(UserInputError, match=match):
        panoptic_postprocess(sem, heat, off, **args)


def test_bad_inputs():
    sem, heat, off = case_a()
    with pytest.raises(UserInputError, match="offsets"):
        panoptic_postprocess(sem, heat, off[:, :5], [11])
    with pytest.raises(UserInputError, match="offsets"):
        panoptic_postprocess(sem, heat, off[0], [11])
    with pytest.raises(UserInputError, match="semantic"):
        panoptic_postprocess(sem.astype(np.float32), heat, off, [11])
    with pytest.raises(UserInputError, match="semantic"):
        panoptic_postprocess(sem - 5, heat, off, [11])
    with pytest.raises(UserInputError, match="center_heatmap"):
        panoptic_postprocess(sem, np.zeros((2, 6, 8), np.float32), off, [11])


@pytest.mark.parametrize("dtype", [np.int64, np.int32, np.int16])
@pytest.mark.parametrize("bad", [-1, -(2 ** 15), 1 << 20, -(2 ** 32) + 3])
@pytest.mark.parametrize("as_tensor", [False, True])
def test_class_ids_out_of_range_named(dtype, bad, as_tensor):
    """Negative or too large class ids are refused with their range, also those that a cast to int32 would
    wrap into valid ids (-2^32 + 3 -> 3)."""
    sem, heat, off = case_a()
    sem = sem.astype(np.int64)
    sem[1, 2] = bad
    if np.iinfo(dtype).min > bad or np.iinfo(dtype).max < bad:
        pytest.skip("not representable")
    sem = sem.astype(dtype)
    with pytest.raises(UserInputError, match=r"semantic: class ids must be in \[0, 1048576\), got values in \[{}, "
                       .format(min(bad, 0))):
        panoptic_postprocess(paddle.to_tensor(sem) if as_tensor else sem, heat, off, [11])


def test_semantic_from_logits():
    logits = np.zeros((1, 3, 2, 2), np.float32)
    logits[0, 2, 0, 0] = 1
    logits[0, 1, 1, 1] = 1
    np.testing.assert_array_equal(semantic_from_logits(logits), [[2, 0], [0, 1]])
    out = semantic_from_logits(paddle.to_tensor(logits[0]))
    assert isinstance(out, paddle.Tensor) and out.dtype == paddle.int64


# ----------------------------------------------------------------------------- instance scores

def test_instance_scores_hand_computed():
    pan = np.array([
        [11001, 11001, 0, 0],
        [11001, 11001, 0, 0],
        [0, 0, 12001, 255000],
        [0, 0, 12001, 255000]])
    probs = np.zeros((13, 4, 4), np.float32)
    probs[11, 0:2, 0:2] = [[0.2, 0.4], [0.6, 0.8]]
    probs[12, 2:4, 2] = [0.3, 0.5]
    heat = np.zeros((4, 4), np.float32)
    heat[0, 0] = 0.8  # centroid (0.5, 0.5) of 11001 floors to (0, 0)
    heat[2, 2] = 0.5  # centroid (2.5, 2) of 12001 floors to (2, 2)
    out = instance_scores(pan, probs, heat, [11, 12], void_label=255000, return_masks=True)
    np.testing.assert_array_equal(out["ids"], [11001, 12001])
    np.testing.assert_array_equal(out["classes"], [11, 12])
    np.testing.assert_array_equal(out["areas"], [4, 2])
    np.testing.assert_allclose(out["score_semantic"], [0.5, 0.4], rtol=1e-6)
    np.testing.assert_allclose(out["score_semantic_x_instance"], [0.4, 0.2], rtol=1e-6)
    assert out["masks"].shape == (2, 4, 4) and out["masks"].dtype == bool
    np.testing.assert_array_equal(out["masks"][1], pan == 12001)
    t = instance_scores(paddle.to_tensor(pan), paddle.to_tensor(probs[None]), paddle.to_tensor(heat[None]),
                        [11, 12], void_label=255000)
    assert isinstance(t["ids"], paddle.Tensor)
    np.testing.assert_allclose(t["score_semantic_x_instance"].numpy(), [0.4, 0.2], rtol=1e-6)


def test_instance_scores_void_is_not_an_instance_of_class_zero():
    # COCO-like: class 0 is a thing and void_label=255 reads as "class 0, instance 255".
    pan = np.array([[255, 1, 1], [2, 2, 5000]])
    probs = np.ones((6, 2, 3), np.float32)
    out = instance_scores(pan, probs, np.ones((2, 3), np.float32), [0, 5], void_label=255)
    np.testing.assert_array_equal(out["ids"], [1, 2])  # 5000 is stuff-like (instance 0)
    empty = instance_scores(np.zeros((2, 3), np.int64), probs, np.ones((2, 3), np.float32), [0])
    assert empty["ids"].shape == (0,) and empty["score_semantic"].shape == (0,)


def test_instance_scores_class_out_of_range():
    with pytest.raises(UserInputError, match="semantic_probs"):
        instance_scores(np.array([[12001]]), np.ones((5, 1, 1), np.float32), np.ones((1, 1), np.float32), [12])


# ----------------------------------------------------------------------------- brute force

def brute_force(sem, heat, off, thing_ids, div, stuff_area, void, thr, kernel, top_k):
    """Loop-by-loop restatement of the specification, independent of the implementation."""
    h, w = sem.shape
    r = (kernel - 1) // 2
    cands = []
    for y in range(h):
        for x in range(w):
            v = heat[y, x]
            window = heat[max(0, y - r):y + r + 1, max(0, x - r):x + r + 1]
            # the threshold is compared in the heatmap's float32, as torch's F.threshold does
            if v > max(np.float32(thr), 0) and v == window.max():
                cands.append((y, x))
    if top_k is not None and len(cands) > top_k:
        best = sorted(cands, key=lambda p: (-heat[p], p))[:top_k]
        cands = sorted(best)
    pan = np.full((h, w), void, np.int64)
    members = {}
    if cands:
        for y in range(h):
            for x in range(w):
                if sem[y, x] in thing_ids:
                    qy = float(np.float32(y) + off[0, y, x])
                    qx = float(np.float32(x) + off[1, y, x])
                    d = [(qy - cy) ** 2 + (qx - cx) ** 2 for cy, cx in cands]
                    members.setdefault(int(np.argmin(d)), []).append((y, x))
    counter = {}
    for k in sorted(members):
        classes = [int(sem[p]) for p in members[k]]
        cls = min(set(classes), key=lambda c: (-classes.count(c), c))
        counter[cls] = counter.get(cls, 0) + 1
        for p in members[k]:
            pan[p] = cls * div + counter[cls]
    for c in np.unique(sem):
        if c not in thing_ids and (sem == c).sum() >= stuff_area:
            pan[sem == c] = c * div
    return pan, np.array(cands, np.int64).reshape(-1, 2)


@st.composite
def scenes(draw):
    h = draw(st.integers(1, 12))
    w = draw(st.integers(1, 12))
    n = h * w
    sem = np.array(draw(st.lists(st.integers(0, 5), min_size=n, max_size=n)), np.int64).reshape(h, w)
    # Few distinct values provoke plateaus and score ties; half-pixel offsets provoke exact
    # distance ties, which the brute force and the implementation must break the same way.
    heat = np.array(draw(st.lists(st.sampled_from([0.0, 0.05, 0.1, 0.3, 0.5, 0.9]), min_size=n,
                                  max_size=n)), np.float32).reshape(h, w)
    off = np.array(draw(st.lists(st.integers(-8, 8), min_size=2 * n, max_size=2 * n)),
                   np.float32).reshape(2, h, w) / 2
    params = dict(
        thing_ids=draw(st.sampled_from([[], [3], [3, 4], [0, 2, 5]])),
        div=draw(st.sampled_from([1000, 100])),
        stuff_area=draw(st.sampled_from([0, 1, 3, 10])),
        void=draw(st.sampled_from([255, -1, 255000])),
        thr=draw(st.sampled_from([0.1, 0.0, 0.3])),
        kernel=draw(st.sampled_from([1, 3, 5, 7])),
        top_k=draw(st.sampled_from([None, 1, 2, 3, 200])),
    )
    return sem, heat, off, params


def run_impl(sem, heat, off, p, to_paddle=False):
    args = (sem, heat, off)
    if to_paddle:
        args = tuple(paddle.to_tensor(a) for a in args)
    pan, centers = panoptic_postprocess(*args, p["thing_ids"], label_divisor=p["div"],
                                        stuff_area=p["stuff_area"], void_label=p["void"],
                                        threshold=p["thr"], nms_kernel=p["kernel"], top_k=p["top_k"])
    if to_paddle:
        pan, centers = pan.numpy(), centers.numpy()
    return pan, centers


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenes())
def test_matches_brute_force_and_properties(scene):
    sem, heat, off, p = scene
    pan, centers = run_impl(sem, heat, off, p)
    exp_pan, exp_centers = brute_force(sem, heat, off, p["thing_ids"], p["div"], p["stuff_area"],
                                       p["void"], p["thr"], p["kernel"], p["top_k"])
    np.testing.assert_array_equal(centers, exp_centers)
    np.testing.assert_array_equal(pan, exp_pan)

    # Properties, stated on their own.
    thing = np.isin(sem, p["thing_ids"])
    void = pan == p["void"]
    if p["top_k"] is not None:
        assert centers.shape[0] <= p["top_k"]
    if centers.shape[0] == 0:
        assert void[thing].all()
    else:
        labels = pan[thing]
        assert np.isin(labels // p["div"], p["thing_ids"]).all()
        assert (labels % p["div"] >= 1).all()
        # instance numbers of each class run 1..n without gaps and each is one segment label
        for c in np.unique(labels // p["div"]):
            numbers = np.unique(labels[labels // p["div"] == c] % p["div"])
            np.testing.assert_array_equal(numbers, np.arange(1, numbers.size + 1))
        assert np.unique(labels).size <= centers.shape[0]
    stuff = ~thing
    areas = {c: (sem == c).sum() for c in np.unique(sem)}
    small = np.array([areas[c] < p["stuff_area"] for c in sem[stuff]], bool)
    np.testing.assert_array_equal(void[stuff], small)  # void never equals a stuff label here
    np.testing.assert_array_equal(pan[stuff][~small], sem[stuff][~small] * p["div"])


@settings(max_examples=40, deadline=None)
@given(scenes())
def test_numpy_and_paddle_inputs_agree(scene):
    sem, heat, off, p = scene
    a = run_impl(sem, heat, off, p)
    b = run_impl(sem, heat, off, p, to_paddle=True)
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])


def test_random_float_offsets_match_brute_force():
    rng = np.random.default_rng(0)
    sem = rng.integers(0, 6, size=(31, 45))
    heat = rng.random((31, 45)).astype(np.float32)
    off = rng.normal(0, 6, size=(2, 31, 45)).astype(np.float32)
    pan, centers = panoptic_postprocess(sem, heat, off, [3, 4, 5], stuff_area=30, void_label=255000,
                                        threshold=0.3, nms_kernel=5, top_k=20)
    exp_pan, exp_centers = brute_force(sem, heat, off, [3, 4, 5], 1000, 30, 255000, 0.3, 5, 20)
    np.testing.assert_array_equal(centers, exp_centers)
    np.testing.assert_array_equal(pan, exp_pan)


@pytest.mark.parametrize("table_path", [True, False])
def test_instance_scores_match_per_instance_loop(table_path, monkeypatch):
    if not table_path:
        monkeypatch.setattr(pp, "_MAX_LABEL_SLOTS", 0)  # the paddle.unique fallback
    rng = np.random.default_rng(5)
    for _ in range(40):
        h, w = rng.integers(1, 9, 2)
        div = int(rng.choice([10, 1000]))
        void = int(rng.choice([-1, 255, 255 * div]))
        pan = rng.integers(0, 6, (h, w)) * div + rng.integers(0, 3, (h, w))
        pan[rng.random((h, w)) < 0.2] = void
        things = [0, 2, 5]
        probs = rng.random((6, h, w)).astype(np.float32)
        heat = rng.random((h, w)).astype(np.float32)
        out = instance_scores(pan, probs, heat, things, label_divisor=div, void_label=void)
        ids = [v for v in np.unique(pan) if v != void and v >= 0 and v // div in things and v % div > 0]
        np.testing.assert_array_equal(out["ids"], ids)
        for k, v in enumerate(ids):
            mask = pan == v
            ys, xs = np.nonzero(mask)
            sem_score = probs[v // div][mask].mean()
            assert out["classes"][k] == v // div and out["areas"][k] == mask.sum()
            np.testing.assert_allclose(out["score_semantic"][k], sem_score, rtol=1e-5)
            np.testing.assert_allclose(out["score_semantic_x_instance"][k],
                                       sem_score * heat[int(ys.mean()), int(xs.mean())], rtol=1e-5)
