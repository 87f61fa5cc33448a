"""The traceable post-processing layer (`PanopticPostprocess`): traced whole with ``paddle.jit.to_static``
and saved for ``paddle.inference``, it gives exactly what the eager `panoptic_postprocess` gives."""
import os

import numpy as np
import paddle
import pytest

from paddleseg_ext.pipeline.static_predictor import paddle_inference_predictor, run_paddle_inference
from paddleseg_ext.postprocess import PanopticPostprocess, panoptic_postprocess
from paddleseg_ext.utils import UserInputError


def _random_case(rs, h, w, num_classes=19):
    sem = rs.randint(0, num_classes, (h, w))
    sem[rs.rand(h, w) < 0.5] = rs.choice([11, 13])
    heat = rs.rand(1, h, w).astype("float32")
    if rs.rand() < 0.5:
        heat = (np.round(heat * 4) / 4).astype("float32")  # plateaus: tied scores and tied NMS maxima
    off = (rs.randn(2, h, w) * 4).astype("float32")
    if rs.rand() < 0.5:
        off = (np.round(off) + 0.5).astype("float32")  # points half-way between centres: distance ties
    return sem, heat, off


POST_KWARGS = dict(thing_ids=list(range(11, 19)), label_divisor=1000, void_label=255000, threshold=0.3,
                   nms_kernel=3, top_k=4, stuff_area=6)
POST_SPEC = [paddle.static.InputSpec([None, None], "int64", "semantic"),
             paddle.static.InputSpec([1, None, None], "float32", "center"),
             paddle.static.InputSpec([2, None, None], "float32", "offset")]


def _post_cases():
    rs = np.random.RandomState(0)
    cases = [_random_case(rs, rs.randint(1, 24), rs.randint(1, 24)) for _ in range(12)]
    sem, heat, off = _random_case(rs, 9, 11)
    cases.append((sem, heat * 0, off))  # no centre: thing pixels are void
    cases.append((np.full_like(sem, 2), heat, off))  # no thing pixel
    sem_one = sem.copy()
    sem_one[:] = 13
    cases.append((sem_one, heat, off))  # no stuff pixel
    return cases


# group_block 7: with K + 1 <= 5 candidates, blocks of 1 to 7 pixels, so the traced while loop
# runs many times (and its padded last block is exercised).
@pytest.mark.parametrize("group_block", [None, 7])
def test_traced_postprocess_equals_panoptic_postprocess(group_block):
    """The graph version (traced whole with to_static) against the eager function, incl. edge cases."""
    layer = PanopticPostprocess(19, group_block=group_block, **POST_KWARGS)
    traced = paddle.jit.to_static(layer, input_spec=POST_SPEC, full_graph=True)
    for sem, heat, off in _post_cases():
        expected, centers = panoptic_postprocess(sem, heat, off, **POST_KWARGS)
        got, got_centers = traced(paddle.to_tensor(sem), paddle.to_tensor(heat), paddle.to_tensor(off))
        np.testing.assert_array_equal(got.numpy(), expected)
        np.testing.assert_array_equal(got_centers.numpy(), centers)


def test_saved_postprocess_in_paddle_inference_equals_panoptic_postprocess(tmp_path):
    """Saved and run by paddle.inference as infer.py runs a model (`run_paddle_inference`), where the graph
    may be rewritten by passes."""
    layer = PanopticPostprocess(19, group_block=7, **POST_KWARGS)
    paddle.jit.save(paddle.jit.to_static(layer, input_spec=POST_SPEC, full_graph=True), str(tmp_path / "post"),
                    input_spec=POST_SPEC)
    model = [f for f in os.listdir(tmp_path) if f.endswith((".json", ".pdmodel"))]
    # a layer without parameters: Paddle 2.6 writes no .pdiparams and refuses to load one, so pass ""
    params = str(tmp_path / "post.pdiparams")
    predictor = paddle_inference_predictor(str(tmp_path / model[0]), params if os.path.isfile(params) else "",
                                           use_onednn=False)
    for sem, heat, off in _post_cases():
        got = run_paddle_inference(predictor, [np.ascontiguousarray(a) for a in (sem, heat, off)])[0]
        np.testing.assert_array_equal(got, panoptic_postprocess(sem, heat, off, **POST_KWARGS)[0])


def test_traced_postprocess_without_thing_classes():
    kwargs = dict(POST_KWARGS, thing_ids=[])
    traced = paddle.jit.to_static(PanopticPostprocess(19, **kwargs), input_spec=POST_SPEC, full_graph=True)
    sem, heat, off = _post_cases()[0]
    got, _ = traced(paddle.to_tensor(sem), paddle.to_tensor(heat), paddle.to_tensor(off))
    areas = np.bincount(sem.ravel(), minlength=19)
    np.testing.assert_array_equal(got.numpy(), np.where(areas[sem] < 6, 255000, sem * 1000))


@pytest.mark.parametrize("kwargs, match", [
    (dict(thing_ids=[11, 19]), "thing_ids"),
    (dict(top_k=1000), "top_k"),  # instance numbers could reach label_divisor: not checkable in the graph
    (dict(nms_kernel=2), "nms_kernel"),
])
def test_postprocess_layer_rejects_bad_settings(kwargs, match):
    with pytest.raises(UserInputError, match=match):
        PanopticPostprocess(19, **dict(POST_KWARGS, **kwargs))
