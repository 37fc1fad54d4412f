import copy
import re
from pathlib import Path

import pytest
import yaml
from snakemake.utils import validate

from qunlearn.config.checks import check_config, format_id_of, method_lrs, method_precisions, unlearned_names
from qunlearn.config.naming import (ADAPTER_SERVINGS, GRID_NAME, MERGED_NAME_PATTERN, SERVED_NAME_PATTERN,
                                    TRAINED_NAME_PATTERN, ModelId, UnlearnedName, format_lr, unlearned_name)
from qunlearn.config.schema import load_schema, validated
from qunlearn.errors import QunlearnError
from qunlearn.evaluate.evaluator import EPOCH_METRICS
from qunlearn.models.checkpoints import DTYPES
from qunlearn.registry import ATTACKS, FORMATS, STACKS, methods

ROOT = Path(__file__).resolve().parents[1]
DEFAULT = yaml.safe_load((ROOT / "config.yaml").read_text())
SCHEMA = str(ROOT / "workflow" / "schemas" / "config.schema.yaml")


def _validated(config):
    """What the Snakefile does: the schema (numbers coerced, every error named), Snakemake's validation (which fills
    the defaults), then the checks a schema cannot express."""
    config = validated(config, load_schema(SCHEMA))
    validate(config, SCHEMA, set_default=True)
    check_config(config)
    return config


def _config(**changes):
    config = copy.deepcopy(DEFAULT)
    for dotted, value in changes.items():
        *path, key = dotted.split(".")
        node = config
        for part in path:
            node = node[part]
        node[key] = value
    return config


def test_default_config_and_presets_pass():
    for path in [ROOT / "config.yaml", *ROOT.glob("presets/*.yaml")]:
        config = yaml.safe_load(path.read_text())
        if all("embedded" in spec for spec in config["corpora"].values()):
            _validated(config)
        else:  # real MUSE presets name paths that exist only where MUSE is: the schema alone
            validate(validated(config, load_schema(SCHEMA)), SCHEMA, set_default=True)


def test_the_schema_names_what_the_library_implements():
    schema = load_schema(SCHEMA)["properties"]
    unlearning = schema["unlearning"]["properties"]
    assert unlearning["methods"]["items"]["enum"] == sorted(methods()) and len(methods()) == 12
    assert unlearning["epoch_metrics"]["items"]["enum"] == list(EPOCH_METRICS)
    assert unlearning["precisions"]["items"]["enum"] == list(STACKS)
    assert unlearning["adapter_servings"]["items"]["enum"] == list(ADAPTER_SERVINGS)
    assert all(f"{name} (" in unlearning["precisions"]["description"] for name in STACKS)  # described there too
    formats = schema["quantization"]["properties"]["formats"]["items"]["properties"]
    assert formats["quantizer"]["enum"] == list(FORMATS)
    assert formats["bits"]["enum"] == [4, 5, 8]
    attack = schema["attacks"]["items"]["properties"]
    assert attack["kind"]["enum"] == list(ATTACKS) and attack["precision"]["enum"] == list(STACKS)
    assert schema["quantization"]["properties"]["symmetric"]["propertyNames"]["enum"] == ["rtn", "gptq", "awq"]


def test_no_registry_name_is_typed_into_the_schema():
    """The schema's enums of registered names come from the registry alone (`x-registry`), never typed in the file,
    so a spec is the one place a method, stack, format or attack is named."""
    def nodes(node, path=""):
        if isinstance(node, dict):
            yield path, node
            for key, value in node.items():
                yield from nodes(value, f"{path}.{key}")
        elif isinstance(node, list):
            for value in node:
                yield from nodes(value, path)

    raw = list(nodes(yaml.safe_load(Path(SCHEMA).read_text())))
    marked = {path: node["x-registry"] for path, node in raw if "x-registry" in node}
    assert set(marked.values()) >= {"methods", "stacks", "formats", "bits", "attacks", "loss_variants", "symmetric"}
    assert not any("enum" in node for _, node in raw if "x-registry" in node)
    registered = {*methods(), *STACKS, *FORMATS, *ATTACKS} - set(DTYPES)  # bf16 and fp32 are also checkpoint dtypes
    typed = {path: set(node["enum"]) & registered for path, node in raw
             if "enum" in node and not path.startswith(".properties.resources")}  # rule names: finetune is one too
    assert not any(typed.values()), typed


def test_lr_spellings_name_the_same_jobs():
    assert format_lr(1e-5) == format_lr(0.00001) == format_lr(1.0e-5) == "1e-5"
    assert format_lr(2e-4) == "2e-4"
    assert format_lr(1.5e-5) == "1.5e-5" and format_lr(2.5e-3) == "2.5e-3"  # never rounded into another lr's name


def test_unlearned_names_round_trip_and_sure_has_its_own_lrs():
    assert unlearned_name("npo_gdr_sure", 0.0001, "bf16", 2) == "npo_gdr_sure_lr1e-4_bf16_s2"
    name = UnlearnedName.parse("npo_gdr_sure_lr1e-4_bf16_s2")
    assert (name.method, name.lr, name.stack, name.seed) == ("npo_gdr_sure", "1e-4", "bf16", 2)
    assert str(name) == "npo_gdr_sure_lr1e-4_bf16_s2"
    config = {"unlearning": {"lrs": [1e-5, 5e-5], "sure": {"lrs": [1e-4]}, "method_lrs": {}}}
    assert method_lrs(config, "npo_gdr_sure") == [1e-4] and method_lrs(config, "npo_gdr") == [1e-5, 5e-5]


def test_method_lrs_sweeps_one_method_and_leaves_the_others_at_lrs():
    config = _validated(_config(**{"unlearning.methods": ["npo_gdr", "ga_gdr", "npo_gdr_sure"],
                                   "unlearning.method_lrs": {"npo_gdr": [1e-5, 3e-5, 1e-4]}}))
    assert method_lrs(config, "npo_gdr") == [1e-5, 3e-5, 1e-4]
    assert method_lrs(config, "ga_gdr") == config["unlearning"]["lrs"]
    assert method_lrs(config, "npo_gdr_sure") == config["unlearning"]["sure"]["lrs"]
    with pytest.raises(QunlearnError, match=r"(?s)unlearning.method_lrs.ga: ga is not in unlearning.methods.*add ga"):
        _validated(_config(**{"unlearning.method_lrs": {"ga": [1e-4]}}))
    with pytest.raises(QunlearnError, match=r"unlearning.method_lrs"):
        _validated(_config(**{"unlearning.method_lrs": {"gradient_ascent": [1e-4]}}))


def test_method_precisions_give_some_methods_their_own_stacks():
    config = _validated(_config(**{"unlearning.methods": ["npo", "npo_gdr"], "unlearning.precisions": ["bf16"],
                                   "unlearning.method_precisions": {"npo_gdr": ["bf16", "fp32"]}}))
    assert method_precisions(config, "npo_gdr") == ["bf16", "fp32"]
    assert method_precisions(config, "npo") == ["bf16"]
    with pytest.raises(QunlearnError, match=r"(?s)unlearning.method_precisions.ga: ga is not in unlearning.methods"):
        _validated(_config(**{"unlearning.method_precisions": {"ga": ["bf16"]}}))
    with pytest.raises(QunlearnError, match=r"unlearning.method_precisions"):
        _validated(_config(**{"unlearning.method_precisions": {"npo_gdr": ["fp64"]}}))


def test_adapter_names_say_which_adapter_and_how_it_is_served():
    config = _validated(_config(**{"unlearning.methods": ["npo_gdr"], "unlearning.precisions": ["bf16"],
                                   "unlearning.adapters": [{"rank": 8, "alpha": 16, "lrs": [1e-4, 1e-3]}]}))
    names = unlearned_names(config)
    assert names[0] == "npo_gdr_lr3e-5_bf16_s0"  # the full-weight models first, named as before
    assert names[1:5] == [f"npo_gdr_lr1e-4_lora-r8a16+{serving}_s0"
                          for serving in ("merged-bf16", "merged-fp32", "served", "served-q4")]
    assert len(names) == 1 + 2 * 4
    merged = UnlearnedName.parse("npo_gdr_lr1e-4_lora-r8a16+merged-bf16_s0")
    assert (merged.method, merged.lr, merged.adapter, merged.serving) == ("npo_gdr", "1e-4", "lora-r8a16", "merged-bf16")
    assert merged.trained == "npo_gdr_lr1e-4_lora-r8a16_s0"
    adapter, full = UnlearnedName.parse(merged.trained), UnlearnedName.parse("npo_gdr_lr3e-5_bf16_s0")
    assert (adapter.adapter, adapter.serving, adapter.trained) == ("lora-r8a16", None, merged.trained)
    assert (full.adapter, full.serving, full.trained) == (None, None, "npo_gdr_lr3e-5_bf16_s0")
    assert ModelId("toy-news", 0, str(merged)).role == "unlearned"
    # each rule's pattern takes exactly its own names: the unlearn rule never a serving, merge never a served one
    matches = {pattern: [n for n in [*names, merged.trained] if re.fullmatch(pattern, n)]
               for pattern in (TRAINED_NAME_PATTERN, MERGED_NAME_PATTERN, SERVED_NAME_PATTERN)}
    assert matches[TRAINED_NAME_PATTERN] == ["npo_gdr_lr3e-5_bf16_s0", "npo_gdr_lr1e-4_lora-r8a16_s0"]
    assert all("+merged-" in n for n in matches[MERGED_NAME_PATTERN]) and len(matches[MERGED_NAME_PATTERN]) == 4
    assert all("+served" in n for n in matches[SERVED_NAME_PATTERN]) and len(matches[SERVED_NAME_PATTERN]) == 4
    assert all(GRID_NAME.search(n) for n in names)
    # without lrs, an adapter takes each method's; servings can be chosen
    config = _validated(_config(**{"unlearning.methods": ["npo_gdr"], "unlearning.adapters": [{"rank": 4, "alpha": 4}],
                                   "unlearning.adapter_servings": ["served"]}))
    assert [n for n in unlearned_names(config) if "lora" in n] == ["npo_gdr_lr3e-5_lora-r4a4+served_s0"]


@pytest.mark.parametrize("changes,message", [
    ({"unlearning.adapters": [{"rank": 8, "alpha": 16}, {"rank": 8, "alpha": 16.0, "lrs": [1e-3]}]},
     r"(?s)unlearning.adapters\[1\]: the same rank and alpha as unlearning.adapters\[0\] \(lora-r8a16\).*merge the two"),
    ({"unlearning.adapters": [{"rank": 8, "alpha": 16}], "unlearning.shards": 2},
     r"(?s)adapters are unlearned in one process.*unlearning.shards: 1"),
    ({"unlearning.adapters": [{"rank": 8, "alpha": 16}], "attacks": [{"kind": "prune"}]},
     r"(?s)the attacks need a checkpoint.*two configs"),
    ({"unlearning.adapters": [{"rank": 0, "alpha": 16}]}, r"unlearning.adapters"),
    ({"unlearning.adapter_servings": ["merged-fp16"]}, r"unlearning.adapter_servings"),
])
def test_adapter_configs_that_cannot_run_are_refused(changes, message):
    with pytest.raises(QunlearnError, match=message) as error:
        _validated(_config(**changes))
    assert "fix" in str(error.value)  # each says what to write instead


def test_precision_names():
    quantization = {"group_size": 64}
    assert format_id_of({"quantizer": "rtn", "bits": 4}, quantization) == "rtn-w4g64"
    assert format_id_of({"quantizer": "bnb-fp4", "bits": 4}, quantization) == "bnb-fp4-w4"
    assert format_id_of({"quantizer": "nvfp4", "bits": 4}, quantization) == "nvfp4-w4g16"  # the format's blocks
    assert format_id_of({"quantizer": "mxfp4", "bits": 4}, quantization) == "mxfp4-w4g32"


def test_a_k_quant_needs_widths_its_super_blocks_divide():
    ci = yaml.safe_load((ROOT / "presets/ci.yaml").read_text())  # hidden 64
    ci["quantization"]["formats"] = [{"quantizer": "gguf-q4_k_m", "bits": 4}]
    with pytest.raises(QunlearnError, match="gguf-q4_k_m's blocks of 256 weights do not divide model.hidden 64"):
        _validated(ci)
    ci["quantization"]["formats"] = [{"quantizer": "gguf-q8_0", "bits": 8}]
    _validated(ci)


def test_an_fp4_format_refuses_another_block_size():
    formats = [{"quantizer": "mxfp4", "bits": 4, "group_size": 64}]
    with pytest.raises(QunlearnError, match="mxfp4's blocks are 32 weights by definition, not 64"):
        _validated(_config(**{"quantization.formats": formats}))
    _validated(_config(**{"quantization.formats": [{"quantizer": "mxfp4", "bits": 4, "group_size": 32}]}))


@pytest.mark.parametrize(
    "changes,message",
    [
        ({"unlearning.checkpoint": "muse", "unlearning.epoch_metrics": ["knowmem_r"]}, r"(?s)checkpoint: muse.*add knowmem_f"),
        ({"quantization.formats": [{"quantizer": "bnb-fp4", "bits": 8}]}, r"(?s)quantizer 'bnb-fp4' does not support 8 bits.*\[4\]"),
        ({"quantization.formats": [{"quantizer": "gptq", "bits": 4, "group_size": 48}]}, r"quantization.formats\[0\].group_size: 48 does not divide model.hidden 256"),
        ({"quantization.group_size": 96}, r"quantization.group_size: 96 does not divide model.hidden 256"),
    ],
)
def test_bad_values_are_named(changes, message):
    with pytest.raises(QunlearnError, match=message):
        _validated(_config(**changes))


def test_real_corpus_needs_existing_paths(tmp_path):
    config = _config(corpora={"muse-news": {"path": str(tmp_path), "target": str(tmp_path / "nope"), "retrain": str(tmp_path), "tokenizer": str(tmp_path)}})
    with pytest.raises(QunlearnError, match=r"corpora.muse-news.target: .*nope does not exist"):
        _validated(config)


@pytest.mark.parametrize(
    "changes,message",
    [
        ({"unlearning.methods": ["ga_klr", "gradient_ascent"]}, r"unlearning.methods\[1\]: not an allowed value \(got 'gradient_ascent'\) — fix: write one of ga, ga_gdr, .*npo_klr_sure"),
        ({"unlearning.lrs": [0.0]}, r"unlearning.lrs\[0\]: must be greater than 0 \(got 0.0\) — fix: write a number above 0"),
        ({"unlearning.batch_size": 0}, r"unlearning.batch_size: must be at least 1 \(got 0\) — fix: write a number of 1 or more, e.g. batch_size: 4"),
        ({"quantization.group_size": -64}, r"quantization.group_size: must be at least 1 \(got -64\)"),
        ({"unlearning.sure": {"gamma": 120}}, r"unlearning.sure.gamma: must be at most 100 \(got 120\) — fix: write a number of 100 or less"),
        ({"quantization.formats": [{"quantizer": "rtn", "bits": 3}]}, r"quantization.formats\[0\].bits: not an allowed value \(got 3\) — fix: write one of 4, 5, 8"),
        ({"quantization.formats": [{"quantizer": "hqq", "bits": 4}]}, r"quantization.formats\[0\].quantizer: not an allowed value \(got 'hqq'\) — fix: write one of rtn, gptq, awq"),
        ({"unlearning.epoch_metrics": ["knowmem_f", "rouge"]}, r"unlearning.epoch_metrics\[1\]: not an allowed value \(got 'rouge'\) — fix: write one of verbmem_f, knowmem_f, knowmem_r"),
        ({"corpora": {"muse-news": {"path": "/data", "target": "/t", "tokenizer": "/k"}}}, r"corpora.muse-news: missing key 'retrain' \(needed without 'embedded'\) — fix: add retrain \(local Hugging Face folder"),
        ({"evaluation.batch_size": "large"}, r"evaluation.batch_size: must be a whole number or 'auto' \(got 'large'\)"),
        ({"unlearning.loss_variant": "tofu"}, r"unlearning.loss_variant: not an allowed value \(got 'tofu'\) — fix: write one of standard, muse"),
        ({"unlearning.precisions": ["bf16", "fp16"]}, r"unlearning.precisions\[1\]: not an allowed value \(got 'fp16'\) — fix: did you mean 'bf16'\? write one of bf16, bf16-adam32, bf16-sr, bf16-kahan, fp32, mixed"),
    ],
)
def test_schema_errors_name_the_key_and_what_to_write(changes, message):
    with pytest.raises(QunlearnError, match=message):
        _validated(_config(**changes))


@pytest.mark.parametrize("changes,message", [
    ({"model.widths": [{"hidden": 256}]}, r"(?s)model.widths\[0\].hidden: 256 is model.hidden.*remove the rung"),
    ({"model.widths": [{"hidden": 512}, {"hidden": 512}]}, r"(?s)model.widths\[1\].hidden: 512 is listed twice"),
    ({"model.widths": [{"hidden": 96}]}, r"(?s)96 is not a whole number of heads of 64.*multiple of 64"),
    ({"model.widths": [{"hidden": 320}], "quantization.group_size": 128},
     r"(?s)quantization.group_size: 128 does not divide model.widths\[0\]'s hidden 320"),
    ({"model.widths": [{"hidden": 512}], "attacks": [{"kind": "prune"}]}, r"(?s)attacks and model.widths.*two configs"),
    ({"model.widths": [{"hidden": 512, "finetune": {"batch_size": 2}}]}, r"model.widths"),
])
def test_width_rungs_that_cannot_run_are_refused(changes, message):
    with pytest.raises(QunlearnError, match=message) as error:
        _validated(_config(**changes))
    assert "fix" in str(error.value)


def test_a_target_folder_names_its_seed_and_width():
    from qunlearn.config.naming import parse_pair, target_folder

    assert [target_folder(1), target_folder(1, 512)] == ["t1", "t1-w512"]
    assert [parse_pair("t1"), parse_pair("t1-w512")] == [(1, None), (1, 512)]
    with pytest.raises(ValueError, match="t0-w512 for a width rung"):
        parse_pair("t1-512")
    assert ModelId("toy-news", 1, "target", 512).folder == "toy-news/t1-w512/target"


def test_only_the_run_s_rungs_name_jobs():
    from qunlearn.config.naming import base_folder_pattern, target_folder_pattern

    pattern, base = re.compile(target_folder_pattern([512, 128]) + "$"), re.compile(base_folder_pattern([512]) + "$")
    assert [bool(pattern.match(f)) for f in ("t0", "t2-w512", "t1-w128", "t0-w256", "t0-w5120")] == [
        True, True, True, False, False]
    assert [bool(base.match(f)) for f in ("base", "base-w512", "base-w999")] == [True, True, False]
    assert re.compile(target_folder_pattern() + "$").match("t0-w512") is None
    assert re.compile(target_folder_pattern(None) + "$").match("t0-w512")  # any width (benchmarks/rule_times.py)
