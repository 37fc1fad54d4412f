"""The config as the workflow reads it: numbers written as text made numbers where the schema asks for one, then
every schema mistake as one line naming its key, what is wrong and what to write instead. Torch-free: the Snakefile
runs this at every start, dry runs included, before Snakemake's own validation fills in the defaults."""

import copy
import difflib
import re
from collections.abc import Iterator
from pathlib import Path

import yaml
from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError

from qunlearn.errors import ConfigErrors, QunlearnError
from qunlearn.registry import with_enums

# YAML 1.2's (and JSON's) numbers. YAML 1.1, which PyYAML and so Snakemake read, takes `3e-5` for text (its floats
# need a dot), and Snakemake's --config parser gives every nested value as text.
NUMBER = re.compile(r"[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?")
INTEGER = re.compile(r"[-+]?[0-9]+")
BOOLEANS = {"true": True, "false": False}
TYPE_WORDS = {"number": "a number", "integer": "a whole number", "string": "text", "boolean": "true or false",
              "object": "a mapping (key: value)", "array": "a list", "null": "empty"}
# Each bound keyword: how the problem says it, how the fix says it.
BOUNDS = {"minimum": ("at least", "of {} or more"), "exclusiveMinimum": ("greater than", "above {}"),
          "maximum": ("at most", "of {} or less"), "exclusiveMaximum": ("less than", "below {}")}
# The schema's name patterns in words, with what a name becomes once the other characters are replaced.
NAME_RULES = {"^[A-Za-z0-9][A-Za-z0-9_.+-]*$": ("letters, digits and _ . + -, starting with a letter or digit",
                                                 lambda name: re.sub(r"[^A-Za-z0-9_.+-]+", "-", name).strip("_.+-"))}


def load_schema(path: str | Path) -> dict:
    """The config schema with the registry's names as its enums (methods, stacks, formats, attacks: registry.ENUMS)."""
    return with_enums(yaml.safe_load(Path(path).read_text()))


def validated(config: dict, schema: dict) -> dict:
    """A copy of `config` with its number strings coerced (`coerced`); every schema error at once as ConfigErrors."""
    config = coerced(config, schema)
    errors = schema_errors(config, schema)
    if errors:
        raise ConfigErrors(errors)
    # Then whole numbers where the schema wants any number become floats (alpha: 1 and 1.0 are one setting, and
    # Snakemake compares params as text); after the errors, which quote the value as it was written.
    return _coerce(config, schema, Draft202012Validator(schema), floats=True)


def coerced(config: dict, schema: dict) -> dict:
    """A copy of `config` where text that reads as a number (`3e-5`, `'8'`) is that number, and `'true'`/`'false'`
    a boolean, wherever the schema asks for one and does not take the text as it is; a whole float where only an
    integer is allowed becomes an int. Everything else is left for the schema to judge."""
    return _coerce(copy.deepcopy(config), schema, Draft202012Validator(schema))


def _coerce(value, node: dict, validator: Draft202012Validator, floats: bool = False):
    node = _resolved(node, validator.schema)
    if isinstance(value, dict):
        value = {key: _coerce(item, _property_schema(node, key), validator, floats) for key, item in value.items()}
    elif isinstance(value, list) and isinstance(node.get("items"), dict):
        value = [_coerce(item, node["items"], validator, floats) for item in value]
    else:
        value = _scalar(value, node, validator, floats)
    for branch in _branches(value, node, validator):
        value = _coerce(value, branch, validator, floats)
    return value


def _resolved(node: dict, root: dict) -> dict:
    """A local `$ref` (#/$defs/NAME) followed, its sibling keywords kept; the schema has no other kind of reference."""
    while "$ref" in node:
        target = root
        for part in node["$ref"].removeprefix("#/").split("/"):
            target = target[part]
        node = {**target, **{key: value for key, value in node.items() if key != "$ref"}}
    return node


def _property_schema(node: dict, key: str) -> dict:
    properties = node.get("properties", {})
    if key in properties:
        return properties[key]
    extra = node.get("additionalProperties")
    return extra if isinstance(extra, dict) else {}


def _branches(value, node: dict, validator: Draft202012Validator) -> list[dict]:
    """The sub-schemas that also apply to `value`: allOf/anyOf/oneOf's, and `then` or `else` as `if` decides."""
    branches = [*node.get("allOf", []), *node.get("anyOf", []), *node.get("oneOf", [])]
    if "if" in node:
        branch = node.get("then") if validator.evolve(schema=node["if"]).is_valid(value) else node.get("else")
        branches += [branch] if branch else []
    return branches


def _scalar(value, node: dict, validator: Draft202012Validator, floats: bool):
    wanted = _wanted_types(node)
    if isinstance(value, str) and wanted and not validator.evolve(schema=node).is_valid(value):
        if wanted & {"number", "integer"} and NUMBER.fullmatch(value.strip()):
            value = int(value) if INTEGER.fullmatch(value.strip()) else float(value)
        elif "boolean" in wanted and value.strip().lower() in BOOLEANS:
            return BOOLEANS[value.strip().lower()]
    if isinstance(value, float) and value.is_integer() and "integer" in wanted and "number" not in wanted:
        return int(value)
    if floats and isinstance(value, int) and not isinstance(value, bool) and "number" in wanted \
            and "integer" not in wanted:
        return float(value)
    return value


def _wanted_types(node: dict) -> set[str]:
    """The JSON types a node asks for: its `type`, and those of its `enum`'s values."""
    types = node.get("type", [])
    wanted = {types} if isinstance(types, str) else set(types)
    for allowed in node.get("enum", []):
        if isinstance(allowed, bool):
            wanted.add("boolean")
        elif isinstance(allowed, int | float):
            wanted.add("integer" if isinstance(allowed, int) else "number")
    return wanted


def schema_errors(config: dict, schema: dict) -> list[QunlearnError]:
    """Every schema error of `config`, each as `KEY.PATH: what is wrong (got VALUE)` and a fix, sorted by key."""
    found = {_described(leaf, schema) for error in Draft202012Validator(schema).iter_errors(config)
             for leaf in _leaves(error)}
    return [QunlearnError(problem, fix) for problem, fix in sorted(found - {None})]


def _leaves(error: ValidationError) -> Iterator[ValidationError]:
    """The errors to report for one: a oneOf/anyOf's branch errors when the value has the type of exactly one
    branch (an audited model's mapping with an unknown key), else the oneOf/anyOf itself."""
    if error.validator in ("oneOf", "anyOf") and error.context:
        branches = {}
        for sub in error.context:
            branches.setdefault(sub.relative_schema_path[0], []).append(sub)
        fitting = [subs for subs in branches.values()
                   if not any(sub.validator == "type" and not sub.relative_path for sub in subs)]
        if len(fitting) == 1:
            for sub in fitting[0]:
                yield from _leaves(sub)
            return
    yield error


def _described(error: ValidationError, root: dict) -> tuple[str, str] | None:
    """(`KEY.PATH: what is wrong (got VALUE)`, what to write instead) for one schema error; None when another error
    already says it."""
    where = _dotted(error.absolute_path)
    if "propertyNames" in error.absolute_schema_path:
        return _described_name(error, root, where)
    if error.validator in ("additionalProperties", "required"):
        return DESCRIBED_KEYS[error.validator](error, root, where)
    what, fix = DESCRIBED_VALUES.get(error.validator, _other)(error, root)
    return f"{where}: {what} (got {_shown(error.instance)})", fix


def _unknown_keys(error: ValidationError, root: dict, where: str) -> tuple[str, str]:
    allowed = list(error.schema.get("properties", {}))
    unknown = [key for key in error.instance if key not in allowed]
    return f"{where}: unknown {_plural('key', unknown)} {_listed(unknown, repr)}", _renamed(unknown, allowed)


def _missing_keys(error: ValidationError, root: dict, where: str) -> tuple[str, str]:
    """Keys the schema requires, each with its description; those an if/else requires say when."""
    missing = [key for key in error.validator_value if key not in error.instance]
    holder = _holder(root, error.absolute_schema_path, "else")
    properties = (holder or error.schema).get("properties", {})
    described = [f"{key} ({properties[key]['description']})" if "description" in properties.get(key, {}) else key
                 for key in missing]
    problem = f"{where}: missing {_plural('key', missing)} {_listed(missing, repr)}"
    fix = f"add {_listed(described, str, 'and')}"
    if holder is None:
        return problem, fix
    condition = _listed(holder["if"].get("required", []), repr, "and")
    return f"{problem} (needed without {condition})", f"{fix}, or give {condition}"


def _wrong_type(error: ValidationError, root: dict) -> tuple[str, str]:
    wanted = [error.validator_value] if isinstance(error.validator_value, str) else error.validator_value
    words, value, name = _listed(wanted, TYPE_WORDS.get, "or"), error.instance, _key(error.absolute_path)
    if "array" in wanted:
        fix = f"write a list, e.g. {name}: [{_yaml(value)}]"
    elif "object" in wanted and error.schema.get("properties"):
        fix = f"write a mapping with the keys {_listed(error.schema['properties'])}"
    elif "string" in wanted:
        fix = f"write it as text in quotes, e.g. {name}: '{value}'"
    else:
        fix = f"write {words}, without quotes{_example(error, root)}"
    return f"must be {words}", fix


def _not_allowed(error: ValidationError, root: dict) -> tuple[str, str]:
    """An enum's value; the nearest allowed text first (a number gets no guess: 0.45 is not nearer 0.4 as text)."""
    allowed = error.validator_value
    nearest = _nearest(error.instance, allowed) if isinstance(error.instance, str) else None
    choices = f"write one of {_listed(allowed, _yaml)}"
    return "not an allowed value", f"did you mean {nearest!r}? {choices}" if nearest else choices


def _out_of_bounds(error: ValidationError, root: dict) -> tuple[str, str]:
    must, fix = BOUNDS[error.validator]
    bound = error.validator_value
    return f"must be {must} {bound}", f"write a number {fix.format(bound)}{_example(error, root)}"


def _too_few_items(error: ValidationError, root: dict) -> tuple[str, str]:
    least = error.validator_value
    return f"must list at least {least} {_plural('value', range(least))}", \
        f"list at least {least}{_example(error, root)}"


def _too_few_entries(error: ValidationError, root: dict) -> tuple[str, str]:
    least = error.validator_value
    return f"must have at least {least} {'entries' if least > 1 else 'entry'}", \
        f"add one: {error.schema.get('description', 'see workflow/schemas/config.schema.yaml')}"


def _no_match(error: ValidationError, root: dict) -> tuple[str, str]:
    """A text value's pattern; a literal one (^auto$) is said as the word, with the other types the key takes."""
    literal = re.fullmatch(r"\^([\w-]+)\$", error.validator_value)
    others = [TYPE_WORDS[t] for t in _wanted_types(error.schema) - {"string"}]
    allowed = _listed([*others, repr(literal[1])], str, "or") if literal else f"text matching {error.validator_value}"
    return f"must be {allowed}", f"write {allowed}{_example(error, root)}"


def _no_branch(error: ValidationError, root: dict) -> tuple[str, str]:
    wanted = _listed([_branch_words(branch) for branch in error.validator_value], str, "or")
    return f"must be {wanted}", f"write {wanted}"


def _other(error: ValidationError, root: dict) -> tuple[str, str]:
    return error.message, "see workflow/schemas/config.schema.yaml for what this key takes"


DESCRIBED_KEYS = {"additionalProperties": _unknown_keys, "required": _missing_keys}
DESCRIBED_VALUES = {"type": _wrong_type, "enum": _not_allowed, **dict.fromkeys(BOUNDS, _out_of_bounds),
                    "minItems": _too_few_items, "minProperties": _too_few_entries, "pattern": _no_match,
                    "uniqueItems": lambda error, root: ("lists a value more than once", "list each value once"),
                    "oneOf": _no_branch, "anyOf": _no_branch}


def _described_name(error: ValidationError, root: dict, where: str) -> tuple[str, str] | None:
    """A key of a mapping whose keys the schema restricts (propertyNames): a label, a rule name, or a key that an
    if/then allows only without another key (a real corpus' paths next to `embedded`)."""
    name, keyword = error.instance, error.validator_value
    if error.validator == "pattern":
        words, renamed = NAME_RULES.get(keyword, (f"text matching {keyword}", lambda _: ""))
        fix = f"rename it, e.g. {renamed(name)!r}" if re.fullmatch(keyword, renamed(name)) else "rename it"
        return f"{where}: the name {name!r} is not allowed (names are {words})", fix
    holder = _holder(root, error.absolute_schema_path, "then")
    if holder is None:
        return f"{where}: unknown key {name!r}", _renamed([name], keyword)
    if name not in holder.get("properties", {}):
        return None  # a key unknown everywhere: additionalProperties names it
    condition, otherwise = _listed(holder["if"].get("required", []), repr, "and"), holder.get("else", {})
    return f"{where}: key {name!r} is not allowed together with {condition}", \
        f"with {condition} the keys are {_listed(keyword)}; without it, give {_listed(otherwise.get('required', []))}"


def _holder(root: dict, schema_path, keyword: str) -> dict | None:
    """The schema node that holds `keyword` (then/else) on an error's schema path, or None."""
    parts = list(schema_path)
    return _node(root, parts[:parts.index(keyword)]) if keyword in parts else None


def _node(root: dict, parts: list) -> dict:
    """The schema node at a schema path, through $refs."""
    node = root
    for part in parts:
        node = _resolved(node, root)[part] if isinstance(node, dict) else node[part]
    return _resolved(node, root)


def _branch_words(branch: dict) -> str:
    if branch.get("type") == "object" and branch.get("properties"):
        return f"a mapping with the keys {_listed(branch['properties'], str)}"
    wanted = branch.get("type", [])
    return _listed([wanted] if isinstance(wanted, str) else wanted, TYPE_WORDS.get, "or")


def _renamed(unknown: list[str], allowed: list[str]) -> str:
    """Rename each unknown key to its nearest allowed one, else remove it; the allowed keys follow."""
    steps = []
    for key in unknown:
        nearest = _nearest(key, allowed)
        steps.append(f"rename {key!r} to {nearest!r}" if nearest else f"remove {key!r}")
    return f"{'; '.join(steps)} (keys here: {_listed(allowed, str)})"


def _nearest(text: str, allowed: list) -> str | None:
    """difflib's closest match, else an allowed name that this one abbreviates or extends (lrate: lr)."""
    names = [str(name) for name in allowed]
    close = difflib.get_close_matches(str(text), names, n=1)
    extended = [name for name in names if name.startswith(str(text)) or str(text).startswith(name)]
    return (close or extended or [None])[0]


def _example(error: ValidationError, root: dict) -> str:
    """`, e.g. KEY: DEFAULT` from the schema's default for the key, or for the list the value is an item of."""
    if "default" in error.schema and error.absolute_path:
        return f", e.g. {error.absolute_path[-1]}: {_yaml(error.schema['default'])}"
    schema_path = list(error.absolute_schema_path)
    if schema_path[-2:-1] == ["items"] and len(error.absolute_path) > 1:
        listing = _node(root, schema_path[:-2])
        if "default" in listing:
            return f", e.g. {error.absolute_path[-2]}: {_yaml(listing['default'])}"
    return ""


def _dotted(path) -> str:
    """['quantization', 'formats', 0, 'bits'] -> quantization.formats[0].bits"""
    text = "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in path).lstrip(".")
    return text or "top level"


def _key(path) -> str:
    """The innermost key of a path (formats[0].bits: bits; lrs[0]: lrs)."""
    return next((str(part) for part in reversed(path) if not isinstance(part, int)), "config")


def _plural(word: str, items) -> str:
    return word if len(items) == 1 else f"{word}s"


def _listed(items, word=str, last: str = "") -> str:
    words = [word(item) for item in items]
    if last and len(words) > 1:
        return f"{', '.join(words[:-1])} {last} {words[-1]}"
    return ", ".join(words)


def _shown(value, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit - 3] + "..."


def _yaml(value) -> str:
    """As a YAML file would have it (floats with a dot: 5.0e-05, which YAML 1.1 reads as a number)."""
    return yaml.safe_dump(value, default_flow_style=True, width=1000).removesuffix("\n...\n").strip()
