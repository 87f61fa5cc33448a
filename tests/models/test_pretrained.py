"""Pretrained weights (`models.pretrained`): local files and checkpoint folders load; an unreachable URL
or a missing file is a one-line `UserInputError` naming it, inside the scoped
`clear_pretrained_errors()` (the runtime builds models in it), and PaddleSeg is left as it was outside."""
import os

import numpy as np
import paddle
import paddleseg.utils
import paddleseg.utils.utils as ps_utils
import pytest
from paddleseg.cvlibs import Config, SegBuilder
from paddleseg.models.backbones import MobileNetV3_small_x0_35

from paddleseg_ext.models import PanopticDeepLab, clear_pretrained_errors
from paddleseg_ext.models import pretrained as pretrained_mod
from paddleseg_ext.runtime.config import find_user_input_error
from paddleseg_ext.utils import UserInputError
from tests.conftest import DEMO_CONFIG, UNREACHABLE


def test_backbone_pretrained_from_local_file(tmp_path):
    paddle.seed(5)
    src = MobileNetV3_small_x0_35()
    path = str(tmp_path / "backbone.pdparams")
    paddle.save(src.state_dict(), path)
    paddle.seed(6)
    dst = MobileNetV3_small_x0_35(pretrained=path)
    for (k, a), b in zip(src.state_dict().items(), dst.state_dict().values()):
        np.testing.assert_array_equal(a.numpy(), b.numpy(), err_msg=k)


def test_unreachable_backbone_url_is_a_clear_user_error():
    with clear_pretrained_errors():
        with pytest.raises(UserInputError) as info:
            MobileNetV3_small_x0_35(pretrained=UNREACHABLE)
    msg = str(info.value)
    assert UNREACHABLE in msg and "pretrained: /path/to/model.pdparams" in msg
    assert "\n" not in msg


def test_unreachable_url_through_segbuilder_keeps_the_user_error():
    cfg = Config(DEMO_CONFIG)
    cfg.dic["model"]["backbone"]["pretrained"] = UNREACHABLE
    with clear_pretrained_errors():
        with pytest.raises(Exception) as info:
            SegBuilder(cfg).model
    err = find_user_input_error(info.value)
    assert isinstance(err, UserInputError) and UNREACHABLE in str(err)
    assert UNREACHABLE in str(info.value)


def test_missing_local_weights_name_the_path(tmp_path):
    missing = str(tmp_path / "nope" / "model.pdparams")
    with clear_pretrained_errors():
        with pytest.raises(UserInputError, match="not found: .*nope"):
            MobileNetV3_small_x0_35(pretrained=missing)
    # the model-level `pretrained` goes through the same loader, with or without the context
    paddle.seed(0)
    with pytest.raises(UserInputError, match="not found: .*nope"):
        PanopticDeepLab(19, MobileNetV3_small_x0_35(), aspp_ratios=(1, 2, 3, 4), pretrained=missing)


def test_clear_pretrained_errors_is_scoped():
    """PaddleSeg's loader (module attribute and package re-export) is replaced inside the block only,
    and restored when the block raises."""
    original = ps_utils.load_pretrained_model
    assert original is pretrained_mod._ORIGINAL_LOAD
    with clear_pretrained_errors():
        assert ps_utils.load_pretrained_model is pretrained_mod.load_pretrained_model
        assert paddleseg.utils.load_pretrained_model is pretrained_mod.load_pretrained_model
    assert ps_utils.load_pretrained_model is original and paddleseg.utils.load_pretrained_model is original
    with pytest.raises(RuntimeError):
        with clear_pretrained_errors():
            raise RuntimeError("boom")
    assert ps_utils.load_pretrained_model is original and paddleseg.utils.load_pretrained_model is original


def test_resolve_weights_path(tmp_path):
    path = tmp_path / "ckpt" / "model.pdparams"
    path.parent.mkdir()
    path.write_bytes(b"")
    assert pretrained_mod.resolve_weights_path(str(path)) == str(path)
    assert pretrained_mod.resolve_weights_path(str(path.parent)) == str(path)  # a checkpoint folder
    with pytest.raises(UserInputError, match="expected a URL or a path"):
        pretrained_mod.resolve_weights_path(3)
    assert pretrained_mod.is_url(UNREACHABLE) and not pretrained_mod.is_url(str(path))
    assert os.path.isfile(pretrained_mod.resolve_weights_path(str(path)))
