"""A checkpoint folder's files, read without torch (the Snakefile checks audited models with these at every start):
its safetensors shards, their tensor shapes and its config.json."""

from pathlib import Path

from safetensors import SafetensorError, safe_open

from qunlearn.errors import QunlearnError
from qunlearn.io import read_json

PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".pkl", ".ckpt")
INDEX = "model.safetensors.index.json"


def check_checkpoint(path: str | Path) -> list[Path]:
    """Return the checkpoint's safetensors files (every shard its index names, or every .safetensors file) after
    checking that each one opens; refuse pickled weights."""
    shards = _shards(path)
    for shard in shards:
        _open(shard, lambda handle: handle.keys())
    return shards


def _shards(path: str | Path) -> list[Path]:
    """The checkpoint's safetensors files, unopened; a clear error for a missing folder or pickled weights."""
    path = Path(path)
    if not path.is_dir():
        raise QunlearnError(f"checkpoint folder {path} does not exist", "point the config at a local Hugging Face model folder")
    if not (path / "config.json").is_file():
        raise QunlearnError(f"{path} is not a model checkpoint (no config.json)", "point the config at a Hugging Face model folder")
    shards = _indexed_shards(path) if (path / INDEX).is_file() else sorted(path.glob("*.safetensors"))
    if not shards:
        pickled = [p.name for p in path.iterdir() if p.suffix in PICKLE_SUFFIXES]
        detail = f" (found pickle files {pickled}, which qunlearn never loads)" if pickled else ""
        raise QunlearnError(
            f"{path} has no .safetensors weights{detail}",
            "on a trusted machine, load it with transformers and save it again with model.save_pretrained(folder), "
            "which writes safetensors",
        )
    return shards


def _indexed_shards(path: Path) -> list[Path]:
    weight_map = read_json(path / INDEX).get("weight_map")
    if not isinstance(weight_map, dict) or not weight_map:
        raise QunlearnError(f"{path / INDEX} has no weight_map", "re-save the checkpoint with save_pretrained")
    shards = [path / name for name in sorted(set(weight_map.values()))]
    missing = [shard.name for shard in shards if not shard.is_file()]
    if missing:
        raise QunlearnError(f"{path / INDEX} names shards that are missing: {missing}", "copy the whole checkpoint folder")
    return shards


def _open(shard: Path, read):
    """`read(handle)` on an open shard (numpy framework: no torch), as a clear error when the file is damaged."""
    try:
        with safe_open(shard, "numpy") as handle:  # parses the header and checks it against the file size
            return read(handle)
    except (SafetensorError, OSError, ValueError) as error:
        raise QunlearnError(f"corrupt or truncated checkpoint file {shard}: {error}", _damaged_fix(shard)) from None


def _damaged_fix(shard: Path) -> str:
    """The workflow rebuilds what it wrote (under results/); a user's checkpoint has to come again from its source."""
    if Path("results").resolve() in shard.resolve().parents:
        return "delete its folder and re-run: Snakemake rebuilds it"
    return "copy the checkpoint folder again from where it came from (or save the model again with save_pretrained)"


def tensor_shapes(path: str | Path) -> dict[str, tuple[int, ...]]:
    """Every tensor's shape, from the shards' headers (no weight is read); opening each shard checks it as
    `check_checkpoint` does."""
    shapes = {}
    for shard in _shards(path):
        shapes.update(_open(shard, lambda handle: {name: tuple(handle.get_slice(name).get_shape()) for name in handle.keys()}))
    return shapes


def model_config(path: str | Path) -> dict:
    config = read_json(Path(path) / "config.json")
    if not isinstance(config, dict):
        raise QunlearnError(f"{Path(path) / 'config.json'} is not a JSON object", "re-save the checkpoint with save_pretrained")
    return config


def tokenizer_vocabulary(path: str | Path) -> dict[str, int]:
    """A fast tokenizer's vocabulary (token -> id, added tokens included), from its tokenizer.json."""
    from tokenizers import Tokenizer

    file = Path(path) / "tokenizer.json"
    if not file.is_file():
        raise QunlearnError(f"{path} has no tokenizer.json",
                            "save the tokenizer there with AutoTokenizer.from_pretrained(...).save_pretrained(folder)")
    try:
        return Tokenizer.from_file(str(file)).get_vocab(with_added_tokens=True)
    except Exception as error:  # the tokenizers library raises a bare Exception on a malformed file
        raise QunlearnError(f"{file} cannot be read: {error}", "re-save the tokenizer with save_pretrained") from None



def hidden_size(path: str | Path) -> int:
    """A checkpoint's width, as its config.json gives it (the summary's `width` for a real model)."""
    if not (Path(path) / "config.json").is_file():
        raise QunlearnError(f"{path} is not a model checkpoint (no config.json)", "point the config at a Hugging Face model folder")
    config = model_config(path)
    if not isinstance(config.get("hidden_size"), int):
        raise QunlearnError(f"{Path(path) / 'config.json'} has no hidden_size", "point the config at a Llama-family checkpoint")
    return config["hidden_size"]
