"""Attacks other than quantization (docs/attacks.md, docs/paper.md §10), each named by its spec in registry.ATTACKS:
a function (model, tokenizer, corpus, split, settings, seed) that transforms the model in place and returns what it
did (the attack's record). `settings` is the config entry with every knob (config.attack_spec), plus what its job
depends on besides (attack_naming): `max_len` for the training attacks, `calibration` for calibrated pruning.

Relearning and benign fine-tuning run the precision stacks of unlearning (the same optimizer, weight dtype and
per-step autocast), so `precision: bf16` means here what it means there."""

import itertools
import random

import torch

from qunlearn.data.batches import batches, encode_documents, pack
from qunlearn.data.muse import MuseCorpus
from qunlearn.data.splits import ForgetSplit
from qunlearn.errors import QunlearnError
from qunlearn.models.training import seed_everything
from qunlearn.quantize.llmcompressor import Calibration, calibration_dataset
from qunlearn.registry import ATTACKS
from qunlearn.unlearn.loop import step_precision
from qunlearn.unlearn.losses import mean_nll
from qunlearn.unlearn.stacks import precision_stack

PRUNERS = {"wanda": "WandaPruningModifier", "sparsegpt": "SparseGPTModifier"}  # llmcompressor's one-shot modifiers


def load_dtype(settings: dict) -> str:
    """The dtype an attack loads (and saves) the model in: a training attack's stack's, fp32 for pruning."""
    return precision_stack(settings["precision"]).weight_dtype if ATTACKS[settings["kind"]].trains else "fp32"


def train_steps(model, tokenizer, texts: list[str], settings: dict, seed: int) -> dict:
    """`settings["steps"]` optimizer steps of next-token NLL on the texts, chunked as unlearning chunks them, at a
    constant lr with the precision stack's AdamW; the batches cycle through the chunks, reshuffled every pass."""
    if not texts:
        raise QunlearnError(f"the {settings['kind']} attack has no text to train on", "check the corpus' splits")
    seed_everything(seed)
    rng = random.Random(seed)
    chunks = pack(encode_documents(tokenizer, texts), settings["max_len"], tokenizer.bos_token_id)
    precision = settings["precision"]
    optimizer = precision_stack(precision).optimizer([p for p in model.parameters() if p.requires_grad], settings["lr"], seed)
    passes = itertools.chain.from_iterable(batches(chunks, settings["batch_size"], tokenizer.pad_token_id, rng)
                                           for _ in itertools.count())
    losses = []
    model.train()
    for batch in itertools.islice(passes, settings["steps"]):
        batch = batch.to(model.device)
        with step_precision(precision, model.device):
            logits = model(input_ids=batch.input_ids, attention_mask=batch.attention_mask).logits.float()
            loss = mean_nll(logits, batch.labels)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        losses.append(loss.item())
    model.eval()
    return {"steps": len(losses), "losses": losses, "chunks": len(chunks),
            "epochs": len(losses) * settings["batch_size"] / len(chunks)}


def relearn_texts(corpus: MuseCorpus, split: ForgetSplit) -> list[str]:
    """Half A's forget documents."""
    return [corpus.raw["forget"][i] for i in split.documents["a"]]


def finetune_texts(corpus: MuseCorpus, settings: dict) -> list[str]:
    """A raw split that holds no forget fact."""
    return corpus.raw[settings["data"]]


def relearn(model, tokenizer, corpus: MuseCorpus, split: ForgetSplit, settings: dict, seed: int) -> dict:
    return _fine_tune(model, tokenizer, relearn_texts(corpus, split), settings, seed)


def finetune(model, tokenizer, corpus: MuseCorpus, split: ForgetSplit, settings: dict, seed: int) -> dict:
    """Benign fine-tuning."""
    return _fine_tune(model, tokenizer, finetune_texts(corpus, settings), settings, seed)


def _fine_tune(model, tokenizer, texts: list[str], settings: dict, seed: int) -> dict:
    return {"documents": len(texts), **train_steps(model, tokenizer, texts, settings, seed)}


def pruned_linears(model: torch.nn.Module) -> dict[str, torch.nn.Linear]:
    """The decoder layers' Linear modules: every Linear but lm_head (embeddings are not Linear)."""
    return {name: module for name, module in model.named_modules()
            if isinstance(module, torch.nn.Linear) and not name.endswith("lm_head")}


def _n_m(structure: str) -> tuple[int, int]:
    """llmcompressor's N:M pair; 0:0 is unstructured."""
    return (2, 4) if structure == "2:4" else (0, 0)


def magnitude_prune(model: torch.nn.Module, sparsity: float, structure: str) -> None:
    """Zero the smallest |w| of each output row (unstructured) or 2 of every 4 consecutive weights (2:4), with
    llmcompressor's Wanda mask at unit input norms (Wanda's score |w|·‖x‖ is then |w|): its MagnitudePruningModifier
    is a training-time schedule that masks at optimizer steps, which one-shot compression never takes."""
    from llmcompressor.modifiers.pruning.wanda.wanda_sparsify import sparsify_weight

    n, m = _n_m(structure)
    with torch.no_grad():
        for module in pruned_linears(model).values():
            ones = {module: torch.ones(module.in_features, device=module.weight.device)}
            module.weight.copy_(sparsify_weight(module, ones, sparsity, n, m))


def calibrated_prune(model: torch.nn.Module, tokenizer, texts: list[str], settings: dict, seed: int) -> None:
    """Wanda or SparseGPT through llmcompressor's `oneshot`, calibrated like GPTQ (quantization.calibration:
    unshuffled, seeded), on the decoder layers' Linear weights."""
    from llmcompressor import modifiers, oneshot

    n, m = _n_m(settings["structure"])
    calibration = Calibration(settings["calibration"]["samples"], settings["calibration"]["seq_len"])
    modifier = getattr(modifiers.pruning, PRUNERS[settings["method"]])(
        sparsity=settings["sparsity"], mask_structure=f"{n}:{m}", targets=["Linear"], ignore=["re:.*lm_head"])
    torch.manual_seed(seed)
    oneshot(model=model, processor=tokenizer, recipe=[modifier],
            dataset=calibration_dataset(tokenizer, texts, calibration), num_calibration_samples=calibration.samples,
            max_seq_length=calibration.seq_len, shuffle_calibration_samples=False)


def prune(model, tokenizer, corpus: MuseCorpus, split: ForgetSplit, settings: dict, seed: int) -> dict:
    """Prune the decoder layers' Linear weights; the record holds each matrix's fraction of zeros."""
    if settings["method"] == "magnitude":
        magnitude_prune(model, settings["sparsity"], settings["structure"])
    else:
        calibrated_prune(model, tokenizer, corpus.raw[settings["calibration"]["split"]], settings, seed)
    return {"zeros": {name: float((module.weight == 0).float().mean()) for name, module in pruned_linears(model).items()}}

