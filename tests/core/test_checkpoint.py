"""Checkpoints (`core.checkpoint`): atomic writes, pruning, resume paths, optimizer state that survives
other parameter names, clean-up of what a kill leaves behind, clear errors on a full disk."""
import os

import numpy as np
import paddle
import pytest

from paddleseg_ext.core import checkpoint as ckpt
from paddleseg_ext.utils import UserInputError
from tests.core.conftest import tiny_model_and_optimizer as _tiny


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


def test_prune_never_deletes_the_checkpoint_just_written(tmp_path):
    model, opt = _tiny()
    save = str(tmp_path)
    for it in (10, 20, 50, 60):
        ckpt.save_checkpoint(save, it, model, opt, {})
    # a run resumed from iter_20 writes iter_30 while the older timeline's 50 and 60 are still there
    new = ckpt.save_checkpoint(save, 30, model, opt, {})
    removed = ckpt.prune_checkpoints(save, 2, protect=(new,))
    assert sorted(os.path.basename(p) for p in removed) == ["iter_10", "iter_20"]
    assert [n for n, _ in ckpt.list_checkpoints(save)] == [30, 50, 60]
    assert not [n for n in os.listdir(save) if n.startswith(".tmp_")]


def test_stale_files_after_a_kill_are_cleaned_and_moved_checkpoints_restored(tmp_path):
    model, opt = _tiny()
    save = str(tmp_path)
    ckpt.save_checkpoint(save, 5, model, opt, {"best_pq": 0.5})
    # killed while re-saving iteration 5: the complete old folder was moved aside, the new one not in place
    os.rename(os.path.join(save, "iter_5"), os.path.join(save, "iter_5.old_4321"))
    os.makedirs(os.path.join(save, ".tmp_iter_5_4321"))
    # killed while pruning, and while replacing the best model
    os.makedirs(os.path.join(save, ".tmp_pruned_iter_1"))
    os.makedirs(os.path.join(save, "best_model"))
    open(os.path.join(save, "best_model", "model.pdparams"), "wb").write(b"previous best")
    open(os.path.join(save, "best_model", ".tmp_model.pdparams.4321"), "wb").write(b"half")
    ckpt.remove_stale_tmp(save)
    assert sorted(os.listdir(save)) == ["best_model", "iter_5"]
    assert os.listdir(os.path.join(save, "best_model")) == ["model.pdparams"]
    assert ckpt.load_checkpoint(os.path.join(save, "iter_5"), *_tiny())["best_pq"] == 0.5


def test_failed_checkpoint_write_is_a_clear_error_and_keeps_the_previous(tmp_path, monkeypatch):
    model, opt = _tiny()
    save = str(tmp_path)
    ckpt.save_checkpoint(save, 5, model, opt, {})
    before = open(os.path.join(save, "iter_5", "model.pdparams"), "rb").read()
    real_save = ckpt._save_tensor_file

    def disk_full(obj, path):
        if path.endswith(".pdopt"):
            raise OSError(28, "No space left on device")
        real_save(obj, path)

    monkeypatch.setattr(ckpt, "_save_tensor_file", disk_full)
    with pytest.raises(UserInputError, match=r"cannot write checkpoint .*iter_10: No space left on device"):
        ckpt.save_checkpoint(save, 10, model, opt, {})
    assert sorted(os.listdir(save)) == ["iter_5"]
    assert open(os.path.join(save, "iter_5", "model.pdparams"), "rb").read() == before
