"""Checks on the validated config that a JSON schema cannot express, and the names the grid uses."""

import hashlib
import json
from pathlib import Path

from .errors import QunlearnError
from .grid import QUANTIZERS, check_quantizer, parse_method

REAL_MODEL_KEYS = ("path", "target", "retrain", "tokenizer")


def group_size(fmt: dict, quantization: dict) -> int:
    return QUANTIZERS[fmt["quantizer"]].group_size or fmt.get("group_size", quantization["group_size"])


def precision_id(fmt: dict, quantization: dict) -> str:
    """Folder name of a quantized format: rtn-w4g64 for group-wise quantizers, bnb-fp4-w4 for bitsandbytes."""
    name, bits = fmt["quantizer"], fmt["bits"]
    return f"{name}-w{bits}g{group_size(fmt, quantization)}" if QUANTIZERS[name].saved else f"{name}-w{bits}"


def settings_hash(settings: dict) -> str:
    """A short, stable fingerprint of the settings a result depends on (its provenance in the summary)."""
    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:12]


def method_lrs(config: dict, method: str) -> list[float]:
    """SURE methods run at their own learning rates."""
    unlearning = config["unlearning"]
    return unlearning["sure"]["lrs"] if parse_method(method)[1] else unlearning["lrs"]


def check_config(config: dict) -> None:
    """After the schema (which names the valid methods and the keys a real corpus needs)."""
    unlearning = config["unlearning"]
    if unlearning["checkpoint"] == "muse" and "knowmem_f" not in unlearning["epoch_metrics"]:
        raise QunlearnError("unlearning.checkpoint: muse needs KnowMem-forget after every epoch",
                            "add knowmem_f to unlearning.epoch_metrics, or set unlearning.checkpoint: last")
    for fmt in config["quantization"]["formats"]:
        try:
            quantizer = check_quantizer(fmt["quantizer"], fmt["bits"])
        except QunlearnError as error:
            raise QunlearnError(f"quantization.formats: {error.problem}", error.fix) from None
        if quantizer.group_size and fmt.get("group_size", quantizer.group_size) != quantizer.group_size:
            raise QunlearnError(f"quantization.formats: {quantizer.name}'s blocks are {quantizer.group_size} weights "
                                f"by definition, not {fmt['group_size']}", f"remove group_size from the {quantizer.name} format")
    model = config["model"]
    embedded = any("embedded" in spec for spec in config["corpora"].values())
    for index, fmt in enumerate(config["quantization"]["formats"]):
        quantizer, group = QUANTIZERS[fmt["quantizer"]], group_size(fmt, config["quantization"])
        for key in ("hidden", "intermediate"):
            if not (embedded and quantizer.saved and model[key] % group):
                continue
            if quantizer.group_size:  # the format's own block size
                raise QunlearnError(f"{quantizer.name}'s blocks of {group} weights do not divide model.{key} {model[key]}",
                                    f"leave {quantizer.name} out of quantization.formats, or make model.{key} a multiple of {group}")
            where = f"quantization.formats[{index}].group_size" if "group_size" in fmt else "quantization.group_size"
            raise QunlearnError(
                f"{where}: {group} does not divide model.{key} {model[key]}",
                "choose a group size that divides model.hidden and model.intermediate (e.g. 32, 64 or 128)",
            )
    for name, spec in config["corpora"].items():
        if "embedded" in spec:
            continue
        for key in REAL_MODEL_KEYS:
            if not Path(spec[key]).exists():
                raise QunlearnError(f"corpora.{name}.{key}: {spec[key]} does not exist", "point it at a local copy")
