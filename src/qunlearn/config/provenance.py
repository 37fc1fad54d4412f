"""What each job and each result depends on: the settings an unlearning, quantization or training job reads from the
config (passed as `params:`, so that changing one re-runs exactly its jobs), and the summary's key columns and
provenance hash of one metrics file. Torch-free: the Snakefile computes these for every job at start-up."""

from dataclasses import dataclass, field

from qunlearn.audit import AuditedModel
from qunlearn.config.checks import adapters_by_id, attack_settings, group_size, settings_hash
from qunlearn.config.naming import MERGED_DTYPES, ModelId, UnlearnedName
from qunlearn.config.widths import model_at
from qunlearn.registry import FORMATS as FORMAT_SPECS
from qunlearn.registry import backend, method

UNLEARN_KEYS = ("epochs", "batch_size", "max_len", "alpha", "beta", "loss_variant")
TRAINING_KEYS = ("epochs", "batch_size", "lr", "warmup_steps")
ARCHITECTURE_KEYS = ("hidden", "layers", "heads", "intermediate", "max_position")
FULL_PRECISION = {"quantizer": "none", "bits": 32}
# An adapter is unlearned as the common setup has it: its weights and AdamW in fp32 (the fp32 stack over the
# trainable weights), the frozen target loaded in bf16 (docs/adapters.md).
ADAPTER_STACK, ADAPTER_BASE_DTYPE = "fp32", "bf16"
# served-q4: the adapter rounded to 4 bits on an asymmetric group-wise grid (RTN-4's default), groups of
# quantization.group_size
SERVED_ADAPTER_BITS, SERVED_ADAPTER_SYMMETRIC = 4, False


@dataclass(frozen=True)
class Provenance:
    config: dict  # validated, defaults filled
    formats: dict[str, dict]  # the config's quantized formats by id (config.format_id_of)
    attacks: dict[str, dict]  # the config's attacks by id, every knob filled (config.attack_specs)
    audited: dict[str, dict[str, AuditedModel]]  # per corpus, the audited models by label
    real_widths: dict[str, int] = field(default_factory=dict)  # per real corpus, its target's hidden size (config.json's hidden_size)

    def audited_of(self, model: ModelId) -> AuditedModel | None:
        return self.audited[model.corpus].get(model.name) if model.role == "audited" else None

    def unlearn_settings(self, unlearned: str) -> dict:
        """The unlearning job's settings; a serving's are its adapter's (one unlearning job serves them all)."""
        name = UnlearnedName.parse(UnlearnedName.parse(unlearned).trained)
        unlearning = self.config["unlearning"]
        settings = {"method": name.method, "lr": float(name.lr), "precision": name.stack, "seed": name.seed,
                    **{key: unlearning[key] for key in UNLEARN_KEYS}}
        if name.adapter:  # only adapters' settings gain keys: the full-weight models' stay cached
            spec = adapters_by_id(self.config)[name.adapter]
            settings.update(precision=ADAPTER_STACK, adapter={
                "rank": spec["rank"], "alpha": spec["alpha"], "target_modules": spec["target_modules"],
                "base_dtype": ADAPTER_BASE_DTYPE})
        return settings

    def serving_settings(self, unlearned: str) -> dict | None:
        """How an adapter is served (None: not a serving): the dtype it is merged in, or, served unmerged, how the
        adapter itself is rounded (None: kept at full precision)."""
        serving = UnlearnedName.parse(unlearned).serving
        if serving is None:
            return None
        if serving in MERGED_DTYPES:
            return {"serving": serving, "dtype": MERGED_DTYPES[serving]}
        quantization = self.config["quantization"]
        rounded = {"bits": SERVED_ADAPTER_BITS, "group_size": quantization["group_size"],
                   "symmetric": SERVED_ADAPTER_SYMMETRIC} if serving == "served-q4" else None
        return {"serving": serving, "adapter_quantization": rounded}

    def sure_settings(self, unlearned: str) -> dict | None:
        """SURE's gamma and mask for a _sure method, None otherwise."""
        if not method(UnlearnedName.parse(unlearned).method).sure:
            return None
        sure = self.config["unlearning"]["sure"]
        return {"gamma": sure["gamma"], "mask": sure["mask"]}

    def quantize_settings(self, format_id: str) -> dict:
        fmt = self.formats[format_id]
        quantizer, spec = fmt["quantizer"], FORMAT_SPECS[fmt["quantizer"]]
        if not backend(quantizer).saved:
            return {"quantizer": quantizer, "bits": fmt["bits"]}
        quantization = self.config["quantization"]
        return {
            "quantizer": quantizer,
            "bits": fmt["bits"],
            "group_size": group_size(fmt, quantization),
            "symmetric": quantization["symmetric"].get(quantizer, spec.symmetric),  # None: no choice (FP4, GGUF)
            "calibration": quantization["calibration"] if spec.calibrated else None,
        }

    def attack_settings(self, attack_id: str) -> dict:
        return attack_settings(self.attacks[attack_id], self.config)

    def training_settings(self, stage: str, width: int | None = None) -> dict:
        """One stage of the embedded models' training (pretrain or finetune) at a width: its loop's settings."""
        model = model_at(self.config["model"], width)
        return {**{key: model[stage][key] for key in TRAINING_KEYS}, "train_len": model["train_len"]}

    def architecture(self, width: int | None = None) -> dict:
        return {key: model_at(self.config["model"], width)[key] for key in ARCHITECTURE_KEYS}

    def width_of(self, model: ModelId) -> int | None:
        """The summary's `width`: a rung's hidden size, the run's own for an embedded corpus, and for a real
        corpus its target's (given by path: the DAG reads its config.json, checked to exist)."""
        if model.width is not None:
            return model.width
        corpus = self.config["corpora"][model.corpus]
        return self.config["model"]["hidden"] if "embedded" in corpus else self.real_widths[model.corpus]

    def result_settings(self, model: ModelId, format_id: str) -> dict:
        """Every config value one metrics file depends on, from the corpus to the evaluation."""
        config, audited, grid = self.config, self.audited_of(model), model.role == "unlearned"
        audited_settings = {"audited": vars(audited)} if audited else None
        return {
            "seed": config["seed"],
            "corpus": config["corpora"][model.corpus],
            "tokenizer": config["tokenizer"],
            # pretraining and fine-tuning; a target's own seed is target_seed (adding a seed changes no other result),
            # a rung's settings are `width`'s (adding a rung changes no other width's result)
            "model": {key: value for key, value in config["model"].items() if key not in ("seeds", "widths")},
            "target_seed": model.target_seed,
            **({"width": self.rung_settings(model.width)} if model.width is not None else {}),
            "unlearning": self.unlearn_settings(model.name) if grid else audited_settings,
            "sure": self.sure_settings(model.name) if grid else None,
            "checkpoint": config["unlearning"]["checkpoint"] if grid else None,
            "shards": config["unlearning"]["shards"] if grid else None,
            "quantization": self.quantize_settings(format_id) if format_id in self.formats else None,
            "evaluation": config["evaluation"],
            # only attacked rows: the other rows' hashes stay as they were before attacks existed
            **({"attack": self.attack_settings(format_id)} if format_id in self.attacks else {}),
            # only adapters' servings, likewise
            **({"serving": self.serving_settings(model.name)} if grid and model.unlearned.serving else {}),
        }

    def rung_settings(self, width: int) -> dict:
        """What a width rung's models depend on beyond the run's own model settings: its whole model config."""
        return {key: value for key, value in model_at(self.config["model"], width).items()
                if key not in ("seeds", "widths")}  # a target's own seed is target_seed

    def summary_row(self, model: ModelId, format_id: str) -> dict:
        """The summary's key columns for one metrics file (format_id: full, a format's or an attack's id)."""
        name, audited = model.unlearned, self.audited_of(model)
        fmt = self.formats.get(format_id, FULL_PRECISION)
        saved = fmt["quantizer"] != "none" and backend(fmt["quantizer"]).saved
        return dict(
            corpus=model.corpus,
            rung=model.width or 0,  # the width ladder's rung (model.widths), 0 at the run's own width
            width=self.width_of(model),
            target_seed=model.target_seed,
            model=model.name,
            audited=audited is not None,
            method=name.method if name else audited.method if audited else "",
            lr=name.lr if name else (audited.lr or "") if audited else "",
            stack=name.stack if name else audited.stack if audited else "",
            seed=name.seed if name else "",
            format=format_id,
            quantizer=fmt["quantizer"],
            bits=fmt["bits"],
            group_size=group_size(fmt, self.config["quantization"]) if saved else "",
            attack=format_id if format_id in self.attacks else "",
            config_hash=settings_hash(self.result_settings(model, format_id)),
        )
