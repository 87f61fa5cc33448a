"""The configuration schema (`runtime.schema`): the docs' reference is its rendering, every shipped config
validates, each kind of bad value is one line naming the file, the dotted key and the value, and readers get
defaulted values in their types."""
import glob
import os

import pytest

from paddleseg_ext.core.hooks import bn_freeze_settings
from paddleseg_ext.models.panoptic_deeplab import PanopticDeepLab
from paddleseg_ext.models.panoptic_fcn import PanopticFCN
from paddleseg_ext.runtime import load_config, postprocess_params, schema
from paddleseg_ext.utils import UserInputError
from tests.conftest import ROOT

#: the smallest config PaddleSeg's checks (DefaultPrimaryRule) accept; the project's keys under test follow
HEAD = """batch_size: 1
iters: 100
model: {type: PanopticDeepLab}
train_dataset: {type: CityscapesPanoptic}
optimizer: {type: Adam}
lr_scheduler: {type: PolynomialDecay, learning_rate: 0.001}
loss: {types: [{type: WeightedL1Loss}], coef: [1]}
"""


def write(tmp_path, text, name="c.yml"):
    path = tmp_path / name
    path.write_text(HEAD + text)
    return str(path)


def load_error(tmp_path, text):
    path = write(tmp_path, text)
    with pytest.raises(UserInputError) as info:
        load_config(path)
    message = str(info.value)
    assert path in message and "\n" not in message
    return message


def test_docs_reference_is_the_rendered_schema():
    with open(os.path.join(ROOT, "docs", "configuration.md"), encoding="utf-8") as f:
        page = f.read()
    table = page.split("<!-- schema:begin -->\n")[1].split("<!-- schema:end -->")[0]
    assert table == schema.render_reference()


def test_every_shipped_config_validates():
    paths = [p for p in glob.glob(os.path.join(ROOT, "contrib", "PanopticDeepLab", "configs", "**", "*.yml"),
                                  recursive=True) if "_base_" not in p]
    assert len(paths) >= 20
    for path in paths:
        got = schema.validate(load_config(path).dic, path)
        assert set(got) == {"seed", "batch_norm", "postprocess"}, path


def test_model_tables_match_the_models_defaults():
    """The described keys are exactly each model's `postprocess_defaults`, whose values pass their own kind."""
    for cls in (PanopticDeepLab, PanopticFCN):
        assert [k for k, _, _ in schema.POSTPROCESS[cls.__name__]] == list(cls.postprocess_defaults)
        for key in schema.postprocess_table(cls)[:len(cls.postprocess_defaults)]:
            assert key.kind.convert(key.default) == key.default, key.name


@pytest.mark.parametrize("text, words", [
    # wrong type
    ("postprocess: {top_k: many}\n", ["postprocess.top_k", "must be int >= 1", "default 200", "'many'"]),
    ("postprocess: {threshold: [0.1]}\n", ["postprocess.threshold", "must be float", "[0.1]"]),
    ("seed: abc\n", ["seed", "must be int", "'abc'"]),
    ("batch_norm: {precise_batches: 2.5}\n", ["batch_norm.precise_batches", "must be int >= 0", "2.5"]),
    ("batch_norm: [1]\n", ["`batch_norm:`", "must be a mapping", "[1]"]),
    # out of range
    ("postprocess: {nms_kernel: 8}\n", ["postprocess.nms_kernel", "must be odd int >= 1", "got 8"]),
    ("postprocess: {nms_kernel: 4}\n", ["postprocess.nms_kernel", "odd", "4"]),
    ("batch_norm: {freeze_statistics_at: 1.5}\n", ["batch_norm.freeze_statistics_at", "float in [0, 1)", "1.5"]),
    ("batch_norm: {freeze_statistics_at: 3, precise_batches: -1}\n", ["batch_norm.precise_batches", "-1"]),
    ("seed: -3\n", ["seed", "int in [0, 4294967295]", "-3"]),
    # unknown keys: the known ones are listed
    ("postprocess: {nms_kernal: 3}\n", ["'nms_kernal' (did you mean 'nms_kernel'?)", "`postprocess:` block",
                                 "threshold, nms_kernel, top_k, stuff_area, thing_ids"]),
    ("batch_norm: {freeze_at: 3}\n", ["'freeze_at'", "`batch_norm:` block",
                                      "freeze_statistics_at, blend_from, precise_batches"]),
    ("iter: 3\n", ["'iter' (did you mean 'iters'?)", "the top level"]),
    # bad combinations
    ("batch_norm: {freeze_statistics_at: 0.5, blend_from: 0.7}\n", ["batch_norm.blend_from (0.7)", "comes after",
                                                                    "batch_norm.freeze_statistics_at (0.5)"]),
    ("batch_norm: {freeze_statistics_at: 40, blend_from: 0.5}\n", ["batch_norm.blend_from (0.5)", "comes after",
                                                                   "(40)"]),  # 0.5 of 100 iterations = 50
    ("batch_norm: {blend_from: 0.2}\n", ["batch_norm.blend_from (0.2)", "needs batch_norm.freeze_statistics_at"]),
])
def test_bad_values_are_one_line_naming_file_key_and_value(tmp_path, text, words):
    message = load_error(tmp_path, text)
    for w in words:
        assert w in message, (w, message)


def test_settings_are_defaulted_and_converted(tmp_path):
    # nothing set: the table's defaults, the model's post-processing defaults
    dic = load_config(write(tmp_path, "")).dic
    assert schema.settings(dic, "seed") == 0
    assert schema.settings(dic, "batch_norm") == {"freeze_statistics_at": None, "blend_from": None,
                                                  "precise_batches": 10}
    assert schema.settings(dic, "postprocess") == dict(PanopticDeepLab.postprocess_defaults, thing_ids=None,
                                                       label_divisor=None, void_label=None)
    # values in their types; null is "not set"; a fraction before an iteration number of the run is fine
    path = write(tmp_path, "seed: 7\npostprocess: {nms_kernel: 9.0, threshold: 1, top_k: null}\n"
                           "batch_norm: {blend_from: 0.3, freeze_statistics_at: 40, precise_batches: 0}\n")
    cfg = load_config(path)
    got = schema.validate(cfg.dic, path)
    assert got["seed"] == 7
    assert got["postprocess"]["nms_kernel"] == 9 and isinstance(got["postprocess"]["nms_kernel"], int)
    assert got["postprocess"]["threshold"] == 1.0 and isinstance(got["postprocess"]["threshold"], float)
    assert got["postprocess"]["top_k"] == 200
    assert got["batch_norm"] == {"freeze_statistics_at": 40, "blend_from": 0.3, "precise_batches": 0}
    # the training hook turns the fraction into iterations of the run
    bn = bn_freeze_settings(cfg, path, 100)
    assert (bn.start, bn.end, bn.precise_batches) == (30, 40, 0)


def test_command_line_values_are_checked_by_the_same_table(tmp_path):
    cfg = load_config(write(tmp_path, ""))
    got = postprocess_params(cfg, {"nms_kernel": "11", "threshold": "0.25", "top_k": None}, "c.yml")
    assert got == dict(PanopticDeepLab.postprocess_defaults, nms_kernel=11, threshold=0.25)
    with pytest.raises(UserInputError, match=r"postprocess.nms_kernel on the command line must be odd int >= 1 "
                                             r"\(default 7\), got '4'"):
        postprocess_params(cfg, {"nms_kernel": "4"}, "c.yml")


def test_a_model_without_a_table_gets_the_types_of_its_defaults():
    class Tiny:
        postprocess_defaults = {"count": 3, "ratio": 0.5, "flag": False, "sizes": [1, 2]}

    keys = {k.name: k for k in schema.postprocess_table(Tiny)}
    assert set(keys) == {"count", "ratio", "flag", "sizes", "thing_ids", "label_divisor", "void_label"}
    assert keys["count"].kind.convert("4") == 4 and keys["ratio"].kind.convert(1) == 1.0
    assert keys["flag"].kind.convert("true") is True and keys["sizes"].kind.convert([5]) == [5]
    with pytest.raises(UserInputError, match=r"postprocess.count in x must be int \(default 3\), got 1.5"):
        schema.convert(keys["count"], 1.5, "postprocess.count", "in x")


@pytest.mark.parametrize("text, value", [("true", True), ("False", False), ("1", True), ("0", False), (1, True),
                                         (0, False), (True, True)])
def test_booleans(text, value):
    assert schema.BOOL.convert(text) is value
    for bad in ("yes", 2, 0.5, None):
        with pytest.raises(ValueError):
            schema.BOOL.convert(bad)
