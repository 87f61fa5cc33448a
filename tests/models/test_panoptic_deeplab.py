"""PanopticDeepLab: checkpoint layout, output shapes, offset scaling, DSConv, checkpoint round trip."""
import json
import os

import numpy as np
import paddle
import paddle.base.unique_name as unique_name
import pytest
from paddleseg.cvlibs import Config, SegBuilder
from paddleseg.models import layers
from paddleseg.models.backbones import MobileNetV3_small_x0_35, ResNet50_vd

import paddleseg_ext  # noqa: F401
from paddleseg_ext.models import DepthwiseSeparableConvBNReLU, PanopticDeepLab
from paddleseg_ext.utils import UserInputError
from tests.conftest import CONFIG_DIR, ROOT

MANIFEST = os.path.join(ROOT, "tests", "data", "paddleseg_panoptic_deeplab_r50_os32_state_dict.json")
R50_CONFIGS = ["panoptic_deeplab_resnet50_os32_cityscapes_1025x513_bs8_90k_lr00005.yml",
               "panoptic_deeplab_resnet50_os32_cityscapes_2049x1025_bs1_90k_lr00005.yml"]
SMALL = dict(aspp_ratios=(1, 2, 3, 4), aspp_out_channels=16, decoder_channels=16,
             low_level_channels_projects=(8, 8, 8), instance_aspp_out_channels=16,
             instance_decoder_channels=8, instance_low_level_channels_projects=(4, 4, 4),
             instance_head_channels=8, aspp_dropout=0.0)


def small_model(seed=0, **kwargs):
    paddle.seed(seed)
    args = dict(SMALL, align_corners=True)
    args.update(kwargs)
    return PanopticDeepLab(19, MobileNetV3_small_x0_35(), **args)


def build_from_config(name):
    cfg = Config(os.path.join(CONFIG_DIR, name))
    cfg.dic["model"]["backbone"]["pretrained"] = None  # no network in tests
    return SegBuilder(cfg).model


@pytest.mark.parametrize("name", R50_CONFIGS)
def test_r50_os32_state_dict_equals_paddleseg_release(name):
    """Keys, their order and shapes equal PaddleSeg's released model.pdparams (461 tensors)."""
    with open(MANIFEST) as f:
        manifest = json.load(f)
    model = build_from_config(name)
    got = [[k, list(v.shape)] for k, v in model.state_dict().items()]
    assert len(got) == manifest["num_tensors"] == 461
    assert got == manifest["tensors"]
    assert sum(int(np.prod(s)) for _, s in got) == manifest["num_values"]


def test_outputs_at_input_resolution_in_train_and_eval():
    model = small_model()
    x = paddle.randn([2, 3, 65, 129])
    for mode in ("train", "eval"):
        getattr(model, mode)()
        sem, ctr, off = model(x)
        assert sem.shape == [2, 19, 65, 129]
        assert ctr.shape == [2, 1, 65, 129]
        assert off.shape == [2, 2, 65, 129]


def _constant_offset_head(model, dy, dx):
    """Make the offset classifier output (dy, dx) everywhere, in head-grid pixels."""
    conv = model.head.instance_head.classifier[1][1]
    conv.weight.set_value(paddle.zeros_like(conv.weight))
    conv.bias.set_value(paddle.to_tensor([dy, dx], dtype="float32"))


@pytest.mark.parametrize("size,align_corners,expected", [
    # 65x129 -> stride-4 grid 17x33; corners aligned: 64/16 = 4, 128/32 = 4
    ((65, 129), True, (4.0, 8.0)),
    # 64x128 -> grid 16x32; pixel areas aligned: 64/16 = 4, 128/32 = 4
    ((64, 128), False, (4.0, 8.0)),
    # 65x97 -> grid 17x25: (65-1)/(17-1) = 4 and (97-1)/(25-1) = 4
    ((65, 97), True, (4.0, 8.0)),
    # 66x130 -> grid 17x33 (ceil halvings): 66/17 and 130/33
    ((66, 130), False, (66 / 17, 2 * 130 / 33)),
])
def test_offsets_are_in_input_pixels(size, align_corners, expected):
    """A head offset of (1, 2) grid pixels is (1, 2) x the grid-to-input scale in input pixels."""
    model = small_model(align_corners=align_corners)
    model.eval()
    _constant_offset_head(model, 1.0, 2.0)
    with paddle.no_grad():
        off = model(paddle.randn([1, 3, *size]))[2].numpy()
    np.testing.assert_allclose(off[0, 0], expected[0], rtol=1e-5)
    np.testing.assert_allclose(off[0, 1], expected[1], rtol=1e-5)


def test_dsconv_flag_makes_aspp_depthwise_separable():
    plain = small_model(use_dsconv=False)
    ds = small_model(use_dsconv=True)
    for model, want in ((plain, layers.ConvBNReLU), (ds, DepthwiseSeparableConvBNReLU)):
        for decoder in (model.head.semantic_decoder, model.head.instance_decoder):
            blocks = decoder.aspp.aspp_blocks
            assert isinstance(blocks[0], layers.ConvBNReLU)  # rate 1 stays a 1x1 conv
            assert all(isinstance(b, want) for b in blocks[1:])
    sd = ds.state_dict()
    c_in = ds.backbone.feat_channels[3]
    assert sd["head.semantic_decoder.aspp.aspp_blocks.1.depthwise_conv._conv.weight"].shape == [c_in, 1, 3, 3]
    assert sd["head.semantic_decoder.aspp.aspp_blocks.1.piontwise_conv._conv.weight"].shape == [16, c_in, 1, 1]
    assert "head.semantic_decoder.aspp.aspp_blocks.1._conv.weight" in plain.state_dict()
    n_plain = sum(p.numel().item() for p in plain.parameters())
    n_ds = sum(p.numel().item() for p in ds.parameters())
    assert n_ds < n_plain
    sem, _, _ = ds(paddle.randn([1, 3, 33, 65]))
    assert sem.shape == [1, 19, 33, 65]


def _train_one_step(model):
    model.train()
    opt = paddle.optimizer.Adam(1e-2, parameters=model.parameters())
    out = model(paddle.randn([2, 3, 33, 65]))
    sum(o.square().mean() for o in out).backward()
    opt.step()


def test_checkpoint_round_trip_gives_identical_outputs(tmp_path):
    model = small_model(seed=1)
    _train_one_step(model)  # moves weights and BN statistics away from their initial values
    model.eval()
    x = paddle.randn([1, 3, 33, 65])
    with paddle.no_grad():
        ref = [o.numpy() for o in model(x)]
    path = str(tmp_path / "model.pdparams")
    paddle.save(model.state_dict(), path)

    other = small_model(seed=2)
    missing, unexpected = other.set_state_dict(paddle.load(path))
    assert not missing and not unexpected
    other.eval()
    with paddle.no_grad():
        got = [o.numpy() for o in other(x)]
    for a, b in zip(ref, got):
        np.testing.assert_array_equal(a, b)

    # the model-level `pretrained` argument loads the same checkpoint (a file or its directory)
    for pretrained in (path, str(tmp_path)):
        third = small_model(seed=3, pretrained=pretrained)
        third.eval()
        with paddle.no_grad():
            np.testing.assert_array_equal(third(x)[0].numpy(), ref[0])


def test_inconsistent_low_level_projections_name_the_key():
    with pytest.raises(UserInputError, match="low_level_channels_projects"):
        small_model(low_level_channels_projects=(8, 8))
    with pytest.raises(UserInputError, match="backbone_indices"):
        small_model(backbone_indices=(2, 1, 0, 7))


def test_single_feature_backbone_without_low_level_fusion():
    """backbone_indices of length 1 (HRNet-style): ASPP output feeds the heads directly."""
    paddle.seed(0)
    with unique_name.guard():
        model = PanopticDeepLab(
            5, MobileNetV3_small_x0_35(), backbone_indices=(0,), aspp_ratios=(1, 2),
            aspp_out_channels=8, decoder_channels=8, low_level_channels_projects=(),
            instance_aspp_out_channels=8, instance_decoder_channels=8,
            instance_low_level_channels_projects=(), instance_head_channels=4, align_corners=True)
    sem, ctr, off = model(paddle.randn([1, 3, 33, 65]))
    assert sem.shape == [1, 5, 33, 65] and ctr.shape == [1, 1, 33, 65] and off.shape == [1, 2, 33, 65]


def test_resnet50_os32_feature_strides():
    """Sanity of the backbone choice: OS32 gives strides 4, 8, 16, 32 (res2..res5)."""
    bb = ResNet50_vd(output_stride=32)
    bb.eval()
    with paddle.no_grad():
        feats = bb(paddle.randn([1, 3, 65, 129]))
    assert [f.shape[2:] for f in feats] == [[17, 33], [9, 17], [5, 9], [3, 5]]
    assert [f.shape[1] for f in feats] == [256, 512, 1024, 2048]
