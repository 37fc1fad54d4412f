"""Bytes per parameter of each precision stack, by part, measured on the default run's architecture (config.yaml:
an untrained model of its shape; sizes do not depend on the weights) after one AdamW step, and extrapolated to a
7B Llama with NPO's frozen bf16 reference.

Usage: python benchmarks/optimizer_memory.py [CONFIG]   (default: config.yaml). Ends with one line per stack,
`<stack> bytes_per_param=<measured> declared=<registry> 7b_gb=<with reference>`.
"""

import argparse

import torch
import yaml
from transformers import LlamaConfig, LlamaForCausalLM

from qunlearn.models.checkpoints import DTYPES
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


def one_step(config: dict, name: str) -> tuple[int, dict[str, float]]:
    """Parameters, and bytes per parameter after one step of `name` on a random batch (before zero_grad)."""
    stack = precision_stack(name)
    model = embedded_model(config).to(DTYPES[stack.weight_dtype]).train()
    optimizer = stack.optimizer(list(model.parameters()), 3e-5, 0)
    ids = torch.randint(0, model.config.vocab_size, (1, config["unlearning"]["max_len"]))
    with step_precision(name, model.device):
        loss = model(input_ids=ids, labels=ids).loss
    loss.backward()
    optimizer.step()
    return sum(p.numel() for p in model.parameters()), measured_bytes_per_param(model, optimizer)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("config", nargs="?", default="config.yaml")
    config = yaml.safe_load(open(parser.parse_args().config))
    torch.set_num_threads(1)
    print(f"{'stack':<12}" + "".join(f"{part:>18}" for part in PARTS) + f"{'total':>8}{'7B GB (+NPO ref)':>20}")
    lines = []
    for name, stack in all_stacks().items():
        count, measured = one_step(config, name)
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
    print("\n".join(lines))


if __name__ == "__main__":
    main()
