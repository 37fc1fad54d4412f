import numpy as np
import pytest

from qunlearn.analysis import bootstrap, verdicts


def test_the_interval_covers_a_known_mean_at_about_the_nominal_rate():
    covered = 0
    for trial in range(100):
        rng = np.random.default_rng(trial)
        items = rng.exponential(scale=30.0, size=80)  # skewed, like ROUGE scores; the true mean is 30
        low, high = bootstrap.interval(bootstrap.resampled_means(items, bootstrap.item_draws(80, rng)))
        covered += low <= 30.0 <= high
    assert covered >= 90  # 95% nominal (93 here); the percentile bootstrap runs a little short on skewed data


def test_the_same_items_give_the_same_draws_and_intervals():
    first = bootstrap.Draws.for_corpus("toy-news", {"verbmem_f": 40, "knowmem_f": 80})
    again = bootstrap.Draws.for_corpus("toy-news", {"knowmem_f": 80, "verbmem_f": 40})
    other = bootstrap.Draws.for_corpus("toy-books", {"verbmem_f": 40, "knowmem_f": 80})
    assert all(np.array_equal(first.by_metric[m], again.by_metric[m]) for m in first.by_metric)
    assert not np.array_equal(first.by_metric["knowmem_f"], other.by_metric["knowmem_f"])


@pytest.mark.parametrize("estimate, low, high, expected", [
    (0.13, 0.03, 0.24, "recovered"),  # above 0 and at least the margin
    (0.06, 0.01, 0.14, "unclear"),  # above 0, but a change smaller than the margin is not called a recovery
    (0.10, 0.01, 0.19, "recovered"),  # exactly the margin
    (0.01, -0.02, 0.05, "kept"),  # the whole interval below the margin
    (0.02, -0.07, 0.10, "unclear"),  # the interval reaches the margin
    (0.05, -0.10, 0.20, "unclear"),
])
def test_the_verdict_has_the_margin_on_both_sides(estimate, low, high, expected):
    assert verdicts.verdict(estimate, low, high, margin=0.1) == expected


def test_the_verdict_follows_the_configured_margin_and_is_undefined_without_an_interval():
    assert verdicts.verdict(0.06, 0.01, 0.14, margin=0.05) == "recovered"
    assert verdicts.verdict(0.01, -0.02, 0.04, margin=0.03) == "unclear"
    low, high = bootstrap.interval(np.array([np.inf, np.nan]))  # the target scored 0 in every resample
    assert np.isnan(low) and verdicts.verdict(0.0, low, high) == "undefined"


@pytest.mark.parametrize("low, high, expected", [
    (0.01, 0.2, "higher"), (-0.2, -0.01, "lower"), (-0.01, 0.2, "unclear"), (0.0, 0.1, "unclear"),
    (-0.02, 0.01, "same"), (0.01, 0.05, "same"), (-0.09, -0.08, "same"), (-0.11, 0.05, "unclear"),
    (float("nan"), float("nan"), "undefined"),
])
def test_a_contrast_s_direction_is_where_its_interval_lies_against_0_and_the_margin(low, high, expected):
    """RTN-8's bf16 − fp32 of the 4e8c386 run, −0.00 [−0.02, +0.01], is `same`; an interval reaching the margin
    is not."""
    assert verdicts.direction(low, high, margin=0.1) == expected


def test_with_one_target_the_hierarchical_mean_is_the_mean_over_resampled_seeds():
    """The single-target run's intervals (before targets were a dimension) are reproduced draw for draw."""
    seeds = np.random.default_rng(1).normal(size=(3, bootstrap.RESAMPLES))
    drawn = np.random.default_rng(2).integers(0, 3, size=(bootstrap.RESAMPLES, 3))
    expected = seeds[drawn, np.arange(bootstrap.RESAMPLES)[:, None]].mean(axis=1)
    assert np.array_equal(bootstrap.hierarchical_mean([seeds], np.random.default_rng(2)), expected)
    one = seeds[:1]
    assert np.array_equal(bootstrap.hierarchical_mean([one], np.random.default_rng(0)), one[0])


def _cell(rng, target_effects, seeds=2, items=60):
    """One cell's resampled change as [targets][seeds, RESAMPLES]: every target and seed answers the same items
    (one item draw shared by all, as the summary pairs them), each item with its own difficulty."""
    draws = bootstrap.item_draws(items, rng)
    difficulty = rng.normal(0, 1.0, items)
    return [np.stack([bootstrap.resampled_means(effect + rng.normal(0, 0.3) + difficulty + rng.normal(0, 1.0, items),
                                                 draws) for _ in range(seeds)])
            for effect in target_effects]


def test_resampling_targets_covers_the_recipes_effect_where_targets_disagree():
    """Targets trained by one recipe differ (a random effect per target, sd 1, against items' and seeds' noise of
    about 0.2 on a cell's mean): an interval that resamples targets covers the recipe's mean effect (0) at about
    the nominal rate, and is wider than one that takes every (target, seed) pair as a seed of a single target."""
    covered, flat_covered, wider = 0, 0, 0
    for trial in range(100):
        rng = np.random.default_rng(trial)
        by_target = _cell(rng, rng.normal(0.0, 1.0, size=10))
        low, high = bootstrap.interval(bootstrap.hierarchical_mean(by_target, rng))
        flat_low, flat_high = bootstrap.interval(bootstrap.hierarchical_mean([np.concatenate(by_target)], rng))
        covered += low <= 0 <= high
        flat_covered += flat_low <= 0 <= flat_high
        wider += (high - low) > (flat_high - flat_low)
    assert covered >= 90, covered
    assert wider == 100 and flat_covered < covered, (wider, flat_covered)
