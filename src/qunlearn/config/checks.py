"""Checks on the validated config that a JSON schema cannot express, and the names the grid uses."""

import hashlib
import json
from pathlib import Path

from qunlearn.config.naming import DECODER_LINEARS, adapter_id, unlearned_name
from qunlearn.config.widths import check_widths, rungs, rung_model
from qunlearn.data.splits import check_halves, start_up_split
from qunlearn.errors import QunlearnError
from qunlearn.registry import ATTACKS, FORMATS, backend, check_format, method, resolve
from qunlearn.unlearn.launch import check_shards

REAL_MODEL_KEYS = ("path", "target", "retrain", "tokenizer")


def group_size(fmt: dict, quantization: dict) -> int:
    return FORMATS[fmt["quantizer"]].group_size or fmt.get("group_size", quantization["group_size"])


def format_id_of(fmt: dict, quantization: dict) -> str:
    """Folder name of a quantized format: rtn-w4g64 for group-wise quantizers, bnb-fp4-w4 for bitsandbytes."""
    name, bits = fmt["quantizer"], fmt["bits"]
    return f"{name}-w{bits}g{group_size(fmt, quantization)}" if backend(name).saved else f"{name}-w{bits}"


def settings_hash(settings: dict) -> str:
    """A short, stable fingerprint of the settings a result depends on (its provenance in the summary)."""
    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:12]


def method_lrs(config: dict, name: str) -> list[float]:
    """A method's learning rates: its own where `unlearning.method_lrs` names it (an lr sweep of some methods), else
    `sure.lrs` for SURE methods (the paper raises the lr with SURE) and `lrs` for the others."""
    unlearning = config["unlearning"]
    if name in unlearning["method_lrs"]:
        return unlearning["method_lrs"][name]
    return unlearning["sure"]["lrs"] if method(name).sure else unlearning["lrs"]


def method_precisions(config: dict, name: str) -> list[str]:
    """A method's precision stacks: its own where `unlearning.method_precisions` names it (a stack contrast read on
    some methods only), else `precisions`."""
    unlearning = config["unlearning"]
    return unlearning["method_precisions"].get(name, unlearning["precisions"])


def adapters_by_id(config: dict) -> dict[str, dict]:
    """`unlearning.adapters` by id (lora-r8a16), each with its target modules filled in (`lrs` stays optional: a
    method's own lrs where it is absent)."""
    return {adapter_id(entry["rank"], entry["alpha"]): {"target_modules": list(DECODER_LINEARS), **entry}
            for entry in config["unlearning"]["adapters"]}


def unlearned_names(config: dict) -> list[str]:
    """The grid's unlearned models, as each target's are named: every method × lr × stack × seed with full
    weights, then every method × adapter × lr × seed in each of `adapter_servings` (the adapters themselves are
    the inputs of their servings, not models of the study)."""
    unlearning, seeds = config["unlearning"], config["unlearning"]["seeds"]
    names = [unlearned_name(name, lr, stack, seed) for name in unlearning["methods"] for lr in method_lrs(config, name)
             for stack in method_precisions(config, name) for seed in seeds]
    for name in unlearning["methods"]:
        for adapter, spec in adapters_by_id(config).items():
            names += [unlearned_name(name, lr, f"{adapter}+{serving}", seed)
                      for lr in spec.get("lrs", method_lrs(config, name)) for seed in seeds
                      for serving in unlearning["adapter_servings"]]
    return names


def check_adapters(config: dict) -> None:
    """Adapters: one entry per id, unlearned in one process, and not under the other attacks (an unmerged adapter
    has no checkpoint to fine-tune or prune)."""
    seen = {}
    for index, entry in enumerate(config["unlearning"]["adapters"]):
        key = adapter_id(entry["rank"], entry["alpha"])
        if key in seen:
            raise QunlearnError(f"unlearning.adapters[{index}]: the same rank and alpha as unlearning.adapters[{seen[key]}] ({key})",
                                "merge the two entries (one adapter per rank and alpha; list its lrs in one entry)")
        seen[key] = index
    if not seen:
        return
    if config["unlearning"]["shards"] > 1:
        raise QunlearnError("unlearning.adapters: adapters are unlearned in one process, not sharded",
                            "set unlearning.shards: 1 (an adapter's optimizer state is a small fraction of the model's)")
    if config["attacks"]:
        raise QunlearnError("unlearning.adapters and attacks: the attacks need a checkpoint, which a served adapter has not",
                            "run the attacks and the adapters in two configs (two --configfile runs in the same folder)")


def method_stacks(config: dict) -> list[str]:
    """Every precision stack the grid unlearns full weights in."""
    unlearning = config["unlearning"]
    return list(dict.fromkeys(stack for name in unlearning["methods"] for stack in method_precisions(config, name)))


def attack_spec(entry: dict) -> dict:
    """An `attacks:` entry with every knob of its kind, the defaults filled in."""
    return {"kind": entry["kind"], **ATTACKS[entry["kind"]].defaults, **entry}


def attack_id(spec: dict) -> str:
    """Folder name of an attacked model, and its `precision` in the evaluation, as its spec's `label` names it."""
    return resolve(ATTACKS[spec["kind"]].label)(spec)


def attack_settings(spec: dict, config: dict) -> dict:
    """An attack's knobs, with the config values its job also depends on (its spec's `job_settings`)."""
    return resolve(ATTACKS[spec["kind"]].job_settings)(spec, config)


def attack_specs(config: dict) -> dict[str, dict]:
    """The config's attacks by id, in its order, each with every knob."""
    return {attack_id(spec): spec for spec in map(attack_spec, config["attacks"])}


def check_attacks(attacks: list[dict]) -> None:
    """After the schema (which names the kinds and each knob's range): each entry has only its kind's knobs, passes
    its kind's own check (2:4 pruning zeroes exactly half of the weights), and no attack is listed twice."""
    seen = {}
    for index, entry in enumerate(attacks):
        key, kind = f"attacks[{index}]", entry["kind"]
        knobs = ATTACKS[kind].defaults
        for knob in entry.keys() - {"kind", *knobs}:
            raise QunlearnError(f"{key}.{knob}: {kind} has no knob {knob!r}",
                                f"remove it ({kind}'s knobs: {', '.join(knobs)})")
        spec = attack_spec(entry)
        if ATTACKS[kind].check:
            resolve(ATTACKS[kind].check)(key, spec)
        name = attack_id(spec)
        if name in seen:
            raise QunlearnError(f"{key}: the same attack as attacks[{seen[name]}] ({name})", "remove one of them")
        seen[name] = index


def embedded_widths(model: dict) -> list[tuple[dict, str]]:
    """The embedded models' config at the run's width and at each rung, with where in the config each is set."""
    return [(model, "model"), *((rung_model(model, hidden), f"model.widths[{index}]")
                                for index, hidden in enumerate(rungs(model)))]


def check_group_sizes(model: dict, where_model: str, quantization: dict) -> None:
    """Every group-wise format's group divides the model's hidden and intermediate sizes."""
    for index, fmt in enumerate(quantization["formats"]):
        quantizer, group = FORMATS[fmt["quantizer"]], group_size(fmt, quantization)
        for key in ("hidden", "intermediate"):
            if not (backend(quantizer.name).saved and model[key] % group):
                continue
            name = f"model.{key}" if where_model == "model" else f"{where_model}'s {key}"
            size = f"{name} {model[key]}"
            if quantizer.group_size:  # the format's own block size
                raise QunlearnError(f"{quantizer.name}'s blocks of {group} weights do not divide {size}",
                                    f"leave {quantizer.name} out of quantization.formats, or make {name} a multiple of {group}")
            where = f"quantization.formats[{index}].group_size" if "group_size" in fmt else "quantization.group_size"
            raise QunlearnError(
                f"{where}: {group} does not divide {size}",
                "choose a group size that divides model.hidden and model.intermediate at every width (e.g. 32, 64 or 128)",
            )


def check_config(config: dict) -> None:
    """Every check the schema cannot express, run before any job (the schema names the valid methods and the keys
    a real corpus needs)."""
    check_attacks(config["attacks"])
    unlearning = config["unlearning"]
    for key in ("method_lrs", "method_precisions"):
        for name in unlearning[key]:
            if name not in unlearning["methods"]:
                raise QunlearnError(f"unlearning.{key}.{name}: {name} is not in unlearning.methods",
                                    f"add {name} to unlearning.methods, or remove its entry from unlearning.{key}")
    if unlearning["checkpoint"] == "muse" and "knowmem_f" not in unlearning["epoch_metrics"]:
        raise QunlearnError("unlearning.checkpoint: muse needs KnowMem-forget after every epoch",
                            "add knowmem_f to unlearning.epoch_metrics, or set unlearning.checkpoint: last")
    for fmt in config["quantization"]["formats"]:
        try:
            quantizer = check_format(fmt["quantizer"], fmt["bits"])
        except QunlearnError as error:
            raise QunlearnError(f"quantization.formats: {error.problem}", error.fix) from None
        if quantizer.group_size and fmt.get("group_size", quantizer.group_size) != quantizer.group_size:
            raise QunlearnError(f"quantization.formats: {quantizer.name}'s blocks are {quantizer.group_size} weights "
                                f"by definition, not {fmt['group_size']}", f"remove group_size from the {quantizer.name} format")
    check_widths(config["model"])
    embedded = any("embedded" in spec for spec in config["corpora"].values())
    for model, where_model in embedded_widths(config["model"]) if embedded else []:
        check_group_sizes(model, where_model, config["quantization"])
    for name, spec in config["corpora"].items():
        if "embedded" in spec:
            continue
        for key in REAL_MODEL_KEYS:
            if not Path(spec[key]).exists():
                raise QunlearnError(f"corpora.{name}.{key}: {spec[key]} does not exist", "point it at a local copy")
    check_adapters(config)
    check_shards(config, method_stacks(config))
    if config["model"]["widths"] and not embedded:
        raise QunlearnError("model.widths: the width ladder trains embedded models, and the config has no embedded "
                            "corpus", "add one (presets/widths.yaml), or remove model.widths")
    if config["attacks"] and config["model"]["widths"]:
        raise QunlearnError("attacks and model.widths: the attacks are scored at the run's own width only",
                            "run the attacks and the width ladder in two configs (two --configfile runs)")
    if config["attacks"]:  # a forget set too small to split refuses the attacks
        for name, spec in config["corpora"].items():
            check_halves(start_up_split(spec, config["seed"]), name, spec)
