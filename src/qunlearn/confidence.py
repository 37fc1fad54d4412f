"""Confidence from the items: a seeded bootstrap over each metric's items (VerbMem prompts, KnowMem questions).

Every model of a corpus answers the same items, so one draw of item indices per corpus and metric serves all of
its models and precisions at once: differences between two precisions of one model, or between a model and the
target, are paired. Where a cell (method × lr × precision while unlearning) has several unlearning seeds, each
resample also draws the seeds with replacement. The same inputs give the same intervals (the draws are seeded).
"""

from dataclasses import dataclass

import numpy as np

RESAMPLES = 2000
LEVEL = 0.95
SEED = 0
# A change of the recovery ratio smaller than this is "kept" (forgetting survives) when the whole interval lies
# below it; "recovered" when the interval lies above 0 otherwise; "unclear" else.
MARGIN = 0.1


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


def verdict(low: float, high: float) -> str:
    if np.isnan(low):
        return "undefined"  # the target scores 0: no recovery ratio
    if high < MARGIN:
        return "kept"
    return "recovered" if low > 0 else "unclear"


@dataclass(frozen=True)
class Draws:
    """One corpus' item draws for each metric, fixed by the corpus' name so that the summary's intervals do not
    depend on which other corpora it holds."""
    by_metric: dict[str, np.ndarray]

    @classmethod
    def for_corpus(cls, corpus: str, items_per_metric: dict[str, int]) -> "Draws":
        rng = np.random.default_rng([SEED, *corpus.encode()])
        return cls({metric: item_draws(n, rng) for metric, n in sorted(items_per_metric.items())})


def mean_over_seeds(samples_by_seed: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """[seeds, RESAMPLES] -> [RESAMPLES]: each resample averages seeds drawn with replacement (a single seed is
    taken as it is)."""
    seeds = samples_by_seed.shape[0]
    if seeds == 1:
        return samples_by_seed[0]
    drawn = rng.integers(0, seeds, size=(RESAMPLES, seeds))
    return samples_by_seed[drawn, np.arange(RESAMPLES)[:, None]].mean(axis=1)
