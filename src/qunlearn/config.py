"""Checks on the validated config that a JSON schema cannot express, and the names the grid uses."""

from pathlib import Path

from .errors import QunlearnError
from .quantization import QUANTIZERS, check_quantizer
from .unlearning import METHODS

REAL_MODEL_KEYS = ("path", "target", "retrain", "tokenizer")


def format_lr(lr: float) -> str:
    """One spelling per value (1e-5, 1.0e-5 and 0.00001 name the same jobs)."""
    return f"{float(lr):.0e}".replace("e-0", "e-")


def precision_id(fmt: dict, quantization: dict) -> str:
    """Folder name of a quantized format: rtn-w4g64 for group-wise quantizers, bnb-fp4-w4 for bitsandbytes."""
    name, bits = fmt["quantizer"], fmt["bits"]
    return f"{name}-w{bits}g{quantization['group_size']}" if QUANTIZERS[name].saved else f"{name}-w{bits}"


def check_config(config: dict) -> None:
    for method in config["unlearning"]["methods"]:
        if method not in METHODS:
            raise QunlearnError(f"unlearning.methods: unknown method {method!r}", f"valid methods: {sorted(METHODS)}")
    for fmt in config["quantization"]["formats"]:
        try:
            check_quantizer(fmt["quantizer"], fmt["bits"])
        except QunlearnError as error:
            raise QunlearnError(f"quantization.formats: {error.problem}", error.fix) from None
    group = config["quantization"]["group_size"]
    model = config["model"]
    embedded = any("embedded" in spec for spec in config["corpora"].values())
    for key in ("hidden", "intermediate"):
        if embedded and model[key] % group:
            raise QunlearnError(
                f"quantization.group_size {group} does not divide model.{key} {model[key]}",
                "choose a group size that divides model.hidden and model.intermediate (e.g. 32, 64 or 128)",
            )
    for name, spec in config["corpora"].items():
        if "embedded" in spec:
            continue
        missing = [key for key in REAL_MODEL_KEYS if key not in spec]
        if missing:
            raise QunlearnError(f"corpora.{name}: a real corpus needs {missing}", "give local paths to the MUSE data, models and tokenizer (see presets/muse-news.yaml)")
        for key in REAL_MODEL_KEYS:
            if not Path(spec[key]).exists():
                raise QunlearnError(f"corpora.{name}.{key}: {spec[key]} does not exist", "point it at a local copy")
