"""Mean and bootstrap confidence interval of the mean (``scipy.stats.bootstrap``).

Used by the figures wherever a point aggregates several seeds, repetitions or instances.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

#: Smallest sample with an interval: below it the resamples only re-order one or two values.
MIN_SAMPLE = 3
#: Resamples per interval and the seed of their generator (reports are reproducible).
RESAMPLES = 2000
SEED = 0


@dataclass(frozen=True)
class MeanCI:
    """A sample mean with its bootstrap interval.

    Attributes
    ----------
    mean
        Sample mean (NaN for an empty sample).
    low, high
        The interval's ends; NaN when the sample has fewer than :data:`MIN_SAMPLE` values.
    n
        Sample size.
    """

    mean: float
    low: float
    high: float
    n: int

    @property
    def has_interval(self) -> bool:
        """Whether the interval exists."""
        return not math.isnan(self.low)


def mean_ci(values: Any, confidence: float = 0.95) -> MeanCI:
    """Mean of ``values`` (NaN dropped) and its percentile bootstrap interval.

    Parameters
    ----------
    values
        The sample (array-like).
    confidence
        Confidence level of the interval.

    Returns
    -------
    MeanCI
        A constant sample has the interval [v, v]; fewer than :data:`MIN_SAMPLE` values have none.
    """
    v = np.asarray(values, dtype=float)
    v = v[~np.isnan(v)]
    if v.size == 0:
        return MeanCI(math.nan, math.nan, math.nan, 0)
    mean = float(v.mean())
    if v.size < MIN_SAMPLE:
        return MeanCI(mean, math.nan, math.nan, int(v.size))
    if np.all(v == v[0]):
        return MeanCI(mean, mean, mean, int(v.size))
    from scipy.stats import bootstrap  # imported only when an interval is computed (~1 s)

    res = bootstrap(
        (v,),
        np.mean,
        n_resamples=RESAMPLES,
        confidence_level=confidence,
        method="percentile",
        rng=np.random.default_rng(SEED),
    )
    ci = res.confidence_interval
    return MeanCI(mean, float(ci.low), float(ci.high), int(v.size))
