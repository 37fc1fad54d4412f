"""Confidence from the items, the unlearning seeds and the targets: a seeded, paired, hierarchical bootstrap.

Every model of a corpus answers the same items, so one draw of item indices per corpus and metric serves all of
its models, targets and precisions at once: differences between two precisions of one model, between a model and
its target, or between two precision stacks, are paired. Where a cell (method × lr × precision while unlearning)
has several targets (the fine-tuning seeds) and several unlearning seeds per target, each resample draws the
targets with replacement, then the unlearning seeds within each drawn target, over those item draws. The same
inputs give the same intervals (the draws are seeded).
"""

from dataclasses import dataclass

import numpy as np

RESAMPLES = 2000
LEVEL = 0.95
SEED = 0


def item_draws(n_items: int, rng: np.random.Generator) -> np.ndarray:
    """[RESAMPLES, n_items] indices, drawn with replacement."""
    return rng.integers(0, n_items, size=(RESAMPLES, n_items))


def resampled_means(items, draws: np.ndarray) -> np.ndarray:
    """The mean of the items under each resample: [RESAMPLES]."""
    return np.asarray(items, dtype=float)[draws].mean(axis=1)


def interval(samples: np.ndarray) -> tuple[float, float]:
    """The percentile interval at LEVEL of the finite samples (a ratio is undefined where the target's resampled
    metric is 0); NaN if there are none."""
    finite = samples[np.isfinite(samples)]
    if not finite.size:
        return float("nan"), float("nan")
    tail = (1 - LEVEL) / 2 * 100
    low, high = np.percentile(finite, [tail, 100 - tail])
    return float(low), float(high)


@dataclass(frozen=True)
class Draws:
    """One corpus' item draws for each metric, fixed by the corpus' name so that the summary's intervals do not
    depend on which other corpora it holds."""
    by_metric: dict[str, np.ndarray]

    @classmethod
    def for_corpus(cls, corpus: str, items_per_metric: dict[str, int]) -> "Draws":
        rng = np.random.default_rng([SEED, *corpus.encode()])
        return cls({metric: item_draws(n, rng) for metric, n in sorted(items_per_metric.items())})


def seed_mean(samples_by_seed: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """[seeds, RESAMPLES] -> [RESAMPLES]: each resample averages the seeds drawn with replacement (a single seed
    is taken as it is)."""
    seeds = samples_by_seed.shape[0]
    if seeds == 1:
        return samples_by_seed[0]
    drawn = rng.integers(0, seeds, size=(RESAMPLES, seeds))
    return samples_by_seed[drawn, np.arange(RESAMPLES)[:, None]].mean(axis=1)


def target_mean(samples_by_target: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """[targets, RESAMPLES] -> [RESAMPLES]: each resample averages the targets drawn with replacement (a single
    target is taken as it is). Draw once per group, over every cell's targets, so that cells unlearned from the same
    targets move together."""
    return seed_mean(samples_by_target, rng)


def hierarchical_mean(samples_by_target: list[np.ndarray], rng: np.random.Generator) -> np.ndarray:
    """[targets][seeds, RESAMPLES] -> [RESAMPLES]: the unlearning seeds resampled within each target, then the
    targets resampled; each target's seed draw serves every time the target is drawn. Targets may have different
    numbers of seeds."""
    return target_mean(np.stack([seed_mean(samples, rng) for samples in samples_by_target]), rng)
