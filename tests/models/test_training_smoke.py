"""A short CPU training run of the demo config on the generated demo dataset lowers every loss term of
`PanopticDeepLab.loss` (the model interface the training loop sums). Random 129x65 crops instead of the
config's whole 257x129 frames: the same learning signal at a quarter of the cost."""
import random

import numpy as np
import paddle
import pytest
from paddleseg.cvlibs import Config, SegBuilder

from tests.conftest import DEMO_CONFIG

CROP = [129, 65]  # w, h
KEYS = ("img", "semantic", "center", "offset", "semantic_weights", "center_weights", "offset_weights")
STEPS = 30


def _batch(dataset, indices):
    samples = [dataset[int(i)] for i in indices]
    return {k: paddle.to_tensor(np.stack([s[k] for s in samples])) for k in KEYS}


@pytest.mark.slow
def test_demo_training_lowers_every_loss_term(demo_root):
    cfg = Config(DEMO_CONFIG)
    for key in ("train_dataset", "val_dataset"):
        cfg.dic[key]["dataset_root"] = demo_root
    (crop,) = [t for t in cfg.dic["train_dataset"]["transforms"] if t["type"] == "PanopticRandomPaddingCrop"]
    crop["crop_size"] = CROP
    paddle.seed(0)
    np.random.seed(0)
    random.seed(0)
    builder = SegBuilder(cfg)
    dataset, model, loss_cfg, optimizer = builder.train_dataset, builder.model, builder.loss, builder.optimizer
    batch_size = cfg.batch_size

    # The same (augmented) batch measured before and after training, in train mode (BN batch stats).
    fixed = _batch(dataset, range(batch_size))
    assert float(fixed["offset_weights"].sum()) > 0  # the batch has thing pixels

    def measure():
        with paddle.no_grad():
            terms = model.loss(model(fixed["img"]), fixed, loss_cfg)
        return {k: float(v) for k, v in terms.items()}

    model.train()
    before = measure()
    rng = np.random.RandomState(0)
    for _ in range(STEPS):
        batch = _batch(dataset, rng.choice(len(dataset), batch_size, replace=False))
        terms = model.loss(model(batch["img"]), batch, loss_cfg)
        assert set(terms) == {"semantic", "center", "offset"}
        total = paddle.add_n(list(terms.values()))
        assert np.isfinite(float(total))
        total.backward()
        optimizer.step()
        optimizer.clear_grad()
    after = measure()
    for key in ("semantic", "center", "offset"):
        assert after[key] < before[key], (key, before, after)
    assert after["semantic"] < 0.8 * before["semantic"]
    assert after["center"] < 0.5 * before["center"]
