"""Bytes per parameter of each precision stack, by part, measured on the default run's architecture (config.yaml:
an untrained model of its shape; sizes do not depend on the weights) after one AdamW step, and extrapolated to a
7B Llama with NPO's frozen bf16 reference; then the same for unlearning through each LoRA adapter of the config's
`unlearning.adapters` (rank 8, alpha 16 where it has none): the frozen bf16 base, the adapter's fp32 weights,
gradients and AdamW states.

Usage: python benchmarks/optimizer_memory.py [CONFIG]   (default: config.yaml). Ends with one line per stack,
`<stack> bytes_per_param=<measured> declared=<registry> 7b_gb=<with reference>`, and one per adapter,
`<adapter> trainable=<share of the model> bytes_per_param=<per model parameter> 7b_gb=<GB>` (NPO's and KLR's
reference is the model with its adapter switched off: no bytes of its own).
"""

import argparse

import torch
import yaml
from transformers import LlamaConfig, LlamaForCausalLM

from qunlearn.config.naming import adapter_id
from qunlearn.models.checkpoints import DTYPES
from qunlearn.unlearn.adapters import AdapterSettings, attach, lora_parameters_7b
from qunlearn.unlearn.loop import step_precision
from qunlearn.unlearn.stacks import (LLAMA_7B_PARAMS, PARTS, REFERENCE_BYTES, all_stacks, measured_bytes_per_param,
                                     memory_7b_gb, precision_stack)


def embedded_model(config: dict) -> LlamaForCausalLM:
    """An untrained Llama of the config's architecture (its tokenizer's vocabulary), as training.build_llama makes."""
    model = config["model"]
    torch.manual_seed(0)
    return LlamaForCausalLM(LlamaConfig(
        vocab_size=config["tokenizer"]["vocab_size"], hidden_size=model["hidden"],
        intermediate_size=model["intermediate"], num_hidden_layers=model["layers"], num_attention_heads=model["heads"],
        num_key_value_heads=model["heads"], max_position_embeddings=model["max_position"], tie_word_embeddings=False))


def one_step(config: dict, name: str, adapter: AdapterSettings | None = None) -> tuple[torch.nn.Module, dict[str, float]]:
    """The model, and bytes per trainable parameter after one step of `name` on a random batch (before zero_grad);
    with an adapter, the base in bf16 and the adapter trained (the unlearn rule's adapter setup)."""
    stack = precision_stack(name)
    model = embedded_model(config).to(DTYPES["bf16" if adapter else stack.weight_dtype])
    model = (attach(model, adapter) if adapter else model).train()
    optimizer = stack.optimizer([p for p in model.parameters() if p.requires_grad], 3e-5, 0)
    ids = torch.randint(0, model.config.vocab_size, (1, config["unlearning"]["max_len"]))
    with step_precision(name, model.device):
        loss = model(input_ids=ids, labels=ids).loss
    loss.backward()
    optimizer.step()
    return model, measured_bytes_per_param(model, optimizer)


def adapter_lines(config: dict) -> list[str]:
    """Each adapter's memory, per parameter of the whole model, measured, and at 7B (activations aside)."""
    entries = config.get("unlearning", {}).get("adapters") or [{"rank": 8, "alpha": 16}]
    print(f"\n{'adapter':<14}{'trainable':>12}{'share':>8}{'B/trainable':>13}{'B/model param':>15}{'7B GB':>8}"
          f"{'7B trainable':>14}")
    lines = []
    for entry in entries:
        settings = AdapterSettings(entry["rank"], entry["alpha"], *([tuple(entry["target_modules"])]
                                                                     if "target_modules" in entry else []))
        model, per_trainable = one_step(config, "fp32", settings)
        trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
        frozen = [p for p in model.parameters() if not p.requires_grad]
        base = sum(p.numel() for p in frozen)
        per_model_param = (sum(p.nbytes for p in frozen) + trainable * sum(per_trainable.values())) / base
        lora_7b = lora_parameters_7b(settings)
        gb = (LLAMA_7B_PARAMS * 2 + lora_7b * sum(per_trainable.values())) / 1e9  # bf16 base + the adapter's
        name = adapter_id(settings.rank, settings.alpha)
        print(f"{name:<14}{trainable:>12,}{trainable / base:>8.2%}{sum(per_trainable.values()):>13.1f}"
              f"{per_model_param:>15.3f}{gb:>8.1f}{lora_7b / LLAMA_7B_PARAMS:>14.2%}")
        lines.append(f"{name} trainable={trainable / base:.4f} bytes_per_param={per_model_param:.3f} 7b_gb={gb:.1f}")
    print(f"7B: {LLAMA_7B_PARAMS / 1e9:.2f}e9 bf16 base parameters + the adapter at its 7B size x its bytes; NPO's "
          "and KLR's reference is the same model with its adapter off (adapters.AdapterDisabled): no copy")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("config", nargs="?", default="config.yaml")
    config = yaml.safe_load(open(parser.parse_args().config))
    torch.set_num_threads(1)
    print(f"{'stack':<12}" + "".join(f"{part:>18}" for part in PARTS) + f"{'total':>8}{'7B GB (+NPO ref)':>20}")
    lines = []
    for name, stack in all_stacks().items():
        model, measured = one_step(config, name)
        count = sum(p.numel() for p in model.parameters())
        declared = stack.bytes_per_param
        cells = [f"{measured[p]:.3f} ({declared[p]})" for p in PARTS]
        print(f"{name:<12}" + "".join(f"{c:>18}" for c in cells) + f"{stack.total_bytes:>8}"
              f"{memory_7b_gb(stack, False):>10.1f} ({memory_7b_gb(stack):.1f})")
        lines.append(f"{name} bytes_per_param={sum(measured.values()):.3f} declared={stack.total_bytes} "
                     f"7b_gb={memory_7b_gb(stack):.1f}")
    print(f"measured on {count:,} parameters (declared in parentheses; mixed's copies are autocast's bf16 weights, "
          f"outside the optimizer: declared, not measured)")
    print(f"7B: {LLAMA_7B_PARAMS / 1e9:.2f}e9 parameters x bytes / 1e9 = GB; NPO's frozen reference adds "
          f"{LLAMA_7B_PARAMS / 1e9:.2f} x {REFERENCE_BYTES} = {LLAMA_7B_PARAMS * REFERENCE_BYTES / 1e9:.1f} GB")
    lines += adapter_lines(config)
    print("\n".join(lines))


if __name__ == "__main__":
    main()
