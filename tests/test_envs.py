"""The conda environments (envs/*.yaml) agree with the pip install and give each rule what its script imports."""

import ast
import re
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
ENVS = sorted((REPO / "envs").glob("*.yaml"))
# Import name -> distribution, for the third-party modules the library imports at module level.
DISTRIBUTIONS = {"rouge_score": "rouge-score", "yaml": "pyyaml", "jinja2": "jinja2",
                 "optimi": "torch-optimi"}


def _normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _pins(text: str) -> dict[str, str]:
    pins = {}
    for line in text.splitlines():
        if "==" in line and not line.lstrip().startswith("#"):
            name, version = line.split("#")[0].strip().lstrip("- ").split("==")
            pins[_normalise(name)] = version.strip()
    return pins


def _env_pins(path: Path) -> dict[str, str]:
    dependencies = yaml.safe_load(path.read_text())["dependencies"]
    pip = next(d["pip"] for d in dependencies if isinstance(d, dict))
    return _pins("\n".join(p for p in pip if not p.startswith("--")))


def _rule_envs() -> dict[str, str]:
    """rule name -> its conda environment file, from workflow/rules/*.smk."""
    envs = {}
    for smk in (REPO / "workflow/rules").glob("*.smk"):
        for rule, env in re.findall(r'^rule (\w+):.*?conda:\s*"\.\./\.\./(envs/[\w-]+\.yaml)"', smk.read_text(), re.S | re.M):
            envs[rule] = env
    return envs


def _rule_scripts() -> dict[str, str]:
    scripts = {}
    for smk in (REPO / "workflow/rules").glob("*.smk"):
        for rule, script in re.findall(r'^rule (\w+):.*?script:\s*"\.\./(scripts/[\w]+\.py)"', smk.read_text(), re.S | re.M):
            scripts[rule] = f"workflow/{script}"
    return scripts


def _module_imports(path: Path) -> set[str]:
    """Modules imported when `path` is imported or run (module level only; function-level imports are lazy)."""
    names = set()
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            names.add(node.module)  # `from qunlearn.analysis import bootstrap` imports a module by its name too
            names |= {f"{node.module}.{alias.name}" for alias in node.names if node.module.startswith("qunlearn")}
    return names


def _lazy_implementations() -> dict[str, set[str]]:
    """rule -> the modules its jobs import through the registry's lazy names (registry.resolve)."""
    from qunlearn import registry

    def modules(names):
        return {name.partition(":")[0] for name in names if name}

    loaders = modules(backend.load for backend in registry.BACKENDS.values())
    return {
        "evaluate": loaders,
        "mechanism": loaders,
        "quantize": modules([registry.BACKENDS["llmcompressor"].quantize,
                             *(f.recipe for f in registry.FORMATS.values() if f.backend == "llmcompressor")]),
        "quantize_gguf": modules([registry.BACKENDS["gguf"].quantize]),
        "unlearn": modules([*(fn.impl for loss in registry.LOSSES.values() for fn in (loss.fn, *loss.variants.values())),
                            *(stack.impl for stack in registry.STACKS.values())]),
        "attack": modules(attack.impl for attack in registry.ATTACKS.values()),
        "plots": modules(figure.impl for figure in registry.FIGURES.values()),
    }


def _third_party(script: Path, lazy: set[str] = frozenset()) -> set[str]:
    """Distributions that importing `script` needs, following qunlearn's own modules (and the lazily named ones)."""
    seen, todo, needed = set(), [script], set()
    pending = set(lazy)
    while todo:
        for name in _module_imports(todo.pop()) | pending:
            top = name.split(".")[0]
            if top == "qunlearn":
                module = REPO / "src" / (name.replace(".", "/") + ".py")
                package = REPO / "src" / name.replace(".", "/") / "__init__.py"
                path = module if module.exists() else package
                if path.exists() and path not in seen:
                    seen.add(path)
                    todo.append(path)
            elif top not in sys.stdlib_module_names:
                needed.add(_normalise(DISTRIBUTIONS.get(top, top)))
        pending = set()
    return needed


def test_every_env_pins_what_the_pip_install_pins():
    locked = _pins((REPO / "constraints.txt").read_text())
    assert ENVS
    for env in ENVS:
        for name, version in _env_pins(env).items():
            assert locked.get(name) == version, f"{env.name}: {name}=={version}, constraints.txt has {locked.get(name)}"
        assert "python=3.11" in yaml.safe_load(env.read_text())["dependencies"]


def test_every_rule_names_an_existing_env_and_every_env_is_used():
    envs = _rule_envs()
    assert set(envs) == set(_rule_scripts()) and len(envs) >= 10
    assert {REPO / env for env in envs.values()} == set(ENVS)


@pytest.mark.parametrize("rule", sorted(_rule_scripts()))
def test_each_rules_env_has_what_its_script_imports(rule):
    env = _env_pins(REPO / _rule_envs()[rule])
    missing = _third_party(REPO / _rule_scripts()[rule], _lazy_implementations().get(rule, set())) - set(env)
    assert not missing, f"{rule} imports {sorted(missing)}, which {_rule_envs()[rule]} does not install"
