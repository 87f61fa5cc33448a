"""Oracle check (tech report "Panoptic-DeepLab in PyTorch", Table 2, last row): targets made from a ground-truth
panoptic label and fed back to the post-processing as predictions give the ground truth back (PQ 100, stuff_area 0).

Known limit, asserted in `test_coinciding_centroids_merge`: the post-processing can only separate
instances whose centres it finds as distinct peaks. Ground-truth centres sit at rounded centroids,
so two instances whose centroids round to the same pixel (e.g. a ring around a disk) merge, and a
pixel can go to a neighbour's centre when two centroids are closer than sqrt(2) px (each centroid
is up to sqrt(2)/2 px from its rounded centre). Scenes here keep centroids >= 1.5 px apart, which
rules both out; otherwise nothing is relaxed (Gaussians touching, plateaus in NMS, instances cut by
the border, occluded and split instances, one-pixel instances are all kept).
"""
import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from paddleseg_ext.postprocess import panoptic_postprocess
from paddleseg_ext.transforms import PanopticTargetGenerator

THINGS = list(range(11, 19))
DIV = 1000
VOID = 255 * DIV
MIN_CENTROID_DISTANCE = 1.5


# ----------------------------------------------------------------------------- scene generator

def random_scene(rng, h, w, n_things):
    """Segment-id map [h,w] (0 = void) and segments_info: 4 stuff regions, a void blob, and
    `n_things` thing shapes (boxes, ellipses, 1-3 px specks, boxes touching the previous box),
    painted in order so later ones occlude earlier ones, many crossing the border."""
    yy, xx = np.mgrid[0:h, 0:w]
    seg = np.zeros((h, w), np.int32)
    info = []
    stuff = rng.choice(11, size=4, replace=False)
    quadrant = (yy >= rng.integers(1, max(2, h))) * 2 + (xx >= rng.integers(1, max(2, w)))
    for q in range(4):
        seg[quadrant == q] = q + 1
        info.append({"id": q + 1, "category_id": int(stuff[q]), "iscrowd": 0})
    if rng.random() < 0.7:
        cy, cx, r = rng.uniform(0, h), rng.uniform(0, w), rng.uniform(2, h / 4 + 2)
        seg[(yy - cy) ** 2 + (xx - cx) ** 2 <= r * r] = 0
    last_box = None
    for n in range(n_things):
        kind = rng.choice(["box", "ellipse", "speck", "touch"])
        if kind == "touch" and last_box is not None:
            y0, x0, y1, x1 = last_box
            if rng.random() < 0.5:
                x0, x1 = x1, x1 + rng.integers(1, w // 4 + 2)
            else:
                y0, y1 = y1, y1 + rng.integers(1, h // 4 + 2)
            mask = (yy >= y0) & (yy < y1) & (xx >= x0) & (xx < x1)
            last_box = (y0, x0, y1, x1)
        elif kind == "ellipse":
            cy, cx = rng.uniform(-5, h + 5), rng.uniform(-5, w + 5)
            ry, rx = rng.uniform(1.5, h / 3 + 2), rng.uniform(1.5, w / 3 + 2)
            mask = ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1
        else:
            size_y = rng.integers(1, 4) if kind == "speck" else rng.integers(2, h // 2 + 3)
            size_x = rng.integers(1, 4) if kind == "speck" else rng.integers(2, w // 2 + 3)
            y0, x0 = rng.integers(-size_y // 2, h), rng.integers(-size_x // 2, w)
            y1, x1 = y0 + size_y, x0 + size_x
            mask = (yy >= y0) & (yy < y1) & (xx >= x0) & (xx < x1)
            last_box = (y0, x0, y1, x1)
        seg[mask] = 100 + n
        info.append({"id": 100 + n, "category_id": int(rng.choice(THINGS)), "iscrowd": 0})
    return seg, info


def min_centroid_distance(seg, info):
    centroids = []
    for s in info:
        if s["category_id"] in THINGS:
            ys, xs = np.nonzero(seg == s["id"])
            if ys.size:
                centroids.append((ys.mean(), xs.mean()))
    if len(centroids) < 2:
        return np.inf
    c = np.array(centroids)
    d = np.sqrt(((c[:, None] - c[None]) ** 2).sum(-1))
    return d[np.triu_indices(len(c), 1)].min()


# ----------------------------------------------------------------------------- comparison

def assert_same_up_to_relabelling(gt, pred):
    """Stuff and void identical; thing segments in one-to-one correspondence, same pixels, same class."""
    stuff_or_void = gt % DIV == 0
    np.testing.assert_array_equal(pred[stuff_or_void], gt[stuff_or_void])
    g, p = gt[~stuff_or_void], pred[~stuff_or_void]
    np.testing.assert_array_equal(p // DIV, g // DIV)
    pairs = np.unique(np.stack([g, p]), axis=1)
    assert pairs.shape[1] == np.unique(g).size == np.unique(p).size, "segments split or merged"
    # the predicted thing segments cover nothing outside their ground-truth twins
    assert not np.isin(pred[stuff_or_void], p).any()


def panoptic_quality(gt, pred):
    """PQ over classes (panopticapi rules: IoU > 0.5 matches, GT void pixels left out of unions,
    predicted segments mostly on void are not false positives). Returns {class: PQ}."""
    valid_pred = pred != VOID
    g_ids, g_area = np.unique(gt[gt != VOID], return_counts=True)
    p_ids, p_area = np.unique(pred[valid_pred], return_counts=True)
    g_area, p_area = dict(zip(g_ids, g_area)), dict(zip(p_ids, p_area))
    pair, inter = np.unique(np.stack([gt[valid_pred], pred[valid_pred]]), axis=1, return_counts=True)
    on_void = {pp: n for (gg, pp), n in zip(pair.T, inter) if gg == VOID}
    matched_g, matched_p, stats = set(), set(), {}
    for (gg, pp), n in zip(pair.T, inter):
        if gg == VOID or gg // DIV != pp // DIV:
            continue
        iou = n / (g_area[gg] + p_area[pp] - n - on_void.get(pp, 0))
        if iou > 0.5:
            matched_g.add(gg)
            matched_p.add(pp)
            s = stats.setdefault(gg // DIV, [0.0, 0, 0, 0])
            s[0] += iou
            s[1] += 1
    for gg in set(g_ids) - matched_g:
        stats.setdefault(gg // DIV, [0.0, 0, 0, 0])[3] += 1
    for pp in set(p_ids) - matched_p:
        if on_void.get(pp, 0) / p_area[pp] <= 0.5:
            stats.setdefault(pp // DIV, [0.0, 0, 0, 0])[2] += 1
    return {c: s[0] / (s[1] + 0.5 * s[2] + 0.5 * s[3]) for c, s in stats.items()}


def oracle(seg, info, stuff_area=0, **kwargs):
    gen = PanopticTargetGenerator(ignore_index=255, thing_ids=THINGS, sigma=8)
    t = gen(seg, info)
    # GT semantic keeps void as 255, a non-thing class: it comes back as 255 * DIV = VOID, which PQ
    # ignores, exactly like the void of the ground truth.
    pan, centers = panoptic_postprocess(t["semantic"], t["center"], t["offset"], THINGS, label_divisor=DIV,
                                        stuff_area=stuff_area, void_label=VOID, **kwargs)
    return t, pan, centers


# ----------------------------------------------------------------------------- tests

@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2 ** 32 - 1), n_things=st.integers(0, 24),
       shape=st.sampled_from([(65, 129), (48, 48), (31, 77), (1, 40)]))
def test_oracle_gives_ground_truth_back(seed, n_things, shape):
    seg, info = random_scene(np.random.default_rng(seed), shape[0], shape[1], n_things)
    assume(min_centroid_distance(seg, info) >= MIN_CENTROID_DISTANCE)
    t, pan, centers = oracle(seg, info)
    assert_same_up_to_relabelling(t["panoptic"], pan)
    n_things_present = np.unique(t["panoptic"][t["panoptic"] % DIV != 0]).size
    assert centers.shape[0] == n_things_present
    pq = panoptic_quality(t["panoptic"], pan)
    assert all(v == 1.0 for v in pq.values()), pq


def test_oracle_larger_scene():
    rng = np.random.default_rng(2024)
    for _ in range(20):
        seg, info = random_scene(rng, 257, 513, 60)
        if min_centroid_distance(seg, info) >= MIN_CENTROID_DISTANCE:
            break
    t, pan, centers = oracle(seg, info)
    assert centers.shape[0] >= 30
    assert_same_up_to_relabelling(t["panoptic"], pan)
    assert set(panoptic_quality(t["panoptic"], pan).values()) == {1.0}


def test_touching_thin_instances_stay_apart():
    seg = np.ones((30, 30), np.int32)
    seg[10:20, 10:12] = 100  # centroid (14.5, 10.5)
    seg[10:20, 12:14] = 101  # centroid (14.5, 12.5): 2 px away, peaks 2 px apart (an NMS plateau)
    seg[10:20, 14:15] = 102  # centroid (14.5, 14): 1.5 px away
    info = [{"id": 1, "category_id": 0, "iscrowd": 0}] + [
        {"id": i, "category_id": 11, "iscrowd": 0} for i in (100, 101, 102)]
    t, pan, centers = oracle(seg, info)
    assert centers.shape[0] == 3
    assert_same_up_to_relabelling(t["panoptic"], pan)
    assert np.unique(pan[10:20, 10:15]).size == 3


def test_coinciding_centroids_merge():
    """The documented limit: a ring around a disk of another class share a centroid -> one instance."""
    yy, xx = np.mgrid[0:41, 0:41]
    r2 = (yy - 20) ** 2 + (xx - 20) ** 2
    seg = np.ones((41, 41), np.int32)
    seg[r2 <= 15 ** 2] = 100  # ring (class 11), larger
    seg[r2 <= 5 ** 2] = 101  # disk (class 12) at the same centroid
    info = [{"id": 1, "category_id": 0, "iscrowd": 0}, {"id": 100, "category_id": 11, "iscrowd": 0},
            {"id": 101, "category_id": 12, "iscrowd": 0}]
    t, pan, centers = oracle(seg, info)
    np.testing.assert_array_equal(centers, [[20, 20]])
    assert (pan[r2 <= 15 ** 2] == 11001).all()  # the ring's class wins the vote, disk swallowed
    pq = panoptic_quality(t["panoptic"], pan)
    assert pq[12] == 0.0 and pq[0] == 1.0


def test_stuff_area_threshold_breaks_the_oracle():
    """Seed 004 Table 2 footnote: with a stuff area threshold, small stuff becomes void, PQ < 100."""
    rng = np.random.default_rng(7)
    seg, info = random_scene(rng, 65, 129, 8)
    t, pan, _ = oracle(seg, info, stuff_area=4096)
    sem = t["semantic"]
    stuff_classes, areas = np.unique(sem[~np.isin(sem, THINGS + [255])], return_counts=True)
    small = stuff_classes[areas < 4096]
    assert small.size > 0
    assert (pan[np.isin(sem, small)] == VOID).all()
    pq = panoptic_quality(t["panoptic"], pan)
    assert all(pq[c] == 0.0 for c in small) and min(pq.values()) < 1.0
    t0, pan0, _ = oracle(seg, info, stuff_area=0)
    assert set(panoptic_quality(t0["panoptic"], pan0).values()) == {1.0}


@pytest.mark.parametrize("top_k", [1, 3])
def test_oracle_with_top_k_keeps_only_k_instances(top_k):
    rng = np.random.default_rng(11)
    seg, info = random_scene(rng, 65, 129, 10)
    t, pan, centers = oracle(seg, info, top_k=top_k)
    assert centers.shape[0] == top_k
    labels = np.unique(pan[np.isin(pan // DIV, THINGS)])
    assert labels.size <= top_k


# ----------------------------------------------------------------------------- the model's oracle (val.py --oracle)

def _tiny_deeplab(num_classes):
    """The demo config's Panoptic-DeepLab network with `num_classes` classes (untrained: the oracle
    replaces every output)."""
    from paddleseg.cvlibs import Config, SegBuilder

    from tests.conftest import DEMO_CONFIG

    cfg = Config(DEMO_CONFIG)
    model_cfg = dict(cfg.model_cfg, num_classes=num_classes)
    return SegBuilder(cfg).build_component(model_cfg)


def _void_ring_scene():
    """Stuff class 1 everywhere, a 128-pixel void ring around a 16-pixel instance of thing class 2, and a
    thing of class 0 far away (things: 0 and 2)."""
    h, w = 24, 32
    seg = np.full((h, w), 1, np.int32)
    seg[6:18, 8:20] = 0
    seg[10:14, 12:16] = 7
    seg[20:, 26:] = 9
    info = [{"id": 1, "category_id": 1, "iscrowd": 0}, {"id": 7, "category_id": 2, "iscrowd": 0},
            {"id": 9, "category_id": 0, "iscrowd": 0}]
    return seg, info, [0, 2]


def test_model_oracle_leaves_void_pixels_void():
    """`PanopticDeepLab.apply_oracle` + its post-processing with a thing class at train id 0 and void
    around a small instance: the void pixels must stay void, not become class 0 pixels that join the
    instance and outvote it (seen on COCO: a 96-pixel horse beside 484 void pixels came out as person)."""
    import types

    import paddle

    seg, info, things = _void_ring_scene()
    h, w = seg.shape
    sample = PanopticTargetGenerator(255, things, sigma=2)(seg, info)
    model = _tiny_deeplab(3)
    meta = types.SimpleNamespace(num_classes=3, thing_ids=things, label_divisor=DIV, void_label=VOID)
    post = model.build_postprocess(meta, dict(threshold=0.1, nms_kernel=3, top_k=10, stuff_area=0))
    outputs = [paddle.zeros([1, 3, h, w]), paddle.zeros([1, 1, h, w]), paddle.zeros([1, 2, h, w])]
    outputs = model.apply_oracle(outputs, sample, ("semantic", "center", "offset"))
    with paddle.no_grad():
        pan, sem, ids, scores = (t.numpy() for t in post(outputs, paddle.to_tensor([h, w]), paddle.to_tensor([h, w])))
    gt = sample["panoptic"]
    void = seg == 0
    assert void.sum() == 128
    assert (pan[void] == VOID).all()
    assert (pan[~void] // DIV == gt[~void] // DIV).all()  # the 16-pixel instance keeps its class 2
    assert_same_up_to_relabelling(gt, pan)
    assert set(panoptic_quality(gt, pan).values()) == {1.0}
    assert sorted(np.asarray(ids) // DIV) == [0, 2]


def test_fcn_oracle_leaves_void_pixels_void():
    """PanopticFCN's oracle (`tests/models/panoptic_fcn/oracle.py`) on the same scene: no kernel covers void."""
    from paddleseg_ext.models.panoptic_fcn.layout import ClassLayout
    from tests.models.panoptic_fcn.oracle import oracle_outputs
    from paddleseg_ext.models.panoptic_fcn.postprocess import PanopticFCNPostprocess

    seg, info, things = _void_ring_scene()
    post = PanopticFCNPostprocess(5, ClassLayout(3, things), DIV, VOID, stuff_area=0)
    outs, valid_hw, ori_hw = oracle_outputs(seg, info, post.layout)
    pan = post(outs, valid_hw, ori_hw)[0].numpy()
    gt = PanopticTargetGenerator(255, things)(seg, info)["panoptic"]
    assert (pan[seg == 0] == VOID).all()
    assert_same_up_to_relabelling(gt, pan)
