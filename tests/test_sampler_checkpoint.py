"""Iteration sampler (exact resume, rank sharding) and atomic checkpoints."""
import os

import numpy as np
import paddle
import pytest

from paddleseg_ext.core import checkpoint as ckpt
from paddleseg_ext.core.sampler import IterationBatchSampler, SeededDataset
from paddleseg_ext.utils import UserInputError


def _batches(**kw):
    return list(IterationBatchSampler(**kw))


def test_resumed_sampler_continues_the_same_stream():
    full = _batches(num_samples=7, batch_size=3, total_iters=10, seed=5)
    resumed = _batches(num_samples=7, batch_size=3, total_iters=10, seed=5, start_iter=4)
    assert len(full) == 10 and resumed == full[4:]


def test_ranks_split_each_global_batch_disjointly():
    r0 = _batches(num_samples=8, batch_size=2, total_iters=4, seed=1, rank=0, nranks=2)
    r1 = _batches(num_samples=8, batch_size=2, total_iters=4, seed=1, rank=1, nranks=2)
    # the first two global batches of 4 make one epoch of 8
    first_epoch = [k[0] for b in r0[:2] + r1[:2] for k in b]
    assert sorted(first_epoch) == list(range(8))
    seeds = [k[1] for b in r0 + r1 for k in b]
    assert len(set(seeds)) == len(seeds)


def test_epochs_are_permutations():
    b = _batches(num_samples=5, batch_size=5, total_iters=3, seed=0)
    for batch in b:
        assert sorted(k[0] for k in batch) == list(range(5))
    assert [k[0] for k in b[0]] != [k[0] for k in b[1]] or [k[0] for k in b[1]] != [k[0] for k in b[2]]


def test_seeded_dataset_reproduces_randomness():
    class Rand(paddle.io.Dataset):
        def __getitem__(self, i):
            return np.random.rand() + i

        def __len__(self):
            return 3

    ds = SeededDataset(Rand())
    assert ds[(1, 42)] == ds[(1, 42)]
    assert ds[(1, 42)] != ds[(1, 43)]


def _tiny():
    paddle.seed(0)
    model = paddle.nn.Linear(3, 2)
    opt = paddle.optimizer.Adam(learning_rate=paddle.optimizer.lr.PolynomialDecay(0.1, 10), parameters=model.parameters())
    loss = model(paddle.ones([1, 3])).sum()
    loss.backward()
    opt.step()
    opt._learning_rate.step()
    return model, opt


def test_checkpoint_roundtrip_and_prune(tmp_path):
    model, opt = _tiny()
    save_dir = str(tmp_path / "out")
    os.makedirs(save_dir)
    for it in (10, 20, 30):
        ckpt.save_checkpoint(save_dir, it, model, opt, {"best_pq": 0.5})
    assert [n for n, _ in ckpt.list_checkpoints(save_dir)] == [10, 20, 30]
    removed = ckpt.prune_checkpoints(save_dir, 2)
    assert [os.path.basename(p) for p in removed] == ["iter_10"]
    assert [n for n, _ in ckpt.list_checkpoints(save_dir)] == [20, 30]
    # keep_checkpoint_max never deletes the newest one
    ckpt.prune_checkpoints(save_dir, 0)
    assert ckpt.list_checkpoints(save_dir)[-1][0] == 30

    model2, opt2 = _tiny()
    with paddle.no_grad():
        for p in model2.parameters():
            p.set_value(paddle.zeros_like(p))
    path = ckpt.resolve_resume_path(save_dir)
    assert path.endswith("iter_30")
    state = ckpt.load_checkpoint(path, model2, opt2)
    assert state["iteration"] == 30 and state["best_pq"] == 0.5
    for a, b in zip(model.parameters(), model2.parameters()):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    assert opt2._learning_rate.last_epoch == opt._learning_rate.last_epoch
    # Adam moments come back although the two models' framework parameter names differ
    names1 = {p.name: n for n, p in model.named_parameters()}
    names2 = {n: p.name for n, p in model2.named_parameters()}
    s1, s2 = opt.state_dict(), opt2.state_dict()
    moments = [k for k in s1 if k.endswith("moment1_0")]
    assert len(moments) == 2
    for k in moments:
        fw = k[: -len("_moment1_0")]
        k2 = names2[names1[fw]] + "_moment1_0"
        np.testing.assert_array_equal(s1[k].numpy(), s2[k2].numpy())


def test_half_written_checkpoints_are_ignored_and_cleaned(tmp_path):
    model, opt = _tiny()
    save_dir = str(tmp_path)
    ckpt.save_checkpoint(save_dir, 5, model, opt, {})
    # what a kill during a write leaves behind: a temp folder, and an iter folder without its optimizer file
    os.makedirs(os.path.join(save_dir, ".tmp_iter_10_123"))
    open(os.path.join(save_dir, ".tmp_iter_10_123", "model.pdparams"), "wb").write(b"trunc")
    os.makedirs(os.path.join(save_dir, "iter_15"))
    open(os.path.join(save_dir, "iter_15", "model.pdparams"), "wb").write(b"trunc")
    assert [n for n, _ in ckpt.list_checkpoints(save_dir)] == [5]
    assert ckpt.resolve_resume_path(save_dir).endswith("iter_5")
    ckpt.remove_stale_tmp(save_dir)
    assert not os.path.exists(os.path.join(save_dir, ".tmp_iter_10_123"))


def test_resume_errors_name_the_path(tmp_path):
    with pytest.raises(UserInputError, match="no such checkpoint folder"):
        ckpt.resolve_resume_path(str(tmp_path / "nope"))
    with pytest.raises(UserInputError, match="no complete iter_<N> checkpoint"):
        ckpt.resolve_resume_path(str(tmp_path))
