"""Every extension point's specs in one place: losses (and the methods composed of them), precision stacks,
quantized formats and their backends, attacks and figures (docs/extending.md).

Plain data, no torch: the Snakefile reads this module at every start, dry runs included. Each implementation is
named lazily, "module:attribute" (as lm-evaluation-harness' registry names its tasks), and imported only by the job
that runs it. Everything else derives from these specs: the config schema's enums, which methods are constrained
or read the frozen target, what a loss is a mean over when sharded, which formats have quantization steps, which
rule writes a format and how evaluation loads it, an attack's folder name and the settings its job depends on.

Code outside qunlearn adds its own entries with `register` from a module named in the config's `extensions:`,
imported before the config is validated and at the start of every job."""

import importlib
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Literal

from qunlearn.errors import QunlearnError


def resolve(path: str):
    """The object a lazy name ("package.module:attribute") names, its module imported now."""
    module, _, attribute = path.partition(":")
    try:
        return getattr(importlib.import_module(module), attribute)
    except (ImportError, AttributeError) as error:
        raise QunlearnError(f"the registry names {path!r}, which cannot be imported ({error})",
                            "fix the spec's implementation name (module:attribute) or install what it needs") from None


# --- Losses, and the methods they compose -----------------------------------------------------------------------

LOSS_VARIANTS = ("standard", "muse")  # unlearning.loss_variant: "muse" is the reference code's raw-logit losses


@dataclass(frozen=True)
class LossFn:
    impl: str  # (unlearning.LossContext, data.Batch) -> scalar tensor
    # What the loss is a mean over (unlearn.sharding.UNIT_COUNTS: label_tokens, sequences, attended_positions), so
    # that a sharded job weights each process' share of a batch by its part of the count.
    units: str

    def __call__(self, ctx, batch):
        return resolve(self.impl)(ctx, batch)


@dataclass(frozen=True)
class Loss:
    name: str
    kind: Literal["forget", "retain"]  # a forget loss, or a retain regulariser weighted by alpha
    fn: LossFn
    frozen: bool = False  # reads the frozen target model (NPO's reference likelihoods, KLR's KL)
    variants: dict[str, LossFn] = field(default_factory=dict)  # by loss_variant; the others use `fn`

    def implementation(self, variant: str) -> LossFn:
        return self.variants.get(variant, self.fn)


def _unlearning(name: str, units: str) -> LossFn:
    return LossFn(f"qunlearn.unlearn.losses:{name}", units)


SURE_SUFFIX = "_sure"


@dataclass(frozen=True)
class Method:
    """A forget loss, an optional retain regulariser, and whether SURE masks the update to salient modules."""
    forget: Loss
    retain: Loss | None
    sure: bool

    @property
    def base(self) -> str:
        return self.forget.name + (f"_{self.retain.name}" if self.retain else "")

    @property
    def name(self) -> str:
        return self.base + (SURE_SUFFIX if self.sure else "")

    @property
    def constrained(self) -> bool:
        """A utility constraint (a retain term): the paper's claims are about these methods."""
        return self.retain is not None

    @property
    def frozen(self) -> bool:
        """Whether unlearning keeps a frozen copy of the target (NPO, KLR)."""
        return self.forget.frozen or bool(self.retain and self.retain.frozen)


# --- Precision stacks while unlearning --------------------------------------------------------------------------

@dataclass(frozen=True)
class ShardedPrecision:
    """How a precision stack maps to FSDP2 when one job is sharded across processes (dtype names as in
    models.checkpoints.DTYPES)."""
    weights: str  # the sharded parameters', and so AdamW's states'
    compute: str | None  # MixedPrecisionPolicy.param_dtype: what FSDP2 gathers for forward and backward; None: weights
    reduce: str | None  # MixedPrecisionPolicy.reduce_dtype of the gradients' reduce-scatter; None: the gradients'
    reference: str  # the frozen NPO/KLR reference's weights (it only ever runs forward, in the compute dtype)


@dataclass(frozen=True)
class Stack:
    name: str
    impl: str  # the unlearn.stacks.PrecisionStack: weight dtype, optimizer, autocast, bytes per parameter
    description: str  # one line for the config schema's description (registry.with_enums)
    fp32_master: bool = False  # keeps fp32 master weights: the stacks every other one is contrasted with
    sharded: ShardedPrecision | None = None  # its FSDP2 mapping; None: it runs in one process only


# --- Quantized formats and their backends -----------------------------------------------------------------------

@dataclass(frozen=True)
class Backend:
    name: str
    # How evaluation (and the mechanism) load a model in the format: (folder, Format) -> model with float weights;
    # the folder is the quantized checkpoint, or the full-precision one where nothing is saved.
    load: str
    quantize: str | None  # writes the quantized checkpoint; None: quantized while loading (nothing saved)
    rule: str | None  # the Snakemake rule that runs `quantize` (GGUF's needs llama.cpp's environment)

    @property
    def saved(self) -> bool:
        return self.quantize is not None


@dataclass(frozen=True)
class Format:
    name: str
    bits: tuple[int, ...]
    backend: str  # a key of BACKENDS
    # The backend's own description of the format: llmcompressor's, a function (bits, group_size, symmetric) -> its
    # modifiers; bitsandbytes', BitsAndBytesConfig's arguments; GGUF's, llama.cpp's file type (LLAMA_FTYPE_MOSTLY_*).
    recipe: str | dict
    group_size: int | None = None  # fixed by the format (FP4 microscaling, GGUF blocks); else from the config
    symmetric: bool | None = None  # integer grids: the config's default (quantization.symmetric); None: no choice
    calibrated: bool = False  # calibrates on text (quantization.calibration)
    # Whether a stored scale is the step between neighbouring codes, so the mechanism can measure in step units:
    # not for AWQ (per-model bases), FP4 (its steps grow along its codebook), GGUF (scales stay in the file).
    step_units: bool = True


# --- Attacks other than quantization ----------------------------------------------------------------------------

@dataclass(frozen=True)
class Attack:
    name: str
    impl: str  # (model, tokenizer, corpus, split, settings, seed) -> record; transforms the model in place
    defaults: dict  # every knob and its default (docs/attacks.md says where each comes from)
    label: str  # (spec with every knob) -> the attack's folder name: torch-free, the Snakefile calls it
    job_settings: str  # (spec, config) -> the spec with the config values its job also depends on
    trains: bool  # trains in a precision stack (the `precision` knob), else works on fp32 weights
    check: str | None = None  # (key, spec) -> raises QunlearnError for a combination of knobs that cannot run
    description: str = ""  # one line for the config schema's description (registry.with_enums)


# --- Figures ----------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Figure:
    name: str
    impl: str  # (*inputs, path) -> draws the figure
    inputs: tuple[str, ...]  # the plots rule's tables it is drawn from (report.figures.draw_all), in the call's order
    category: str = "Figures"  # the report's category ("Answer" sorts first)


LOSSES: dict[str, Loss] = {}
STACKS: dict[str, Stack] = {}
BACKENDS: dict[str, Backend] = {}
FORMATS: dict[str, Format] = {}
ATTACKS: dict[str, Attack] = {}
FIGURES: dict[str, Figure] = {}
REGISTRIES = {Loss: LOSSES, Stack: STACKS, Backend: BACKENDS, Format: FORMATS, Attack: ATTACKS, Figure: FIGURES}


# Names become parts of folder and model names: a loss's may not hold "_" (methods join losses with it), a stack's
# neither (a grid name's parts are split at it); none may hold "/" or start with punctuation.
NAME_RULES = {Loss: ("[a-z0-9]+", "lower-case letters and digits"),
              Stack: ("[a-z0-9][a-z0-9.+-]*", "lower-case letters, digits and . + -")}
DEFAULT_NAME_RULE = ("[a-z0-9][a-z0-9_.+-]*", "lower-case letters, digits and _ . + -")


def register(*specs) -> None:
    """Add specs (a new name, or replace one of the same kind and name)."""
    for spec in specs:
        pattern, words = NAME_RULES.get(type(spec), DEFAULT_NAME_RULE)
        if not re.fullmatch(pattern, spec.name):
            kind = type(spec).__name__.lower()
            raise QunlearnError(f"{kind} name {spec.name!r} does not parse back from qunlearn's folder names",
                                f"name it with {words} only")
        REGISTRIES[type(spec)][spec.name] = spec


register(
    Loss("ga", "forget", _unlearning("ga_loss", "label_tokens")),
    Loss("npo", "forget", _unlearning("npo_loss", "sequences"), frozen=True,
         variants={"muse": _unlearning("npo_logits_loss", "sequences")}),
    Loss("gdr", "retain", _unlearning("gdr_loss", "label_tokens")),
    Loss("klr", "retain", _unlearning("klr_loss", "attended_positions"), frozen=True,
         variants={"muse": _unlearning("klr_logits_loss", "sequences")}),
)

def _stack(name: str, description: str, **kwargs) -> Stack:
    return Stack(name, f"qunlearn.unlearn.stacks:{name.upper().replace('-', '_')}", description, **kwargs)


# Each sharded stack as users configure FSDP2 for it. `mixed` keeps fp32 master weights and computes in bf16 through
# FSDP2's policy (which replaces the one-process loop's autocast); its reference is stored in bf16 because the
# policy would gather exactly those bf16 casts of fp32 weights, at half the memory.
register(
    _stack("bf16", "bf16 weights and AdamW states: the paper's and MUSE's",
           sharded=ShardedPrecision(weights="bf16", compute=None, reduce=None, reference="bf16")),
    _stack("bf16-adam32", "bf16 weights, bitsandbytes' 32-bit AdamW states: open-unlearning's"),
    _stack("bf16-sr", "pure bf16, stochastic rounding of the weight write-back"),
    _stack("bf16-kahan", "pure bf16, Kahan-compensated updates: torch-optimi"),
    _stack("fp32", "fp32 weights and AdamW states throughout", fp32_master=True,
           sharded=ShardedPrecision(weights="fp32", compute=None, reduce=None, reference="fp32")),
    _stack("mixed", "fp32 master weights, bf16 autocast: AMP, DeepSpeed", fp32_master=True,
           sharded=ShardedPrecision(weights="fp32", compute="bf16", reduce="fp32", reference="bf16")),
)

register(
    # llmcompressor writes a compressed-tensors checkpoint; evaluation loads it dequantized to float weights.
    Backend("llmcompressor", "qunlearn.quantize.llmcompressor:load_dequantized",
            "qunlearn.quantize.llmcompressor:quantize_and_save", "quantize"),
    # llama.cpp's own quantizer writes a GGUF file (the `gguf` extra); evaluation dequantizes it with `gguf`.
    Backend("gguf", "qunlearn.quantize.gguf:load_gguf", "qunlearn.quantize.gguf:quantize_gguf", "quantize_gguf"),
    # bitsandbytes quantizes while loading the full-precision checkpoint, as the paper's code evaluated.
    Backend("bitsandbytes", "qunlearn.quantize.bitsandbytes:load_bitsandbytes", None, None),
)


def _llmcompressor(name: str, bits: tuple[int, ...], recipe: str, **kwargs) -> Format:
    return Format(name, bits, "llmcompressor", f"qunlearn.quantize.llmcompressor:{recipe}", **kwargs)


def _gguf(name: str, bits: int, group_size: int) -> Format:
    return Format(name, (bits,), "gguf", name.removeprefix("gguf-").upper(), group_size, step_units=False)


def _bitsandbytes(name: str, bits: int, recipe: dict) -> Format:
    return Format(name, (bits,), "bitsandbytes", recipe, step_units=False)


register(
    _llmcompressor("rtn", (4, 8), "rtn_recipe", symmetric=False),
    _llmcompressor("gptq", (4, 8), "gptq_recipe", symmetric=True, calibrated=True),
    _llmcompressor("awq", (4, 8), "awq_recipe", symmetric=False, calibrated=True, step_units=False),
    # FP4 (E2M1) values in blocks with a shared scale, as vLLM serves them on Blackwell GPUs: NVFP4's blocks of 16
    # have FP8 scales under a per-tensor scale, MXFP4's blocks of 32 power-of-two scales.
    _llmcompressor("nvfp4", (4,), "nvfp4_recipe", group_size=16, step_units=False),
    _llmcompressor("mxfp4", (4,), "mxfp4_recipe", group_size=32, step_units=False),
    # llama.cpp's formats (Ollama, LM Studio): legacy blocks of 32, k-quants in super-blocks of 256, where _M keeps
    # some tensors (attn_v, ffn_down, output) at a higher type, as llama.cpp chooses.
    _gguf("gguf-q8_0", 8, 32),
    _gguf("gguf-q4_0", 4, 32),
    _gguf("gguf-q4_k_m", 4, 256),
    _gguf("gguf-q5_k_m", 5, 256),
    _bitsandbytes("bnb-fp4", 4, {"load_in_4bit": True, "bnb_4bit_quant_type": "fp4"}),
    _bitsandbytes("bnb-nf4", 4, {"load_in_4bit": True, "bnb_4bit_quant_type": "nf4"}),
    _bitsandbytes("bnb-int8", 8, {"load_in_8bit": True}),
)

TRAINING_DEFAULTS = {"steps": 30, "lr": 3e-5, "batch_size": 4, "precision": "bf16"}
PRUNE_DEFAULTS = {"method": "wanda", "sparsity": 0.5, "structure": "unstructured"}
register(
    Attack("relearn", "qunlearn.attacks.transforms:relearn", TRAINING_DEFAULTS,
           "qunlearn.attacks.naming:training_label", "qunlearn.attacks.naming:training_settings", trains=True,
           description="fine-tune on half A of the forget documents"),
    Attack("finetune", "qunlearn.attacks.transforms:finetune", {"data": "retain2", **TRAINING_DEFAULTS},
           "qunlearn.attacks.naming:training_label", "qunlearn.attacks.naming:training_settings", trains=True,
           description="fine-tune on documents without forget facts"),
    Attack("prune", "qunlearn.attacks.transforms:prune", PRUNE_DEFAULTS,
           "qunlearn.attacks.naming:prune_label", "qunlearn.attacks.naming:prune_settings", trains=False,
           check="qunlearn.attacks.naming:check_prune", description="llmcompressor's one-shot pruning"),
)

def _figure(name: str, inputs: tuple[str, ...], category: str = "Figures") -> Figure:
    return Figure(name, f"qunlearn.report.figures:{name}", inputs, category)


register(
    _figure("recovery_verdicts", ("recovery", "by_target", "margin"), "Answer"),
    _figure("forget_across_precisions", ("summary",)),
    _figure("forget_vs_utility", ("summary",)),
    _figure("recovery_ratios", ("summary",)),
    _figure("surviving_update_against_lr", ("summary",)),
    _figure("paper_comparison", ("summary", "paper")),
    _figure("utility_tension", ("tension",)),
    _figure("privleak_scores", ("mink",)),
    _figure("attack_recovery", ("attacks",)),
)


# --- What derives from the specs --------------------------------------------------------------------------------

def methods() -> dict[str, Method]:
    """Every forget loss alone and with every retain regulariser, each with and without SURE, by name."""
    forgets = [loss for loss in LOSSES.values() if loss.kind == "forget"]
    retains = [None, *(loss for loss in LOSSES.values() if loss.kind == "retain")]
    found = (Method(forget, retain, sure) for forget in forgets for retain in retains for sure in (False, True))
    return {method.name: method for method in found}


def method(name: str) -> Method:
    found = methods()
    if name not in found:
        raise QunlearnError(f"unknown method {name!r}", f"use one of {sorted(found)}")
    return found[name]


def constrained_methods() -> list[str]:
    """The base names (without _sure) of the methods with a retain term."""
    return sorted({m.base for m in methods().values() if m.constrained})


def check_format(name: str, bits: int) -> Format:
    if name not in FORMATS:
        raise QunlearnError(f"unknown quantizer {name!r}", f"use one of {sorted(FORMATS)}")
    fmt = FORMATS[name]
    if bits not in fmt.bits:
        raise QunlearnError(f"quantizer {name!r} does not support {bits} bits", f"use bits in {list(fmt.bits)}")
    return fmt


def backend(format_name: str) -> Backend:
    return BACKENDS[FORMATS[format_name].backend]


def import_extensions(modules: Iterable[str]) -> None:
    """Import the modules named in the config's `extensions:`, each of which registers its own specs."""
    for module in modules:
        try:
            importlib.import_module(module)
        except ImportError as error:
            raise QunlearnError(f"extensions: cannot import {module!r} ({error})",
                                "name the module as Python imports it (my_unlearning, not my_unlearning.py), put its "
                                "folder on PYTHONPATH, or remove it from extensions") from None


# The schema's enums, each filled from the registry where the schema marks a node with `x-registry: NAME`.
ENUMS = {
    "methods": lambda: sorted(methods()),
    "stacks": lambda: list(STACKS),
    "formats": lambda: list(FORMATS),
    "bits": lambda: sorted({bits for fmt in FORMATS.values() for bits in fmt.bits}),
    "attacks": lambda: list(ATTACKS),
    "loss_variants": lambda: list(LOSS_VARIANTS),
    "symmetric": lambda: [fmt.name for fmt in FORMATS.values() if fmt.symmetric is not None],
}


# What each registered name is, for the descriptions (which the config's error messages quote).
DESCRIPTIONS = {"stacks": lambda: STACKS, "attacks": lambda: ATTACKS}


def with_enums(node):
    """A copy of a schema in which every node marked `x-registry: NAME` has the registry's NAME as its enum, and
    every node marked `x-registry-descriptions: NAME` describes each of those names after its own description."""
    if isinstance(node, list):
        return [with_enums(item) for item in node]
    if not isinstance(node, dict):
        return node
    filled = {key: with_enums(value) for key, value in node.items()}
    if "x-registry" in node:
        filled["enum"] = ENUMS[node["x-registry"]]()
    if "x-registry-descriptions" in node:
        specs = DESCRIPTIONS[node["x-registry-descriptions"]]().values()
        filled["description"] = f"{node['description']}: " + "; ".join(f"{s.name} ({s.description})" for s in specs)
    return filled
