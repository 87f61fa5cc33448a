"""Model weights (`runtime.weights`): with a checkpoint the config's `pretrained` URLs are never fetched
(released weights evaluate offline); without one (training) an unreachable URL is a one-line error;
`load_weights` checks every key and shape."""
import copy
import socket

import numpy as np
import paddle
import paddleseg.utils.utils as ps_utils
import pytest

from paddleseg_ext.cli import train as train_cli
from paddleseg_ext.runtime import build_model, load_config, load_weights, without_pretrained
from paddleseg_ext.utils import UserInputError
from tests.conftest import UNREACHABLE, error_line, run_main, write_config


@pytest.fixture
def unreachable_cfg(demo, tmp_path):
    """The demo config with an unreachable ImageNet backbone URL."""
    return write_config(demo.dic, tmp_path / "url.yml", lambda d: d["model"]["backbone"].update(pretrained=UNREACHABLE))


@pytest.fixture
def no_network(monkeypatch):
    """Any connection attempt or download fails the test."""
    def refuse(*args, **kwargs):
        raise AssertionError("the network was touched: {} {}".format(args, kwargs))
    for target, name in ((socket.socket, "connect"), (socket, "create_connection"), (socket, "getaddrinfo"),
                         (ps_utils, "download_pretrained_model")):
        monkeypatch.setattr(target, name, refuse)


def test_checkpoint_loads_without_fetching_pretrained(demo, unreachable_cfg, no_network):
    cfg = load_config(unreachable_cfg)
    before = copy.deepcopy(cfg.dic)
    builder, model = build_model(cfg, unreachable_cfg, model_path=demo.weights)
    assert not model.training
    # the caller's config is untouched: the pretrained URL was cleared in the builder's copy only
    assert cfg.dic == before and cfg.dic["model"]["backbone"]["pretrained"] == UNREACHABLE
    assert builder.config is not cfg and builder.config.dic["model"]["backbone"]["pretrained"] is None
    saved = paddle.load(demo.weights)
    own = model.state_dict()
    assert set(own) == set(saved)
    for k, v in own.items():
        np.testing.assert_array_equal(v.numpy(), saved[k].numpy(), err_msg=k)
    assert ps_utils.load_pretrained_model.__module__ == "paddleseg.utils.utils"  # the patch was scoped


def test_training_build_names_the_unreachable_url(unreachable_cfg):
    with pytest.raises(UserInputError) as info:
        build_model(load_config(unreachable_cfg), unreachable_cfg)
    msg = str(info.value)
    assert UNREACHABLE in msg and "\n" not in msg
    assert ps_utils.load_pretrained_model.__module__ == "paddleseg.utils.utils"


def test_train_command_with_an_unreachable_url_is_one_line(unreachable_cfg, tmp_path, capfd):
    rc, _, err = run_main(capfd, train_cli.main, ["--config", unreachable_cfg, "--save_dir", tmp_path / "out",
                                                  "--device", "cpu", "--iters", "1"])
    assert UNREACHABLE in error_line(rc, err)


def test_without_pretrained_strips_every_level():
    block = {"type": "M", "pretrained": "a", "backbone": {"type": "B", "pretrained": "b"},
             "heads": [{"pretrained": "c", "n": 1}]}
    assert without_pretrained(block) == {"type": "M", "pretrained": None, "backbone": {"type": "B", "pretrained": None},
                                         "heads": [{"pretrained": None, "n": 1}]}
    assert block["backbone"]["pretrained"] == "b"  # a copy


def test_load_weights_folder_extra_keys_and_errors(demo, tmp_path):
    _, model = build_model(load_config(demo.cfg), demo.cfg, model_path=demo.weights)
    state = paddle.load(demo.weights)
    folder = tmp_path / "iter_7"
    folder.mkdir()
    paddle.save(dict(state, extra_buffer=paddle.zeros([1])), str(folder / "model.pdparams"))
    # a checkpoint folder; a key the model lacks alone is no reason to refuse
    assert load_weights(model, str(folder)) == str(folder / "model.pdparams")
    with pytest.raises(UserInputError, match="model weights not found: .*nope"):
        load_weights(model, str(tmp_path / "nope"))
    with pytest.raises(UserInputError, match="no weights given"):
        load_weights(model, None)
    paddle.save([1, 2], str(tmp_path / "list.pdparams"))
    with pytest.raises(UserInputError, match="does not hold a state dict"):
        load_weights(model, str(tmp_path / "list.pdparams"))
