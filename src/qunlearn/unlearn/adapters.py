"""Unlearning through LoRA adapters (peft) on a frozen base, and the ways an unlearned adapter is served:

- merged into the base loaded in bf16 or in fp32 (`merged`): a full checkpoint, quantized like any model. In bf16
  the merge rounds each weight once, so a delta below half a bf16 step of its weight is lost before any quantizer
  sees it; in fp32 it is kept until the format rounds it;
- applied unmerged on top of the base as a format loads it (`served`): QLoRA's layout for the bitsandbytes
  formats, the dequantized base plus the adapter for the saved ones; the adapter at full precision, or itself
  rounded to 4 bits (`quantize_adapter`).

Adapters are written and read as peft's safetensors file only (`ADAPTER_WEIGHTS`); a pickled adapter is refused."""

from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file

from qunlearn.config.naming import DECODER_LINEARS
from qunlearn.errors import QunlearnError
from qunlearn.io import atomic_dir

ADAPTER_WEIGHTS = "adapter_model.safetensors"
ADAPTER_CONFIG = "adapter_config.json"
# Llama-2-7B's decoder linears (in, out features) and its decoder layers: an adapter's size at 7B.
LLAMA_7B_LINEARS = {"q_proj": (4096, 4096), "k_proj": (4096, 4096), "v_proj": (4096, 4096), "o_proj": (4096, 4096),
                    "gate_proj": (4096, 11008), "up_proj": (4096, 11008), "down_proj": (11008, 4096)}
LLAMA_7B_LAYERS = 32


@dataclass(frozen=True)
class AdapterSettings:
    rank: int
    alpha: float
    target_modules: tuple[str, ...] = DECODER_LINEARS

    @classmethod
    def of(cls, settings: dict) -> "AdapterSettings":
        """From the unlearn rule's params (provenance.unlearn_settings' `adapter`)."""
        return cls(settings["rank"], settings["alpha"], tuple(settings["target_modules"]))


def lora_parameters_7b(settings: AdapterSettings) -> int:
    """The adapter's trainable parameters on Llama-2-7B: A (rank × in) and B (out × rank) per adapted linear."""
    return LLAMA_7B_LAYERS * sum(settings.rank * sum(LLAMA_7B_LINEARS[name]) for name in settings.target_modules)


def attach(model: torch.nn.Module, settings: AdapterSettings) -> torch.nn.Module:
    """The model wrapped with a fresh LoRA adapter: its base frozen, B zero so that it starts as the identity, the
    adapter's weights in fp32 whatever the base's dtype (peft's autocast_adapter_dtype, the common setup)."""
    from peft import LoraConfig, get_peft_model

    config = LoraConfig(r=settings.rank, lora_alpha=settings.alpha, target_modules=list(settings.target_modules),
                        lora_dropout=0.0, bias="none", task_type="CAUSAL_LM")
    return get_peft_model(model, config, autocast_adapter_dtype=True)


class AdapterDisabled:
    """NPO's and KLR's frozen reference for an adapter, without a copy of the model: the same model with its adapter
    switched off (peft's disable_adapter), which is the target the adapter started from, exactly (a fresh adapter
    adds zero)."""

    def __init__(self, model: torch.nn.Module):
        self.model = model

    @property
    def device(self) -> torch.device:
        return self.model.device

    def __call__(self, **inputs):
        with self.model.disable_adapter():
            return self.model(**inputs)


def save_adapter(model: torch.nn.Module, out_dir: str | Path) -> None:
    """The adapter alone (not the base), as peft writes it: adapter_config.json and adapter_model.safetensors."""
    with atomic_dir(out_dir) as staging:
        model.save_pretrained(staging, safe_serialization=True)


def load_adapter(base: torch.nn.Module, adapter_dir: str | Path) -> torch.nn.Module:
    """`base` with the saved adapter applied unmerged, for inference. The weights are read from the safetensors
    file here (peft's own loader would fall back to a pickled adapter_model.bin)."""
    from peft import LoraConfig, get_peft_model, set_peft_model_state_dict

    adapter_dir = Path(adapter_dir)
    weights, config_file = adapter_dir / ADAPTER_WEIGHTS, adapter_dir / ADAPTER_CONFIG
    if not weights.is_file() or not config_file.is_file():
        pickled = " (only a pickled adapter_model.bin, which is never loaded)" if (adapter_dir / "adapter_model.bin").exists() else ""
        raise QunlearnError(f"{adapter_dir} is not a LoRA adapter: it needs {ADAPTER_CONFIG} and {ADAPTER_WEIGHTS}{pickled}",
                            "save the adapter with peft's save_pretrained(safe_serialization=True), or re-run its unlearn job")
    try:
        config = LoraConfig.from_pretrained(str(adapter_dir))  # the local file, checked above (never the Hub)
        state = load_file(weights)
    except (SafetensorError, ValueError, TypeError, OSError) as error:
        raise QunlearnError(f"the adapter at {adapter_dir} cannot be read: {error}",
                            "delete the folder and re-run the job that wrote it") from None
    config.inference_mode = True
    model = get_peft_model(base, config, autocast_adapter_dtype=True)
    unplaced = set_peft_model_state_dict(model, state).unexpected_keys
    if unplaced:
        raise QunlearnError(f"the adapter at {adapter_dir} has weights its config does not place: {sorted(unplaced)[:3]}",
                            "the adapter does not fit this base model: check which target it was unlearned from")
    return model.eval()


def merged(base: torch.nn.Module, adapter_dir: str | Path) -> torch.nn.Module:
    """The adapter merged into `base`'s weights in the base's own dtype (peft's merge_and_unload: each weight plus
    the adapter's fp32 delta, rounded once to that dtype): a plain model, saved and quantized like any other."""
    return load_adapter(base, adapter_dir).merge_and_unload()


@torch.no_grad()
def merged_with_survival(base: torch.nn.Module, adapter_dir: str | Path) -> tuple[torch.nn.Module, dict]:
    """`merged`, and how much of the adapter's delta D the merge kept: ⟨M − W, D⟩ / ‖D‖² over every adapted weight
    (`surviving_share`: 1 where the merged weights M moved from the base's W by D, 0 where rounding to the base's
    dtype erased it), the mechanism's surviving update with the merge as the quantizer."""
    from peft.tuners.lora import LoraLayer

    model = load_adapter(base, adapter_dir)
    layers = [module for module in model.modules() if isinstance(module, LoraLayer)]
    before = [layer.get_base_layer().weight.detach().clone() for layer in layers]
    deltas = [layer.get_delta_weight(layer.active_adapters[0]).double() for layer in layers]
    plain = model.merge_and_unload()  # the same modules' weights, now M
    after = [layer.get_base_layer().weight for layer in layers]
    dot = sum(((m.double() - w.double()) * d).sum().item() for m, w, d in zip(after, before, deltas, strict=True))
    norm_sq = sum(d.square().sum().item() for d in deltas)
    return plain, {"surviving_share": dot / norm_sq if norm_sq else float("nan"), "delta_norm": norm_sq ** 0.5,
                   "weights": sum(w.numel() for w in before)}


def lora_weights(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The adapter's A and B matrices by parameter name."""
    return {name: param for name, param in model.named_parameters() if ".lora_A." in name or ".lora_B." in name}


@torch.no_grad()
def quantize_adapter(model: torch.nn.Module, bits: int, group_size: int, symmetric: bool) -> None:
    """Round the adapter's A and B matrices in place to `bits`-bit integers, group-wise along their input dimension,
    with compressed-tensors' arithmetic (the RTN format's). B's input dimension is the rank, smaller than a group:
    it gets one group per row."""
    from compressed_tensors.quantization import QuantizationArgs
    from compressed_tensors.quantization.lifecycle.forward import fake_quantize
    from compressed_tensors.quantization.utils import calculate_qparams

    for param in lora_weights(model).values():
        rows, cols = param.shape
        group = group_size if cols % group_size == 0 else cols
        args = QuantizationArgs(num_bits=bits, type="int", strategy="group", group_size=group, symmetric=symmetric)
        groups = param.float().reshape(rows, cols // group, group)
        scale, zero_point = calculate_qparams(groups.amin(-1), groups.amax(-1), args)
        param.copy_(fake_quantize(param.float(), scale, zero_point, args).to(param.dtype))


def served(base_in_format: torch.nn.Module, adapter_dir: str | Path, rounded: dict | None = None) -> torch.nn.Module:
    """The adapter applied unmerged on top of a base already in a format (`checkpoints.load_in_format`), at full
    precision, or rounded as `rounded` says (quantize_adapter's bits, group_size and symmetric)."""
    model = load_adapter(base_in_format, adapter_dir)
    if rounded is not None:
        quantize_adapter(model, **rounded)
    return model
