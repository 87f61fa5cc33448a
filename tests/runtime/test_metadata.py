"""Dataset metadata of a config (`runtime.metadata`): known datasets need no data; label coding and the
`postprocess: thing_ids` override; mismatches are one-line errors."""
import numpy as np
import pytest
from paddleseg.cvlibs import Config

from paddleseg_ext.runtime import dataset_metadata
from paddleseg_ext.utils import UserInputError
from tests.conftest import write_config


def test_cityscapes_metadata_without_data(demo, tmp_path):
    path = write_config(demo.dic, tmp_path / "c.yml", dataset_root=str(tmp_path / "no_data_here"))
    meta = dataset_metadata(Config(path), cfg_path=path)
    assert meta.num_classes == 19 and meta.thing_ids == list(range(11, 19))
    assert (meta.label_divisor, meta.ignore_index, meta.void_label) == (1000, 255, 255000)
    assert meta.class_names[0] == "road" and meta.palette.shape == (19, 3) and meta.palette.dtype == np.uint8


def test_postprocess_thing_ids_and_mismatches(demo, tmp_path):
    path = write_config(demo.dic, tmp_path / "c.yml",
                        lambda d: d["postprocess"].update(thing_ids=list(range(18, 10, -1))))
    assert dataset_metadata(Config(path), cfg_path=path).thing_ids == list(range(18, 10, -1))
    path = write_config(demo.dic, tmp_path / "d.yml", lambda d: d["postprocess"].update(thing_ids=[11, 12]))
    with pytest.raises(UserInputError, match="differ from the dataset's thing classes"):
        dataset_metadata(Config(path), cfg_path=path)
    path = write_config(demo.dic, tmp_path / "e.yml", lambda d: d["model"].update(num_classes=7))
    with pytest.raises(UserInputError, match="num_classes mismatch in .*e.yml: model.num_classes=7"):
        dataset_metadata(Config(path), cfg_path=path)
