"""docs/extending.md's promise: a new loss, format, stack or attack is its own module and its spec, nothing else.
A toy extension registers one of each from a module named in the config's `extensions:`, and the workflow plans a
grid of them without any edit to qunlearn."""

import subprocess
import sys
import textwrap

import pytest
import yaml
from conftest import REPO, snakemake_with

from qunlearn import registry
from qunlearn.config.checks import attack_id, attack_spec
from qunlearn.config.schema import load_schema
from qunlearn.errors import QunlearnError
from qunlearn.workflow import job_counts

TOY_EXTENSION = '''
from qunlearn.registry import Attack, Format, Loss, LossFn, Stack, register

def unlikelihood_loss(ctx, batch):  # a toy forget loss: never called by a dry run
    raise NotImplementedError

def noise_label(spec):
    return f"noise-{spec['steps']}"

def noise_settings(spec, config):
    return spec

register(
    Loss("ul", "forget", LossFn("toy_extension:unlikelihood_loss", "label_tokens")),
    Format("rtn-sym", (4, 8), "llmcompressor", "qunlearn.quantize.llmcompressor:rtn_recipe", symmetric=True),
    Stack("bf16-copy", "qunlearn.unlearn.stacks:BF16", "pure bf16 under another name"),
    Attack("noise", "toy_extension:add_noise", {"steps": 1}, "toy_extension:noise_label",
           "toy_extension:noise_settings", trains=False),
)
'''


@pytest.fixture
def toy_registry(tmp_path, monkeypatch):
    """The toy extension importable (on sys.path and PYTHONPATH for the workflow) and registered; every registry is
    restored in place afterwards (the modules that imported a registry hold the same dicts)."""
    (tmp_path / "toy_extension.py").write_text(textwrap.dedent(TOY_EXTENSION))
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("PYTHONPATH", str(tmp_path))
    saved = {kind: dict(specs) for kind, specs in registry.REGISTRIES.items()}
    registry.import_extensions(["toy_extension"])
    yield tmp_path
    sys.modules.pop("toy_extension", None)
    for kind, specs in registry.REGISTRIES.items():
        specs.clear()
        specs.update(saved[kind])


def test_a_registered_loss_composes_methods_that_derive_their_properties(toy_registry):
    methods = registry.methods()
    assert {"ul", "ul_gdr", "ul_klr", "ul_gdr_sure"} <= set(methods)
    assert methods["ul_gdr"].constrained and not methods["ul"].constrained
    assert methods["ul_klr"].frozen and not methods["ul_gdr"].frozen  # KLR reads the frozen target, UL does not
    assert "ul_gdr" in registry.constrained_methods()
    assert attack_id(attack_spec({"kind": "noise"})) == "noise-1"


def test_the_toy_registry_is_gone_after_the_test():
    assert "ul" not in registry.LOSSES and "rtn-sym" not in registry.FORMATS and "noise" not in registry.ATTACKS


def test_a_grid_of_registered_specs_plans_without_editing_qunlearn(toy_registry):
    preset = yaml.safe_load((REPO / "presets/ci.yaml").read_text())
    preset["extensions"] = ["toy_extension"]
    preset["unlearning"].update(methods=["ul_gdr", "ga_klr"], precisions=["bf16-copy"])
    preset["quantization"]["formats"] = [{"quantizer": "rtn-sym", "bits": 4}, {"quantizer": "bnb-fp4", "bits": 4}]
    preset["attacks"] = [{"kind": "noise", "steps": 2}]
    config = toy_registry / "toy.yaml"
    config.write_text(yaml.safe_dump(preset))
    dry = subprocess.run([*snakemake_with(config), "-n", "--cores", "1", "--directory", str(toy_registry)],
                         capture_output=True, text=True)
    assert dry.returncode == 0, dry.stderr[-3000:]
    counts = job_counts(dry.stdout)
    models = 2 + 2  # target, retrain, and the two methods in the one toy stack
    assert counts["unlearn"] == 2 and counts["quantize"] == models  # rtn-sym is written by llmcompressor's rule
    assert counts["attack"] == models and counts["evaluate"] == models * (1 + 2 + 1)  # full, two formats, the attack
    for planned in ("ul_gdr_lr1e-4_bf16-copy_s0", "rtn-sym-w4g32", "noise-2"):
        assert planned in dry.stdout, planned


def test_an_unknown_extension_is_one_line_naming_the_fix(tmp_path):
    preset = yaml.safe_load((REPO / "presets/ci.yaml").read_text())
    preset["extensions"] = ["no_such_extension"]
    config = tmp_path / "bad.yaml"
    config.write_text(yaml.safe_dump(preset))
    dry = subprocess.run([*snakemake_with(config), "-n", "--cores", "1", "--directory", str(tmp_path)],
                         capture_output=True, text=True)
    assert dry.returncode != 0 and "extensions: cannot import 'no_such_extension'" in dry.stdout + dry.stderr
    assert "Traceback" not in dry.stdout + dry.stderr


@pytest.mark.parametrize("spec,problem", [
    (registry.Loss("u_l", "forget", registry.LossFn("m:f", "sequences")), "loss name 'u_l'"),
    (registry.Stack("bf16_copy", "m:S", ""), "stack name 'bf16_copy'"),
])
def test_names_that_would_not_parse_back_are_refused(spec, problem):
    with pytest.raises(QunlearnError, match=problem):
        registry.register(spec)


def test_no_method_loss_format_or_attack_is_named_outside_its_spec():
    """A method's constrained-ness, a format's backend or an attack's kind is read from its spec: no module but the
    registry (and the spec-named implementation modules' own docstrings) spells a registered method, loss, format or
    attack name as a string, so that a hand-kept list (`CONSTRAINED = ("ga_gdr", ...)`, `if quantizer == "awq"`)
    fails here. Stack names are left out: bf16 and fp32 are also dtypes."""
    import ast
    import re

    names = {*registry.methods(), *registry.LOSSES, *registry.FORMATS, *registry.ATTACKS}
    # the model's training stages are config keys too (model.finetune; finetune is also an attack)
    stages = set(load_schema(str(REPO / "workflow/schemas/config.schema.yaml"))["properties"]["model"]["properties"])
    found = []
    for path in [*(REPO / "src/qunlearn").rglob("*.py"), *(REPO / "workflow/scripts").glob("*.py")]:
        if path.name == "registry.py":
            continue
        tree = ast.parse(path.read_text())
        docstrings = {id(node.body[0].value) for node in ast.walk(tree)
                      if isinstance(node, (ast.Module, ast.FunctionDef, ast.ClassDef)) and node.body
                      and isinstance(node.body[0], ast.Expr)}
        found += [f"{path.relative_to(REPO)}:{node.lineno} {node.value!r}" for node in ast.walk(tree)
                  if isinstance(node, ast.Constant) and node.value in names - stages and id(node) not in docstrings]
    rules = {rule for path in (REPO / "workflow/rules").glob("*.smk")
             for rule in re.findall(r"^rule (\w+):", path.read_text(), re.M)}  # finetune is a rule and an attack
    for path in (REPO / "workflow/rules").glob("*.smk"):
        found += [f"{path.relative_to(REPO)}: {name!r}" for name in names - rules if f'"{name}"' in path.read_text()]
    assert found == []
