"""PanopticFCN model: outputs, oracle PQ = 100 through the project's evaluator, static export equal to
eager, configs, and a short learning check."""
import glob
import os
import time

import types

import numpy as np
import paddle
import pytest
from paddle.static import InputSpec
from paddleseg.cvlibs import Config, SegBuilder, manager

from paddleseg_ext.datasets import CityscapesPanoptic, cityscapes_meta, coco_meta
from paddleseg_ext.evaluation import PanopticEvaluator
from paddleseg_ext.models.base import PanopticModel
from paddleseg_ext.models.panoptic_fcn import ClassLayout, PanopticFCNPostprocess
from paddleseg_ext.models.panoptic_fcn.postprocess import DEFAULTS
from paddleseg_ext.utils import UserInputError, read_panoptic_png
from tests.models.panoptic_fcn.oracle import oracle_outputs

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
CFG_DIR = os.path.join(ROOT, "configs", "panoptic_fcn")
THINGS = list(range(11, 19))
META = types.SimpleNamespace(num_classes=19, thing_ids=THINGS, label_divisor=1000, ignore_index=255, void_label=255000)
CATEGORIES = [{"id": i, "name": str(i), "isthing": int(i in THINGS)} for i in range(19)]


def tiny_model(dcn=False):
    bb = manager.BACKBONES["MobileNetV3_small_x0_35"](pretrained=None)
    return manager.MODELS["PanopticFCN"](
        num_classes=19, thing_ids=THINGS, backbone=bb, fpn_channels=16, head_channels=16, head_num_convs=1,
        semantic_fpn_channels=16, encoder_channels=8, encoder_num_convs=1, norm_groups=4, position_use_dcn=dcn,
        pos_num=3, max_instances=10)


def collate(samples):
    return {k: paddle.to_tensor(np.stack([np.asarray(s[k]) for s in samples])) for k in samples[0]}


def test_interface_and_output_layout():
    model = tiny_model()
    assert isinstance(model, PanopticModel) and model.supports_tta is False
    assert model.score_modes == ("score",)
    assert model.postprocess_defaults["overlap_threshold"] == 0.5
    assert model.postprocess_defaults["stuff_area"] == 4096
    assert model.postprocess_defaults["instance_threshold"] == 0.2
    out = model(paddle.randn([2, 3, 64, 96]))
    shapes = [list(o.shape) for o in out]
    sizes = [[8, 12], [4, 6], [2, 3], [1, 2], [1, 1]]
    assert shapes[:5] == [[2, 8] + s for s in sizes]  # thing centres, 8 thing classes
    assert shapes[5:10] == [[2, 12] + s for s in sizes]  # 11 stuff classes + "things"
    assert shapes[10:20] == [[2, 8] + s for s in sizes] * 2  # thing / stuff kernel maps
    assert shapes[20:] == [[2, 8, 16, 24], [1, 8]]  # encoded features, stuff bias
    with pytest.raises(UserInputError, match="things"):
        model.build_postprocess(types.SimpleNamespace(**dict(vars(META), thing_ids=[11])), {})


def evaluate_oracle(root, post, split="val", frames=2):
    ds = CityscapesPanoptic(root, [{"type": "Normalize"}], mode=split)
    ev = PanopticEvaluator(CATEGORIES, 1000, 255000)
    for rec in ds.records[:frames]:
        gt = read_panoptic_png(rec["label_path"])
        outs, valid_hw, ori_hw = oracle_outputs(gt, rec["segments_info"], post.layout)
        pan, sem, ids, scores = post(outs, valid_hw, ori_hw)
        assert list(pan.shape) == list(gt.shape) and list(sem.shape) == list(gt.shape)
        n_things = sum(1 for s in rec["segments_info"] if s["category_id"] in THINGS and not s.get("iscrowd"))
        assert ids.shape[0] == n_things and scores.shape[1] == 1
        ev.update(pan.numpy(), gt, rec["segments_info"])
    return ev.evaluate()


def test_oracle_outputs_give_pq_100(demo_root):
    """Ground truth written as network outputs (one-hot encoded features, exact kernels at the true
    centres) goes through candidates, fusion, rescoring, upsampling and combine unchanged."""
    post = PanopticFCNPostprocess(5, ClassLayout(19, THINGS), 1000, 255000, stuff_area=0)
    res = evaluate_oracle(demo_root, post)
    assert res["All"]["pq"] == 1.0 and res["Things"]["n"] == 3 and res["Stuff"]["n"] >= 5


@pytest.mark.slow
def test_oracle_through_the_exported_postprocessing(demo_root, tmp_path):
    post = PanopticFCNPostprocess(5, ClassLayout(19, THINGS), 1000, 255000, stuff_area=0)
    rec = CityscapesPanoptic(demo_root, [{"type": "Normalize"}], mode="val").records[0]
    gt = read_panoptic_png(rec["label_path"])
    outs, valid_hw, ori_hw = oracle_outputs(gt, rec["segments_info"], post.layout)
    spec = [InputSpec([1] + o.shape[1:2] + [None, None], "float32") for o in outs[:-1]]
    spec.append(InputSpec([1, None], "float32"))

    class Wrapped(paddle.nn.Layer):
        def __init__(self, post):
            super().__init__()
            self.post = post

        def forward(self, outputs, valid_hw, ori_hw):
            return self.post(outputs, valid_hw, ori_hw)

    static = paddle.jit.to_static(Wrapped(post), input_spec=[spec, InputSpec([2], "int64"), InputSpec([2], "int64")],
                                  full_graph=True)
    paddle.jit.save(static, str(tmp_path / "post"))
    loaded = paddle.jit.load(str(tmp_path / "post"))
    got = loaded(*outs, valid_hw, ori_hw)  # the saved program takes the flattened inputs
    eager = post(outs, valid_hw, ori_hw)
    for a, b in zip(got, eager):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    ev = PanopticEvaluator(CATEGORIES, 1000, 255000)
    ev.update(got[0].numpy(), gt, rec["segments_info"])
    assert ev.evaluate()["All"]["pq"] == 1.0


@pytest.mark.slow
def test_export_network_and_postprocessing_equals_eager(tmp_path):
    paddle.seed(3)
    model = tiny_model(dcn=True)
    # spread the random kernels so that masks differ from each other (a fresh model's are all ~0.5)
    for p in (model.kernel_head.out_conv.weight, model.thing_embed.weight, model.stuff_embed.weight):
        p.set_value(paddle.randn(p.shape) * 0.5)
    for conv in model.encoder.tower.convs:  # and the encoded features vary across the image
        conv.conv.weight.set_value(paddle.randn(conv.conv.weight.shape) * 0.3)
    model.eval()
    params = dict(model.postprocess_defaults, stuff_area=0, thing_threshold=0.0, score_threshold=0.0,
                  instance_threshold=0.0)
    post = model.build_postprocess(META, params)

    class Net(paddle.nn.Layer):
        def __init__(self):
            super().__init__()
            self.model, self.post = model, post

        def forward(self, x, valid_hw, ori_hw):
            return self.post(self.model(x), valid_hw, ori_hw)

    net = Net()
    net.eval()
    cases = [(paddle.randn([1, 3, 64, 128]), [64, 125], [64, 125]),
             (paddle.randn([1, 3, 96, 160]), [90, 160], [45, 80])]
    with paddle.no_grad():
        eager = [net(x, paddle.to_tensor(v), paddle.to_tensor(o)) for x, v, o in cases]
    assert len(np.unique(eager[0][0].numpy())) >= 3 and eager[0][2].shape[0] >= 1
    static = paddle.jit.to_static(net, input_spec=[InputSpec([1, 3, None, None], "float32"), InputSpec([2], "int64"),
                                                   InputSpec([2], "int64")], full_graph=True)
    paddle.jit.save(static, str(tmp_path / "model"))
    loaded = paddle.jit.load(str(tmp_path / "model"))
    for (x, v, o), ref in zip(cases, eager):
        got = loaded(x, paddle.to_tensor(v), paddle.to_tensor(o))
        assert list(got[0].shape) == o
        for a, b in zip(got, ref):
            np.testing.assert_array_equal(a.numpy(), b.numpy())


CONFIGS = sorted(os.path.basename(p) for p in glob.glob(os.path.join(CFG_DIR, "*.yml")))


def test_expected_configs_exist():
    assert set(CONFIGS) >= {"panoptic_fcn_r50_coco_1x.yml", "panoptic_fcn_r50_coco_3x.yml",
                            "panoptic_fcn_r50_400_coco_3x.yml", "panoptic_fcn_r50_512_coco_3x.yml",
                            "panoptic_fcn_r50_600_coco_3x.yml", "panoptic_fcn_star_r50_coco_3x.yml",
                            "panoptic_fcn_r50_cityscapes.yml", "panoptic_fcn_demo_cpu.yml"}


@pytest.mark.parametrize("name", CONFIGS)
def test_config_sections(name):
    cfg = Config(os.path.join(CFG_DIR, name))
    model = cfg.model_cfg
    assert model["type"] == "PanopticFCN"
    for sec in (cfg.train_dataset_cfg, cfg.val_dataset_cfg):
        gen = sec["target_generator"]
        assert gen["type"] == "PanopticFCNTargetGenerator"
        meta = {"CityscapesPanoptic": cityscapes_meta, "CocoPanoptic": coco_meta}[sec["type"]]
        assert gen["thing_ids"] == model["thing_ids"] == list(meta.THING_IDS)
        assert model["num_classes"] == meta.NUM_CLASSES
        assert gen["instance_scales"] == model["instance_scales"]
    assert set(cfg.dic["postprocess"]) == set(DEFAULTS) - {"mask_block"}
    assert [t["type"] for t in cfg.loss_cfg["types"]] == ["PanopticFCNFocalLoss", "PanopticFCNDiceLoss"]
    assert cfg.loss_cfg["coef"] == [1, 3]
    expected_pos = {"400": 3, "512": 3, "600": 5}
    key = next((k for k in expected_pos if "_{}_".format(k) in name), None)
    assert model["pos_num"] == (expected_pos[key] if key else 7)
    if "star" in name:
        assert model["encoder_use_dcn"] is True and model["encoder_channels"] == 256


def test_demo_config_builds_and_runs_a_step(demo_root):
    cfg = Config(os.path.join(CFG_DIR, "panoptic_fcn_demo_cpu.yml"))
    for sec in ("train_dataset", "val_dataset"):
        cfg.dic[sec]["dataset_root"] = demo_root
    builder = SegBuilder(cfg)
    model, ds, losses = builder.model, builder.train_dataset, builder.loss
    batch = collate([ds[0], ds[1]])
    terms = model.loss(model(batch["img"]), batch, losses)
    sum(terms.values()).backward()
    assert all(np.isfinite(float(v)) for v in terms.values())
    val = builder.val_dataset[0]
    assert val["img"].shape == (3, 128, 256)


@pytest.mark.slow
def test_short_adam_run_lowers_every_loss_term(demo_root):
    """100 Adam steps (the demo config's learning rate, no decay) on 2 demo frames with its model: every
    loss term goes down."""
    paddle.seed(0)
    np.random.seed(0)
    cfg = Config(os.path.join(CFG_DIR, "panoptic_fcn_demo_cpu.yml"))
    for sec in ("train_dataset", "val_dataset"):
        cfg.dic[sec]["dataset_root"] = demo_root
    builder = SegBuilder(cfg)
    model, ds, losses = builder.model, builder.train_dataset, builder.loss
    opt = paddle.optimizer.Adam(cfg.lr_scheduler_cfg["learning_rate"], parameters=model.parameters())
    history = []
    t0 = time.time()
    for _ in range(100):
        batch = collate([ds[0], ds[1]])
        terms = model.loss(model(batch["img"]), batch, losses)
        sum(terms.values()).backward()
        opt.step()
        opt.clear_grad()
        history.append({k: float(v) for k, v in terms.items()})
    first = {k: np.mean([h[k] for h in history[:5]]) for k in history[0]}
    last = {k: np.mean([h[k] for h in history[-5:]]) for k in history[0]}
    for k in first:
        assert last[k] < 0.6 * first[k], (k, first[k], last[k])
    assert time.time() - t0 < 600


def test_coco_solver_builds_with_norm_layers_out_of_weight_decay():
    cfg = Config(os.path.join(CFG_DIR, "panoptic_fcn_r50_coco_1x.yml"))
    small = {"backbone": {"type": "MobileNetV3_small_x0_35", "pretrained": None}, "fpn_channels": 32,
             "head_channels": 32, "semantic_fpn_channels": 32, "head_num_convs": 1, "encoder_num_convs": 1}
    cfg.dic["model"].update(small)
    builder = SegBuilder(cfg)
    opt = builder.optimizer
    assert type(opt).__name__ == "Momentum"
    lr = opt._learning_rate
    assert type(lr).__name__ == "LinearWarmup" and lr.warmup_steps == 1000
    assert lr() == pytest.approx(1e-5)
    model = builder.model
    norm_params = {p.name for n, p in model.named_parameters() if ".norm." in n}  # the GroupNorms
    groups = [g for g in opt._param_groups if norm_params & {p.name for p in g["params"]}]
    assert len(groups) == 1 and norm_params <= {p.name for p in groups[0]["params"]}
    # PaddleSeg passes weight_decay 1e-4 x 0.0 for the group; Momentum keeps it as the group's L2 coefficient
    assert groups[0]["regularization_coeff"] == 0.0
    assert opt._param_groups[-1]["regularization_coeff"] == pytest.approx(1e-4)
