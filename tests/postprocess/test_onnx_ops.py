"""The traced post-processing of both models converts to ONNX (paddle2onnx, opset 17) and gives in
onnxruntime the maps that Paddle gives eagerly; and the rewritten steps (counting by scatter-add,
grouping by blocks of centres) at their edges: no centre, one centre, top_k reached, every pixel
stuff, no kernel surviving."""
import os

import numpy as np
import paddle
import pytest

from paddleseg_ext.models.panoptic_fcn.layout import ClassLayout
from paddleseg_ext.models.panoptic_fcn.postprocess import PanopticFCNPostprocess
from paddleseg_ext.postprocess import PanopticPostprocess, panoptic_postprocess
from paddleseg_ext.postprocess import panoptic_ops
from paddleseg_ext.postprocess.panoptic_layer import PanopticDeepLabPostprocess

from .test_panoptic_layer import POST_KWARGS, POST_SPEC, _post_cases


def onnx_session(layer, spec, tmp_path):
    """`layer` traced, saved, converted by paddle2onnx (opset 17) and loaded by onnxruntime."""
    try:
        import paddle2onnx
    except (ImportError, ValueError) as e:  # paddle2onnx 2.1 refuses to import on Paddle 2.6 (ValueError)
        pytest.skip("paddle2onnx unavailable: {}".format(e))
    ort = pytest.importorskip("onnxruntime")
    prefix = str(tmp_path / "model")
    with panoptic_ops.onnx_compatible():
        paddle.jit.save(paddle.jit.to_static(layer, input_spec=spec, full_graph=True), prefix, input_spec=spec)
    model = prefix + (".json" if os.path.isfile(prefix + ".json") else ".pdmodel")
    # optimize_tool "None": paddle2onnx's default, polygraphy's constant folding, pip-installs its own
    # dependencies at run time (POLYGRAPHY_AUTOINSTALL_DEPS), which replaced numpy 1.x by 2.x in the test environment
    paddle2onnx.export(model, prefix + ".pdiparams", prefix + ".onnx", opset_version=17, enable_optimize=False,
                       optimize_tool="None")
    return ort.InferenceSession(prefix + ".onnx", providers=["CPUExecutionProvider"])


def run(session, *arrays):
    flat = []
    for a in arrays:
        flat.extend(a if isinstance(a, list) else [a])
    return session.run(None, {i.name: np.ascontiguousarray(a) for i, a in zip(session.get_inputs(), flat)})


def _edge_cases():
    """(name, semantic, heat [1, H, W], offsets) at the edges of the rewritten steps."""
    rs = np.random.RandomState(3)
    h, w = 10, 13
    sem = rs.choice([2, 11, 13], size=(h, w))
    off = (rs.randn(2, h, w) * 3).astype("float32")
    one = np.zeros((1, h, w), np.float32)
    one[0, 4, 6] = 0.9
    many = rs.rand(1, h, w).astype("float32")  # far more peaks above 0.3 than top_k = 4
    return [("no centre", sem, np.zeros((1, h, w), np.float32), off),
            ("one centre", sem, one, off),
            ("top_k reached", sem, many, off),
            ("all stuff", np.full((h, w), 2), many, off)]


def test_panoptic_deeplab_postprocess_in_onnxruntime_equals_eager(tmp_path):
    """The model's whole post-processing layer (crop, resize back, maps, instance scores), converted
    once: the edge cases and random cases at the network's size, then random ones resized back."""
    # group_block 7: a few centres per block, so the traced loop over blocks of centres runs often
    layer = PanopticDeepLabPostprocess(19, POST_KWARGS["thing_ids"], void_label=255000, threshold=0.3,
                                       nms_kernel=3, top_k=4, stuff_area=6, group_block=7)
    spec = [[paddle.static.InputSpec([1, 19, None, None], "float32", "probs"),
             paddle.static.InputSpec([1, 1, None, None], "float32", "center"),
             paddle.static.InputSpec([1, 2, None, None], "float32", "offset")],
            paddle.static.InputSpec([2], "int64", "valid_hw"), paddle.static.InputSpec([2], "int64", "ori_hw")]
    session = onnx_session(layer, spec, tmp_path)
    rs = np.random.RandomState(1)
    cases = []
    for sem, heat, off in [c[1:] for c in _edge_cases()] + _post_cases()[:6]:
        probs = np.eye(19, dtype=np.float32)[sem].transpose(2, 0, 1) * 0.8 + 0.2 / 19  # argmax = sem
        cases.append((probs[None], heat[None], off[None], sem.shape, sem.shape, sem, heat, off))
    for valid, ori in (([12, 16], [12, 16]), ([12, 15], [23, 29])):
        logits = rs.randn(1, 19, 14, 18).astype("float32") * 3
        logits[:, 11, :, :9] += 4  # a thing region
        probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
        cases.append((probs, rs.rand(1, 1, 14, 18).astype("float32"), (rs.randn(1, 2, 14, 18) * 3).astype("float32"),
                      valid, ori, None, None, None))
    for probs, heat, off, valid, ori, sem, sem_heat, sem_off in cases:
        hw = [np.array(valid, np.int64), np.array(ori, np.int64)]
        expected = [t.numpy() for t in layer([paddle.to_tensor(a) for a in (probs, heat, off)],
                                             *[paddle.to_tensor(a) for a in hw])]
        if sem is not None:  # the layer is the contract's panoptic_postprocess
            np.testing.assert_array_equal(expected[0], panoptic_postprocess(sem, sem_heat, sem_off, **POST_KWARGS)[0])
        got = run(session, [probs, heat, off], *hw)
        for e, g in zip(expected[:3], got[:3]):  # panoptic, semantic, instance ids
            np.testing.assert_array_equal(g, e)
        np.testing.assert_allclose(got[3], expected[3], rtol=1e-5)  # float32 sums in another order
    assert expected[2].size > 0


FCN_THINGS = [11, 12, 13]


def _fcn_layer(**kw):
    # few classes, kernels and blocks: the graph (and its conversion) stays small
    kw = dict(dict(max_instances=20, mask_block=16), **kw)
    return PanopticFCNPostprocess(5, ClassLayout(16, FCN_THINGS), 1000, 255000, **kw)


def _fcn_outputs(rs, things, h=64, w=96, e=8):
    """Synthetic PanopticFCN outputs for an h x w input (multiples of 32): `things` peaks on P3 with
    distinct kernels, stuff regions as blocks of 4 x 4 cells, encoded features in smooth blobs."""
    layout = ClassLayout(16, FCN_THINGS)
    sizes = [(-(-h // s), -(-w // s)) for s in (8, 16, 32, 64, 128)]
    t, s = layout.num_things, layout.num_stuff_channels
    centers = [np.full((1, t, a, b), -8.0, np.float32) for a, b in sizes]
    regions = [rs.randn(1, s, a, b).astype(np.float32) for a, b in sizes]
    thing_maps = [rs.randn(1, e, a, b).astype(np.float32) * 0.1 for a, b in sizes]
    stuff_maps = [rs.randn(1, e, a, b).astype(np.float32) for a, b in sizes]
    cells = rs.choice(sizes[0][0] * sizes[0][1], things, replace=False)
    ys, xs = cells // sizes[0][1], cells % sizes[0][1]
    centers[0][0, rs.randint(0, t, things), ys, xs] = 6.0 + rs.rand(things)
    thing_maps[0][0, :, ys, xs] = np.concatenate([np.full((things, 1), -2.0), 3 * rs.randn(things, e - 1)], 1)
    coarse = rs.randn(e - 1, h // 32, w // 32).astype(np.float32)
    encode = np.concatenate([np.ones((1, h // 4, w // 4), np.float32), np.kron(coarse, np.ones((8, 8), np.float32))])
    return centers + regions + thing_maps + stuff_maps + [encode[None], np.zeros((1, e), np.float32)]


def test_panoptic_fcn_postprocess_in_onnxruntime_equals_eager(tmp_path):
    layer = _fcn_layer()
    outs = _fcn_outputs(np.random.RandomState(0), 6)
    spec = [[paddle.static.InputSpec([1, o.shape[1]] + [None] * (o.ndim - 2), "float32", "o{}".format(n))
             for n, o in enumerate(outs)],
            paddle.static.InputSpec([2], "int64", "valid_hw"), paddle.static.InputSpec([2], "int64", "ori_hw")]
    session = onnx_session(layer, spec, tmp_path)
    no_peak = [np.full_like(o, -8.0) for o in outs[:5]] + outs[5:]  # no kernel survives: only stuff
    for inputs, valid, ori in ((outs, [64, 96], [64, 96]), (outs, [60, 90], [71, 103]), (no_peak, [60, 90], [60, 90])):
        hw = [np.array(valid, np.int64), np.array(ori, np.int64)]
        expected = [t.numpy() for t in layer([paddle.to_tensor(o) for o in inputs], *[paddle.to_tensor(a) for a in hw])]
        got = run(session, list(inputs), *hw)
        assert (expected[2].size > 0) == (inputs is outs)
        if inputs is no_peak:
            assert ((expected[0] % 1000 == 0) | (expected[0] == 255000)).all()
        for e, g in zip(expected[:3], got[:3]):
            np.testing.assert_array_equal(g, e)
        np.testing.assert_allclose(got[3], expected[3], rtol=1e-5)  # float32 sums in another order


# ----------------------------------------------------------------------------- edges, eager and traced

@pytest.mark.parametrize("name, sem, heat, off", _edge_cases(), ids=[c[0] for c in _edge_cases()])
def test_grouping_edges_eager_and_traced(name, sem, heat, off):
    """Against a direct numpy statement of the rules (module docstring of panoptic_ops)."""
    pan, centers = panoptic_postprocess(sem, heat, off, **POST_KWARGS)
    traced = paddle.jit.to_static(PanopticPostprocess(19, group_block=5, **POST_KWARGS), input_spec=POST_SPEC,
                                  full_graph=True)
    got, got_centers = traced(*[paddle.to_tensor(a) for a in (sem.astype("int64"), heat, off)])
    np.testing.assert_array_equal(got.numpy(), pan)
    np.testing.assert_array_equal(got_centers.numpy(), centers)
    thing = np.isin(sem, POST_KWARGS["thing_ids"])
    expected_k = {"no centre": 0, "one centre": 1, "top_k reached": POST_KWARGS["top_k"]}.get(name)
    if expected_k is not None:
        assert len(centers) == expected_k
    if name == "top_k reached":  # the 4 highest peaks, in raster order
        h = heat[0]
        peaks = [(y, x) for y in range(h.shape[0]) for x in range(h.shape[1])  # building the expectation
                 if h[y, x] > 0.3 and h[y, x] == h[max(y - 1, 0):y + 2, max(x - 1, 0):x + 2].max()]
        best = sorted(sorted(peaks, key=lambda p: -h[p])[:4])
        assert centers.tolist() == [list(p) for p in best]
    if len(centers) == 0:
        assert (pan[thing] == 255000).all()
    elif thing.any():
        yy, xx = np.nonzero(thing)
        qy, qx = yy + off[0][thing].astype(np.float64), xx + off[1][thing].astype(np.float64)
        d = (qy[:, None] - centers[None, :, 0]) ** 2 + (qx[:, None] - centers[None, :, 1]) ** 2
        slot = d.argmin(axis=1)
        # pixels of one slot share one panoptic id, different slots different ids
        ids = pan[thing]
        for a, b in ((slot[:, None] == slot[None, :]), (ids[:, None] == ids[None, :])),:
            np.testing.assert_array_equal(a, b)
    stuff = ~thing
    areas = np.bincount(sem[stuff], minlength=19)
    np.testing.assert_array_equal(pan[stuff], np.where(areas[sem[stuff]] < 6, 255000, sem[stuff] * 1000))


class _Count(paddle.nn.Layer):
    def forward(self, x, w):
        return panoptic_ops.count_values(x, 6), panoptic_ops.count_values(x, 6, w)


@pytest.mark.parametrize("n", [0, 1, 37])
def test_count_values_equals_numpy_bincount(n):
    """Eagerly and traced, with Paddle's bincount and with the scatter-add written for ONNX."""
    rs = np.random.RandomState(n)
    x = rs.randint(0, 5, n)
    w = rs.rand(n).astype("float32")
    spec = [paddle.static.InputSpec([None], "int64"), paddle.static.InputSpec([None], "float32")]
    traced = paddle.jit.to_static(_Count(), input_spec=spec, full_graph=True)
    with panoptic_ops.onnx_compatible():
        traced_for_onnx = paddle.jit.to_static(_Count(), input_spec=spec, full_graph=True)
        traced_for_onnx(paddle.to_tensor(x, dtype="int64"), paddle.to_tensor(w))  # traced here, under the switch
    for count in (_Count(), traced, traced_for_onnx):
        counts, sums = count(paddle.to_tensor(x, dtype="int64"), paddle.to_tensor(w))
        np.testing.assert_array_equal(counts.numpy(), np.bincount(x, minlength=6))
        np.testing.assert_allclose(sums.numpy(), np.bincount(x, weights=w.astype(np.float64), minlength=6), rtol=1e-12)


def test_nearest_center_blocks_agree_on_ties():
    """Points exactly half-way between centres take the lower index, whatever the blocking."""
    centers = paddle.to_tensor([[0, 0], [0, 2], [2, 0], [4, 4]], dtype="int64")
    qy = paddle.to_tensor([0.0, 1.0, 1.0, 3.0, 100.0], dtype="float32")
    qx = paddle.to_tensor([1.0, 0.0, 1.0, 3.0, 100.0], dtype="float32")
    expected = [0, 0, 0, 3, 3]
    spec = [paddle.static.InputSpec([None], "float32"), paddle.static.InputSpec([None], "float32"),
            paddle.static.InputSpec([None, 2], "int64")]
    for block in (1, 2, 3, 100):
        assert panoptic_ops.nearest_center(qy, qx, centers, block).numpy().tolist() == expected
        traced = paddle.jit.to_static(_Nearest(block), input_spec=spec, full_graph=True)
        assert traced(qy, qx, centers).numpy().tolist() == expected


class _Nearest(paddle.nn.Layer):
    def __init__(self, block):
        super().__init__()
        self.block = block

    def forward(self, qy, qx, centers):
        return panoptic_ops.nearest_center(qy, qx, centers, self.block)
