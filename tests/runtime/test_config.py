"""Config loading and checks (`runtime.config`): one-line errors naming the file, and the
post-processing settings of a run (model defaults < config `postprocess:` block < command line), with
their types."""
import pytest

from paddleseg_ext.postprocess.post_processing import POSTPROCESS_DEFAULTS
from paddleseg_ext.runtime.config import find_user_input_error, first_line, load_config, postprocess_params
from paddleseg_ext.runtime.schema import validate
from paddleseg_ext.utils import UserInputError
from tests.conftest import write_config


@pytest.fixture
def demo_block(demo):
    """The demo config's `postprocess:` block (it differs from every model default)."""
    block = demo.dic["postprocess"]
    assert all(block[k] != v for k, v in POSTPROCESS_DEFAULTS.items() if k != "top_k")
    return block


def test_postprocess_precedence(demo, demo_block, tmp_path):
    cfg = load_config(demo.cfg)
    # the config's block over the model's defaults
    assert postprocess_params(cfg, None, demo.cfg) == demo_block
    # command-line values over the config; None means "not given"
    got = postprocess_params(cfg, {"threshold": 0.3, "nms_kernel": None, "top_k": 50}, demo.cfg)
    assert got == dict(demo_block, threshold=0.3, top_k=50)
    # no block: the model's defaults; a partial block: defaults for the rest
    bare = write_config(demo.dic, tmp_path / "bare.yml", lambda d: d.pop("postprocess"))
    assert postprocess_params(load_config(bare), {}, bare) == POSTPROCESS_DEFAULTS
    part = write_config(demo.dic, tmp_path / "part.yml", lambda d: d.update(postprocess={"stuff_area": 64}))
    assert postprocess_params(load_config(part), {"threshold": 0.5}, part) == dict(
        POSTPROCESS_DEFAULTS, stuff_area=64, threshold=0.5)


def test_postprocess_keys_shared_by_every_model_are_not_model_settings(demo, tmp_path):
    """label_divisor / void_label / thing_ids (dataset coding) are accepted in the block and left out of
    the model's settings."""
    path = write_config(demo.dic, tmp_path / "c.yml",
                        lambda d: d["postprocess"].update(label_divisor=1000, void_label=255000))
    params = postprocess_params(load_config(path), {"thing_ids": [11]}, path)
    assert set(params) == set(POSTPROCESS_DEFAULTS)


def test_postprocess_values_take_the_type_of_the_default(demo):
    cfg = load_config(demo.cfg)
    # `--postprocess KEY=VALUE` gives strings
    got = postprocess_params(cfg, {"threshold": "0.25", "top_k": "7", "nms_kernel": 9.0}, demo.cfg)
    assert got["threshold"] == 0.25 and isinstance(got["threshold"], float)
    assert got["top_k"] == 7 and isinstance(got["top_k"], int)
    assert got["nms_kernel"] == 9 and isinstance(got["nms_kernel"], int)


@pytest.mark.parametrize("overrides, words", [
    ({"top_k": "many"}, ["postprocess.top_k on the command line", "must be int", "default 200", "got 'many'"]),
    ({"top_k": 2.5}, ["postprocess.top_k on the command line", "must be int", "got 2.5"]),
    ({"threshold": "high"}, ["postprocess.threshold on the command line", "must be float", "got 'high'"]),
    ({"treshold": 0.3}, ["command line", "unknown post-processing setting 'treshold'", "PanopticDeepLab",
                         "threshold, nms_kernel, top_k, stuff_area"]),
])
def test_postprocess_errors_on_the_command_line(demo, overrides, words):
    with pytest.raises(UserInputError) as info:
        postprocess_params(load_config(demo.cfg), overrides, demo.cfg)
    for w in words:
        assert w in str(info.value), (w, str(info.value))


def test_postprocess_type_error_in_the_config_names_the_file(demo, tmp_path):
    path = write_config(demo.dic, tmp_path / "c.yml", lambda d: d["postprocess"].update(stuff_area="big"))
    with pytest.raises(UserInputError, match="postprocess.stuff_area in config .*c.yml must be int >= 0 "
                                             "\\(default 2048\\), got 'big'"):
        postprocess_params(load_config(path), None, path)


@pytest.mark.parametrize("name, content, match", [
    ("missing.yml", None, "config file not found"),
    ("cfg.txt", "batch_size: 2\n", "must be YAML"),
    ("broken.yml", "batch_size: [2\n", "cannot parse config"),
])
def test_load_config_errors_name_the_file(tmp_path, name, content, match):
    path = tmp_path / name
    if content is not None:
        path.write_text(content)
    with pytest.raises(UserInputError, match=match) as info:
        load_config(str(path))
    assert str(path) in str(info.value)
    with pytest.raises(UserInputError, match="no config given"):
        load_config(None)


def test_unknown_config_keys():
    validate({"batch_size": 2, "model": {"type": "PanopticDeepLab"}, "postprocess": {"threshold": 0.1}}, "c.yml")
    with pytest.raises(UserInputError, match="'iter' \\(did you mean 'iters'\\?\\) in the top level of config c.yml"):
        validate({"iter": 2}, "c.yml")
    with pytest.raises(UserInputError, match="`postprocess:` in config c.yml must be a mapping"):
        validate({"model": {"type": "PanopticDeepLab"}, "postprocess": [1]}, "c.yml")
    with pytest.raises(UserInputError, match="'nms' .*`postprocess:` block of config c.yml"):
        validate({"model": {"type": "PanopticDeepLab"}, "postprocess": {"nms": 3}}, "c.yml")


def test_error_helpers():
    inner = UserInputError("the real problem")
    try:
        try:
            raise inner
        except UserInputError as e:
            raise RuntimeError("Tried to create a model has failed.\nThe error message is: \nthe real problem") from e
    except RuntimeError as outer:
        assert find_user_input_error(outer) is inner
        assert first_line(outer) == "the real problem"
    assert find_user_input_error(ValueError("x")) is None
    assert first_line(ValueError("")) == "ValueError"
