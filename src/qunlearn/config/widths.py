"""The width ladder (model.widths): each rung is the embedded models at another hidden size, scaled as Llama scales
width (the head size and the intermediate-to-hidden ratio kept, layers fixed), with its own calibrated recipe."""

from qunlearn.errors import QunlearnError

# Where the paper measured: Llama-2-7B's parameter count, the point the ladder's fit is extrapolated to.
PAPER_PARAMETERS = 6.74e9


def head_size(model: dict) -> int:
    return model["hidden"] // model["heads"]


def rung_model(model: dict, hidden: int) -> dict:
    """`model` (the config's, validated) as the rung of this hidden size builds and trains it: heads and
    intermediate scaled with hidden, the rung's own seeds, and its own pretraining and fine-tuning values (each
    mapping of the rung over the model's mapping of the same name)."""
    rung = rungs(model)[hidden]
    return {**model, "hidden": hidden, "heads": hidden // head_size(model),
            "intermediate": hidden * model["intermediate"] // model["hidden"],
            "seeds": rung.get("seeds", model["seeds"]),
            **{key: {**model[key], **value} for key, value in rung.items() if isinstance(value, dict)}}


def rungs(model: dict) -> dict[int, dict]:
    """The ladder's rungs by hidden size, in the config's order."""
    return {rung["hidden"]: rung for rung in model["widths"]}


def model_at(model: dict, width: int | None) -> dict:
    """The model config of one width: the run's own (None) or a rung's."""
    return model if width is None else rung_model(model, width)


def check_widths(model: dict) -> None:
    """Each rung once, none at the run's own width, and each a whole number of heads of the run's head size with
    a whole intermediate size."""
    seen = set()
    for index, rung in enumerate(model["widths"]):
        key, hidden = f"model.widths[{index}].hidden", rung["hidden"]
        if hidden == model["hidden"]:
            raise QunlearnError(f"{key}: {hidden} is model.hidden, the run's own width",
                                "remove the rung (the run's own width is always on the ladder)")
        if hidden in seen:
            raise QunlearnError(f"{key}: {hidden} is listed twice", "remove one of the two rungs")
        seen.add(hidden)
        if hidden % head_size(model) or hidden * model["intermediate"] % model["hidden"]:
            raise QunlearnError(f"{key}: {hidden} is not a whole number of heads of {head_size(model)} "
                                f"(model.hidden / model.heads) with a whole intermediate size",
                                f"choose a multiple of {head_size(model)}, e.g. {2 * model['hidden']}")


def parameter_count(hidden: int, layers: int, intermediate: int, vocab: int) -> int:
    """A Llama's parameters as build_llama makes it (untied embeddings, as many key-value heads as heads): the
    embedding and the output head, per layer four attention and three MLP matrices and two norms, the final norm."""
    return 2 * vocab * hidden + layers * (4 * hidden**2 + 3 * hidden * intermediate + 2 * hidden) + hidden


def ladder_parameters(model: dict, vocab: int) -> dict[int, int]:
    """Each width's parameter count: the run's own (model.hidden) and every rung's."""
    return {width: parameter_count(m["hidden"], m["layers"], m["intermediate"], vocab)
            for width, m in ((w or model["hidden"], model_at(model, w)) for w in [None, *rungs(model)])}
