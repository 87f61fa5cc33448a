"""ResizeShortRange: detectron2's ResizeShortestEdge sizes, a size drawn per call, labels kept intact."""
import numpy as np
import pytest

from paddleseg_ext.models.panoptic_fcn.transforms import ResizeShortRange, short_side_size
from paddleseg_ext.utils import UserInputError


@pytest.mark.parametrize("hw,short,max_size,expected", [
    ((480, 640), 800, 1333, (800, 1067)),  # 640 * 800 / 480 = 1066.7
    ((427, 640), 800, 1333, (800, 1199)),  # 1199.1
    ((1024, 2048), 800, 1333, (667, 1333)),  # capped: 1600 > 1333 -> 666.5 x 1333
    ((640, 427), 400, 666, (600, 400)),  # portrait: 599.5 x 400, long side below 666
    ((2000, 1000), 800, 1333, (1333, 667)),  # portrait, capped: 1600 x 800 -> 1333 x 666.5
])
def test_sizes_by_hand(hw, short, max_size, expected):
    assert short_side_size(hw[0], hw[1], short, max_size) == expected


def test_each_call_draws_a_size_and_labels_stay_segment_ids():
    np.random.seed(0)
    t = ResizeShortRange([20, 40], max_size=1000)
    label = (np.arange(10 * 15).reshape(10, 15) * 1000 + 7).astype(np.int32)
    shorts = set()
    for _ in range(20):
        data = {"img": np.zeros((10, 15, 3), np.float32), "label": label.copy(), "gt_fields": ["label"],
                "trans_info": []}
        out = t(data)
        shorts.add(out["img"].shape[0])
        assert out["label"].shape == out["img"].shape[:2] and out["label"].dtype == np.int32
        assert np.isin(out["label"], label).all()  # nearest neighbour: no new ids
        assert out["trans_info"] == [("resize", (10, 15))]
    assert shorts == {20, 40}


def test_bad_arguments():
    with pytest.raises(UserInputError):
        ResizeShortRange([])
    with pytest.raises(UserInputError):
        ResizeShortRange(800, max_size=0)
