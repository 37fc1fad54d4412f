"""The verdicts, both rules in one place: whether a change from full precision is a recovery, and whether one
stack's change differs from another's."""

import numpy as np

# The default margin of the verdict (config `report.margin`): the smallest change of the recovery ratio that the
# verdict calls a recovery, and the bound below which the whole interval must lie for "kept".
MARGIN = 0.1


def verdict(estimate: float, low: float, high: float, margin: float = MARGIN) -> str:
    """`kept` when the whole interval lies below the margin; `recovered` when it lies above 0 and the estimate is
    at least the margin (a change too small to matter is not called a recovery, however sure); else `unclear`."""
    if np.isnan(low) or np.isnan(estimate):
        return "undefined"  # the target scores 0: no recovery ratio
    if high < margin:
        return "kept"
    return "recovered" if low > 0 and estimate >= margin else "unclear"


def direction(low: float, high: float, margin: float = MARGIN) -> str:
    """A contrast between two changes (one stack's and another's, SURE's and no SURE's): `same` when its whole
    interval lies within ±margin (a difference too small to matter, however sure, as `kept` is for a change), else
    `higher` when the interval lies above 0, `lower` below, else `unclear`."""
    if np.isnan(low):
        return "undefined"
    if -margin < low and high < margin:
        return "same"
    return "higher" if low > 0 else "lower" if high < 0 else "unclear"
