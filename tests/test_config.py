import copy
from pathlib import Path

import pytest
import yaml

from qunlearn.config import check_config, format_lr, precision_id
from qunlearn.errors import QunlearnError

DEFAULT = yaml.safe_load((Path(__file__).resolve().parents[1] / "config.yaml").read_text())


def _config(**changes):
    config = copy.deepcopy(DEFAULT)
    for dotted, value in changes.items():
        *path, key = dotted.split(".")
        node = config
        for part in path:
            node = node[part]
        node[key] = value
    return config


def test_default_config_passes():
    check_config(DEFAULT)


def test_lr_spellings_name_the_same_jobs():
    assert format_lr(1e-5) == format_lr(0.00001) == format_lr(1.0e-5) == "1e-5"
    assert format_lr(2e-4) == "2e-4"


def test_precision_names():
    quantization = {"group_size": 64}
    assert precision_id({"quantizer": "rtn", "bits": 4}, quantization) == "rtn-w4g64"
    assert precision_id({"quantizer": "bnb-fp4", "bits": 4}, quantization) == "bnb-fp4-w4"


@pytest.mark.parametrize(
    "changes,message",
    [
        ({"unlearning.methods": ["ga_klr", "gradient_ascent"]}, r"(?s)unknown method 'gradient_ascent'.*valid methods: \['ga', 'ga_gdr'"),
        ({"quantization.formats": [{"quantizer": "rtn", "bits": 3}]}, r"(?s)quantizer 'rtn' does not support 3 bits.*\[4, 8\]"),
        ({"quantization.formats": [{"quantizer": "hqq", "bits": 4}]}, r"unknown quantizer 'hqq'"),
        ({"quantization.group_size": 96}, r"group_size 96 does not divide model.hidden 256"),
    ],
)
def test_bad_values_are_named(changes, message):
    with pytest.raises(QunlearnError, match=message):
        check_config(_config(**changes))


def test_real_corpus_needs_existing_paths(tmp_path):
    config = _config(corpora={"muse-news": {"path": str(tmp_path), "target": str(tmp_path / "nope"), "retrain": str(tmp_path), "tokenizer": str(tmp_path)}})
    with pytest.raises(QunlearnError, match=r"corpora.muse-news.target: .*nope does not exist"):
        check_config(config)
