"""Fuzzing: random label maps (1x1 up to 40x60, random class sets, fragmented segments, crowds, all void,
ids listed in the json but absent from the map) through the target generator, and random network outputs
through post-processing, instance scores and the three evaluators. Checks invariants (shapes, dtypes,
ranges, where void may appear) and that nothing crashes. The arrays come from a numpy generator seeded
by hypothesis, so that 2400-pixel maps stay cheap to draw."""
import numpy as np
import pytest
from cityscapesscripts.helpers.labels import trainId2label
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from paddleseg_ext.evaluation import CityscapesInstanceEvaluator, PanopticEvaluator, SemanticEvaluator
from paddleseg_ext.postprocess import instance_scores, panoptic_postprocess
from paddleseg_ext.transforms import PanopticTargetGenerator

NUM_CLASSES = 19
THINGS = list(range(11, 19))
IGNORE = 255
DIV = 1000
VOID = IGNORE * DIV
CATEGORIES = [{"id": i, "name": "class{}".format(i), "isthing": int(i in THINGS)} for i in range(NUM_CLASSES)]
FUZZ = settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@st.composite
def label_maps(draw):
    """(segment ids [H, W] int64, segments_info) of a random frame."""
    h, w = draw(st.integers(1, 40)), draw(st.integers(1, 60))
    pattern = draw(st.sampled_from(["rectangles", "fragments", "all_void", "one_segment"]))
    n = {"all_void": 0, "one_segment": 1}.get(pattern, draw(st.integers(0, 8)))
    classes = draw(st.lists(st.integers(0, NUM_CLASSES - 1), min_size=1, max_size=6, unique=True))
    crowd_p = draw(st.sampled_from([0.0, 0.3]))
    rng = np.random.default_rng(draw(st.integers(0, 2 ** 32 - 1)))
    # large ids, as COCO's RGB-encoded ones
    seg_ids = rng.choice(np.arange(1, 1 << 24), size=n, replace=False).astype(np.int64)
    ids = np.zeros((h, w), np.int64)
    if pattern == "one_segment":
        ids[:] = seg_ids[0]
    elif pattern == "fragments":
        ids = rng.choice(np.append(seg_ids, 0), size=(h, w))
    elif pattern == "rectangles":
        for sid in seg_ids:
            y0, x0 = rng.integers(0, h), rng.integers(0, w)
            ids[y0:rng.integers(y0 + 1, h + 1), x0:rng.integers(x0 + 1, w + 1)] = sid
    segs = [{"id": int(s), "category_id": int(rng.choice(classes)), "iscrowd": int(rng.random() < crowd_p)}
            for s in seg_ids]
    # a listed segment may be missing from the map (covered by later rectangles, or cropped away)
    return ids, segs


def _per_pixel(ids, segs, key, default):
    """Value of segments_info[key] at every pixel (default on void)."""
    out = np.full(ids.shape, default, dtype=np.int64)
    for s in segs:
        out[ids == s["id"]] = int(s.get(key, 0))
    return out


@FUZZ
@given(label_maps(), st.sampled_from([1, 2, 8]), st.integers(1, 300), st.booleans(), st.booleans())
def test_target_generator_invariants(frame, sigma, small_area, ignore_crowd, ignore_stuff_in_offset):
    ids, segs = frame
    h, w = ids.shape
    gen = PanopticTargetGenerator(IGNORE, THINGS, sigma=sigma, small_instance_area=small_area,
                                  small_instance_weight=3, ignore_crowd_in_semantic=ignore_crowd,
                                  ignore_stuff_in_offset=ignore_stuff_in_offset, label_divisor=DIV)
    out = gen(ids, segs)
    for key, shape, dtype in (("semantic", (h, w), np.int64), ("center", (1, h, w), np.float32),
                              ("offset", (2, h, w), np.float32), ("semantic_weights", (h, w), np.float32),
                              ("center_weights", (h, w), np.float32), ("offset_weights", (h, w), np.float32),
                              ("panoptic", (h, w), np.int64)):
        assert out[key].shape == shape and out[key].dtype == dtype, key
        assert np.isfinite(out[key]).all(), key

    void = ~np.isin(ids, [s["id"] for s in segs])
    cat = _per_pixel(ids, segs, "category_id", IGNORE)
    crowd = _per_pixel(ids, segs, "iscrowd", 0).astype(bool) & ~void
    thing = np.isin(cat, THINGS) & ~void
    sem, pan = out["semantic"], out["panoptic"]

    # void (and crowd when asked) is the only place the ignore label appears
    ignored = void | (crowd if ignore_crowd else np.zeros_like(void))
    np.testing.assert_array_equal(sem == IGNORE, ignored)
    np.testing.assert_array_equal(sem[~ignored], cat[~ignored])
    np.testing.assert_array_equal(pan == VOID, void)
    np.testing.assert_array_equal(pan[~void] // DIV, cat[~void])
    assert (pan[thing] % DIV >= 1).all() and (pan[~thing & ~void] % DIV == 0).all()

    # weights: semantic in {1, 3} (3 on small things), centre / offset in {0, 1}
    assert set(np.unique(out["semantic_weights"])) <= {1.0, 3.0}
    assert set(np.unique(out["center_weights"])) <= {0.0, 1.0}
    assert set(np.unique(out["offset_weights"])) <= {0.0, 1.0}
    np.testing.assert_array_equal(out["center_weights"] == 0, void | crowd)
    np.testing.assert_array_equal(out["offset_weights"] == 1,
                                  (thing if ignore_stuff_in_offset else ~void) & ~crowd)

    center, offset = out["center"][0], out["offset"]
    assert center.min() >= 0.0 and center.max() <= 1.0
    present_things = [s for s in segs if s["category_id"] in THINGS and (ids == s["id"]).any()]
    if present_things:
        assert center.max() == pytest.approx(1.0)
    else:
        assert center.max() == 0.0 and (offset == 0).all()
    assert (offset[:, ~thing] == 0).all()
    yy, xx = np.mgrid[:h, :w]
    small = np.zeros((h, w), bool)
    thing_labels = set()
    for s in present_things:
        m = ids == s["id"]
        # every pixel of an instance points at the instance's centre of mass
        np.testing.assert_allclose((yy + offset[0])[m], yy[m].mean(), atol=1e-3)
        np.testing.assert_allclose((xx + offset[1])[m], xx[m].mean(), atol=1e-3)
        small |= m if m.sum() < small_area else np.zeros_like(m)
        labels = np.unique(pan[m])
        assert labels.size == 1
        thing_labels.add(int(labels[0]))
    np.testing.assert_array_equal(out["semantic_weights"] == 3, small)
    assert len(thing_labels) == len(present_things)  # one panoptic label per instance
    for c in {lab // DIV for lab in thing_labels}:
        numbers = sorted(lab % DIV for lab in thing_labels if lab // DIV == c)
        assert numbers == list(range(1, len(numbers) + 1))


def _gt_instance_ids(ids, segs):
    """Cityscapes *_instanceIds from a train-id frame: label id, label id * 1000 + k for thing instances."""
    out = np.zeros(ids.shape, np.int64)
    for k, s in enumerate(segs):
        label_id = trainId2label[s["category_id"]].id
        thing = s["category_id"] in THINGS and not s["iscrowd"]
        out[ids == s["id"]] = label_id * 1000 + k + 1 if thing else label_id
    return out


@st.composite
def network_outputs(draw, h, w):
    rng = np.random.default_rng(draw(st.integers(0, 2 ** 32 - 1)))
    classes = draw(st.lists(st.integers(0, NUM_CLASSES - 1), min_size=1, max_size=8, unique=True))
    logits = rng.normal(0, 3, (NUM_CLASSES, h, w)).astype(np.float32)
    logits[classes] += 6  # the predicted classes come from this set
    probs = np.exp(logits - logits.max(0))
    probs = (probs / probs.sum(0)).astype(np.float32)
    heat = (rng.random((h, w)) ** draw(st.sampled_from([1, 4, 16]))).astype(np.float32)
    offsets = rng.normal(0, draw(st.sampled_from([0.5, 5.0, 50.0])), (2, h, w)).astype(np.float32)
    params = dict(threshold=draw(st.sampled_from([0.0, 0.1, 0.5, 1.0])),  # 1.0: never a centre
                  nms_kernel=draw(st.sampled_from([1, 3, 7])), top_k=draw(st.sampled_from([1, 5, 200])),
                  stuff_area=draw(st.sampled_from([0, 1, 16, 10 ** 6])))  # 10**6: all stuff void
    return probs, heat, offsets, params


@FUZZ
@given(st.data())
def test_postprocess_scores_and_evaluators_invariants(data):
    gt_ids, gt_segs = data.draw(label_maps())
    h, w = gt_ids.shape
    probs, heat, offsets, p = data.draw(network_outputs(h, w))
    semantic = probs.argmax(0).astype(np.int64)

    pan, centers = panoptic_postprocess(semantic, heat, offsets, THINGS, label_divisor=DIV, void_label=VOID, **p)
    assert pan.shape == (h, w) and pan.dtype == np.int64
    assert centers.ndim == 2 and centers.shape[1] == 2 and centers.dtype == np.int64
    k = centers.shape[0]
    assert k <= p["top_k"]
    if k:
        assert (centers >= 0).all() and (centers[:, 0] < h).all() and (centers[:, 1] < w).all()
        assert (heat[centers[:, 0], centers[:, 1]] > p["threshold"]).all()
    thing = np.isin(semantic, THINGS)
    void = pan == VOID
    # stuff pixels keep their class unless the class is smaller than stuff_area
    area = np.bincount(semantic.ravel(), minlength=NUM_CLASSES)
    small_stuff = ~thing & (area[semantic] < p["stuff_area"])
    np.testing.assert_array_equal(void[~thing], small_stuff[~thing])
    np.testing.assert_array_equal(pan[~thing & ~void], semantic[~thing & ~void] * DIV)
    # thing pixels: void only when no centre was found, else a thing instance numbered from 1
    if k == 0:
        assert void[thing].all()
    else:
        assert not void[thing].any()
        assert np.isin(pan[thing] // DIV, THINGS).all() and (pan[thing] % DIV >= 1).all()
        for c in np.unique(pan[thing] // DIV):
            numbers = np.unique(pan[thing][pan[thing] // DIV == c] % DIV)
            np.testing.assert_array_equal(numbers, np.arange(1, numbers.size + 1))
        assert np.unique(pan[thing]).size <= k

    scores = instance_scores(pan, probs, heat, THINGS, label_divisor=DIV, void_label=VOID, return_masks=True)
    labels, counts = np.unique(pan[thing & ~void], return_counts=True)
    np.testing.assert_array_equal(scores["ids"], labels)
    np.testing.assert_array_equal(scores["classes"], labels // DIV)
    np.testing.assert_array_equal(scores["areas"], counts)
    assert scores["masks"].shape == (labels.size, h, w)
    np.testing.assert_array_equal(scores["masks"].sum((1, 2)), counts)
    s1, s2 = scores["score_semantic"], scores["score_semantic_x_instance"]
    assert s1.dtype == np.float32 and s2.dtype == np.float32
    assert ((s1 >= 0) & (s1 <= 1 + 1e-6)).all() and ((s2 >= 0) & (s2 <= s1 + 1e-6)).all()

    pq = PanopticEvaluator(CATEGORIES, label_divisor=DIV, void_label=VOID)
    pq.update(pan, gt_ids, gt_segs)
    r = pq.evaluate()
    for g in ("All", "Things", "Stuff"):
        for key in ("pq", "sq", "rq"):
            assert 0.0 <= r[g][key] <= 1.0 + 1e-12, (g, key, r[g])
        assert 0 <= r[g]["n"] <= NUM_CLASSES
    for v in r["per_class"].values():
        assert v["pq"] == pytest.approx(v["sq"] * v["rq"])

    gt_semantic = PanopticTargetGenerator(IGNORE, THINGS)(gt_ids, gt_segs)["semantic"]
    sem_eval = SemanticEvaluator(NUM_CLASSES, ignore_index=IGNORE)
    sem_eval.update(semantic, gt_semantic)
    m = sem_eval.evaluate()
    assert sem_eval.confusion.sum() == (gt_semantic != IGNORE).sum()
    if (gt_semantic != IGNORE).any():
        assert 0.0 <= m["mIoU"] <= 1.0 and 0.0 <= m["pixel_acc"] <= 1.0
    else:
        assert np.isnan(m["mIoU"])

    ap = CityscapesInstanceEvaluator(min_region_size=1)
    ap.update(scores["classes"], scores["masks"], s2, _gt_instance_ids(gt_ids, gt_segs))
    res = ap.evaluate()
    assert res["ap_matrix"].shape == (len(THINGS), 10)
    finite = res["ap_matrix"][~np.isnan(res["ap_matrix"])]
    assert ((finite >= 0) & (finite <= 1)).all()
    assert np.isnan(res["AP"]) or 0.0 <= res["AP"] <= 1.0


@pytest.mark.parametrize("hw", [(1, 1), (1, 37), (40, 1)])
def test_degenerate_frames_all_void_and_no_prediction(hw):
    """All-void ground truth and a prediction without any centre or stuff: nothing crashes, metrics are
    empty (NaN / n = 0), not invented."""
    h, w = hw
    gt = np.zeros(hw, np.int64)
    out = PanopticTargetGenerator(IGNORE, THINGS)(gt, [])
    assert (out["semantic"] == IGNORE).all() and (out["panoptic"] == VOID).all()
    assert (out["center"] == 0).all() and (out["offset"] == 0).all()
    semantic = np.full(hw, 11, np.int64)  # all 'person', no centre above the threshold
    pan, centers = panoptic_postprocess(semantic, np.zeros(hw, np.float32), np.zeros((2, h, w), np.float32),
                                        THINGS, void_label=VOID)
    assert centers.shape == (0, 2) and (pan == VOID).all()
    scores = instance_scores(pan, np.full((NUM_CLASSES, h, w), 1.0 / NUM_CLASSES, np.float32),
                             np.zeros(hw, np.float32), THINGS, void_label=VOID, return_masks=True)
    assert scores["ids"].shape == (0,) and scores["masks"].shape == (0, h, w)
    pq = PanopticEvaluator(CATEGORIES, void_label=VOID)
    pq.update(pan, gt, [])
    r = pq.evaluate()
    assert r["All"]["n"] == 0 and r["All"]["pq"] == 0.0
    sem_eval = SemanticEvaluator(NUM_CLASSES)
    sem_eval.update(semantic, out["semantic"])
    assert np.isnan(sem_eval.evaluate()["mIoU"])
    ap = CityscapesInstanceEvaluator()
    ap.update(scores["classes"], scores["masks"], scores["score_semantic"], gt)
    assert np.isnan(ap.evaluate()["AP"])
