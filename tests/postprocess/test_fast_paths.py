"""The two shortcuts of the Panoptic-DeepLab post-processing give what the plain computation gives:
the grouping's cell screening (`panoptic_ops.nearest_center` with an image extent) and the centre NMS's
neighbour tests before the whole window (`panoptic_ops.find_centers`), eagerly and traced, at their edges:
points on cell edges, half-way between centres, outside the image or NaN, no centre, plateaus of equal heat,
kernel 1, a [1, H, W] heatmap."""
import numpy as np
import paddle
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from paddleseg_ext.postprocess import panoptic_ops as ops


def nearest_brute_force(qy, qx, centers):
    """numpy float64 argmin of the squared distance, ties to the lowest index; K when there is none."""
    if len(centers) == 0:
        return np.zeros(len(qy), np.int64)
    d = (qy[:, None].astype(np.float64) - centers[None, :, 0]) ** 2 + (qx[:, None].astype(np.float64)
                                                                        - centers[None, :, 1]) ** 2
    return d.argmin(axis=1)


def window_peaks_brute_force(heat, threshold, kernel, top_k):
    """(y, x) of the pixels above max(threshold, 0) that equal the max of their clipped window."""
    h, w = heat.shape
    r = (kernel - 1) // 2
    padded = np.pad(heat, r, constant_values=-np.inf)
    window = np.lib.stride_tricks.sliding_window_view(padded, (kernel, kernel)).max(axis=(2, 3))
    ys, xs = np.nonzero((heat > max(threshold, 0.0)) & (heat >= window))
    if top_k is not None and len(ys) > top_k:
        order = np.argsort(-heat[ys, xs], kind="stable")[:top_k]
        keep = np.sort(order)
        ys, xs = ys[keep], xs[keep]
    return np.stack([ys, xs], axis=1).reshape(-1, 2)


class _Nearest(paddle.nn.Layer):
    def forward(self, qy, qx, centers, size):
        return ops.nearest_center(qy, qx, centers, None, (size[0], size[1]))


class _Centers(paddle.nn.Layer):
    def __init__(self, threshold, kernel, top_k):
        super().__init__()
        self.args = (threshold, kernel, top_k)

    def forward(self, heat):
        return ops.find_centers(heat, *self.args)


_TRACED_NEAREST = paddle.jit.to_static(_Nearest(), full_graph=True, input_spec=[
    paddle.static.InputSpec([None], "float32"), paddle.static.InputSpec([None], "float32"),
    paddle.static.InputSpec([None, 2], "int64"), paddle.static.InputSpec([2], "int64")])


@st.composite
def grouping_scenes(draw):
    h, w = draw(st.integers(1, 70)), draw(st.integers(1, 70))
    k = draw(st.integers(0, 6))
    centers = np.array([[draw(st.integers(0, h - 1)), draw(st.integers(0, w - 1))] for _ in range(k)],
                       np.int64).reshape(-1, 2)
    # points on cell edges (multiples of 16), half-way between integers, and outside the image
    coord = st.one_of(st.integers(-20, 90).map(float), st.integers(-40, 180).map(lambda v: v / 2.0),
                      st.sampled_from([0.0, 15.999, 16.0, 31.5, 32.0, 48.0, 63.99, 64.0]),
                      st.floats(-30, 100, width=32))
    n = draw(st.integers(1, 60))
    qy = np.array([draw(coord) for _ in range(n)], np.float32)
    qx = np.array([draw(coord) for _ in range(n)], np.float32)
    return h, w, centers, qy, qx


@settings(max_examples=80, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(grouping_scenes())
def test_screened_grouping_equals_brute_force(scene):
    h, w, centers, qy, qx = scene
    expected = nearest_brute_force(qy, qx, centers)
    args = (paddle.to_tensor(qy), paddle.to_tensor(qx), paddle.to_tensor(centers))
    size = paddle.to_tensor([h, w], dtype="int64")
    assert ops.nearest_center(*args, None, (size[0], size[1])).numpy().tolist() == expected.tolist()
    assert _TRACED_NEAREST(*args, size).numpy().tolist() == expected.tolist()


def test_screening_owns_cells_far_from_boundaries():
    """Two centres far apart: the cells around each belong to it (the exact path sees only points near
    the bisector), and a cell the bisector crosses belongs to nobody."""
    centers = paddle.to_tensor([[8, 8], [8, 200]], dtype="int64")
    c = paddle.concat([centers.astype("float64"), paddle.full([1, 2], 1e8, dtype="float64")], axis=0)
    owner = ops._cell_owner(c, *ops._grid_shape((paddle.to_tensor(16, dtype="int64"),
                                                    paddle.to_tensor(224, dtype="int64")))).numpy()
    owner = owner.reshape(3, 16)  # one row of 14 cells inside a ring of ownerless cells
    assert (owner[0] == -1).all() and (owner[2] == -1).all() and owner[1, 0] == -1 and owner[1, -1] == -1
    assert owner[1, 1:4].tolist() == [0, 0, 0] and owner[1, -4:-1].tolist() == [1, 1, 1]
    assert owner[1, 7] == -1  # x in [96, 112): the bisector x = 104 runs through it


@pytest.mark.parametrize("kernel", [1, 3, 5, 7])
@pytest.mark.parametrize("top_k", [None, 3])
def test_staged_nms_equals_window_maximum(kernel, top_k):
    """Quantised random heatmaps (plateaus of equal values, ties at the window edges) of sizes down to
    1 x 1: the same centres as a brute-force clipped max pool, eagerly and traced."""
    rs = np.random.RandomState(kernel)
    spec = [paddle.static.InputSpec([None, None], "float32")]
    for threshold in (-1.0, 0.3):
        traced = paddle.jit.to_static(_Centers(threshold, kernel, top_k), input_spec=spec, full_graph=True)
        for h, w in ((1, 1), (1, 9), (7, 1), (12, 17), (31, 23)):
            heat = (np.round(rs.rand(h, w) * 4) / 4).astype(np.float32)
            expected = window_peaks_brute_force(heat, threshold, kernel, top_k)
            np.testing.assert_array_equal(ops.find_centers(paddle.to_tensor(heat), threshold, kernel, top_k).numpy(),
                                          expected)
            np.testing.assert_array_equal(traced(paddle.to_tensor(heat)).numpy(), expected)


def test_staged_nms_on_smooth_blobs_with_a_leading_axis():
    """Gaussian blobs with flat tops and blobs touching the image border, given as [1, H, W] (as the exported
    model passes its centre input): the same centres as the brute force, eagerly and traced."""
    h, w = 40, 57
    yy, xx = np.mgrid[0:h, 0:w]
    heat = np.zeros((h, w), np.float32)
    for cy, cx, s in ((0, 0, 3.0), (20, 30, 5.0), (39, 56, 2.0), (10, 50, 4.0), (33, 8, 6.0)):
        heat = np.maximum(heat, np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * s * s)).astype(np.float32))
    heat[18:23, 28:33] = heat[20, 30]  # a flat top: every pixel of it is a centre
    heat = np.round(heat * 64) / 64  # more plateaus
    spec = [paddle.static.InputSpec([1, None, None], "float32")]
    for kernel, top_k in ((3, None), (7, None), (7, 4)):
        expected = window_peaks_brute_force(heat, 0.1, kernel, top_k)
        assert len(expected) >= 4
        traced = paddle.jit.to_static(_Centers(0.1, kernel, top_k), input_spec=spec, full_graph=True)
        heat3 = paddle.to_tensor(heat[None])
        np.testing.assert_array_equal(ops.find_centers(heat3, 0.1, kernel, top_k).numpy(), expected)
        np.testing.assert_array_equal(traced(heat3).numpy(), expected)


def test_screened_grouping_of_nan_and_infinite_points():
    """Points from NaN or infinite offsets go to the exact path instead of indexing the cell table out of
    range: finite points get the brute-force answer, the others a valid centre index, eagerly and traced alike."""
    centers = np.array([[5, 5], [30, 40], [60, 10]], np.int64)
    qy = np.array([4.0, np.nan, 29.0, np.inf, -np.inf, 61.0, np.nan], np.float32)
    qx = np.array([6.0, 3.0, np.nan, 2.0, 7.0, 11.0, np.inf], np.float32)
    args = (paddle.to_tensor(qy), paddle.to_tensor(qx), paddle.to_tensor(centers))
    size = paddle.to_tensor([64, 64], dtype="int64")
    eager = ops.nearest_center(*args, None, (size[0], size[1])).numpy()
    traced = _TRACED_NEAREST(*args, size).numpy()
    np.testing.assert_array_equal(eager, traced)
    assert eager[0] == 0 and eager[5] == 2 and ((eager >= 0) & (eager < 3)).all()
