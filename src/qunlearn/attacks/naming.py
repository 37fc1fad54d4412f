"""The built-in attacks' names and job settings, as their specs in registry.ATTACKS name them: torch-free, since the
Snakefile derives every attacked model's folder from them at start-up."""

from qunlearn.config.naming import format_lr
from qunlearn.errors import QunlearnError


def training_label(spec: dict) -> str:
    """relearn-s30-lr3e-5-b4-bf16, finetune-retain2-s30-lr3e-5-b4-bf16."""
    data = f"-{spec['data']}" if "data" in spec else ""
    return f"{spec['kind']}{data}-s{spec['steps']}-lr{format_lr(spec['lr'])}-b{spec['batch_size']}-{spec['precision']}"


def training_settings(spec: dict, config: dict) -> dict:
    """A training attack chunks its text as unlearning does."""
    return {**spec, "max_len": config["unlearning"]["max_len"]}


def prune_label(spec: dict) -> str:
    """prune-wanda-50 (percent sparsity), prune-wanda-2of4."""
    amount = "2of4" if spec["structure"] == "2:4" else f"{spec['sparsity'] * 100:g}"
    return f"prune-{spec['method']}-{amount}"


def prune_settings(spec: dict, config: dict) -> dict:
    """Wanda and SparseGPT calibrate as GPTQ does; magnitude pruning reads no text."""
    return spec if spec["method"] == "magnitude" else {**spec, "calibration": config["quantization"]["calibration"]}


def check_prune(key: str, spec: dict) -> None:
    if spec["structure"] == "2:4" and spec["sparsity"] != 0.5:
        raise QunlearnError(f"{key}.sparsity: 2:4 pruning zeroes 2 weights of every 4, a sparsity of 0.5, "
                            f"not {spec['sparsity']}", "remove sparsity, or use structure: unstructured")
