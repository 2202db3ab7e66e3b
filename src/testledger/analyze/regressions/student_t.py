"""Student's two-sample t-test, vectorised: the significance test of change points.

The t distribution's two-sided tail is the regularized incomplete beta function, computed for
whole arrays at once (Numerical Recipes' ``betai`` with a modified-Lentz continued fraction),
so that every candidate of a batch is tested in one pass, with numpy alone.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import ArrayLike, NDArray

__all__ = ["pooled_t", "t_test_p_value"]

Floats = NDArray[np.float64]

_TINY = 1e-300


def _lgamma(values: Floats) -> Floats:
    # Degrees of freedom repeat a lot: compute each distinct value once.
    unique, inverse = np.unique(values, return_inverse=True)
    table = np.array([math.lgamma(float(v)) for v in unique], dtype=np.float64)
    return table[inverse.reshape(values.shape)]


def _beta_fraction(a: Floats, b: Floats, x: Floats) -> Floats:
    """The continued fraction of the incomplete beta function (modified Lentz), vectorised."""
    qab, qap, qam = a + b, a + 1.0, a - 1.0
    c = np.ones_like(x)
    d = 1.0 - qab * x / qap
    d = 1.0 / np.where(np.abs(d) < _TINY, _TINY, d)
    h = d.copy()
    for m in range(1, 400):
        m2 = 2.0 * m
        aa = m * (b - m) * x / ((qam + m2) * (a + m2))
        d = 1.0 + aa * d
        d = 1.0 / np.where(np.abs(d) < _TINY, _TINY, d)
        c = 1.0 + aa / c
        c = np.where(np.abs(c) < _TINY, _TINY, c)
        h *= d * c
        aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))
        d = 1.0 + aa * d
        d = 1.0 / np.where(np.abs(d) < _TINY, _TINY, d)
        c = 1.0 + aa / c
        c = np.where(np.abs(c) < _TINY, _TINY, c)
        delta = d * c
        h *= delta
        if m % 8 == 0 and bool(np.all(np.abs(delta - 1.0) < 1e-15)):
            break
    return np.asarray(h, dtype=np.float64)


def _betainc(a: Floats, b: Floats, x: Floats) -> Floats:
    """Regularized incomplete beta I_x(a, b) for arrays (Numerical Recipes' betai)."""
    x = np.clip(x, 0.0, 1.0)
    swap = x > (a + 1.0) / (a + b + 2.0)
    aa, bb, xx = np.where(swap, b, a), np.where(swap, a, b), np.where(swap, 1.0 - x, x)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore", under="ignore"):
        log_front = (
            _lgamma(aa + bb) - _lgamma(aa) - _lgamma(bb) + aa * np.log(xx) + bb * np.log1p(-xx)
        )
        value = np.exp(log_front) * _beta_fraction(aa, bb, xx) / aa
        value = np.where(xx <= 0.0, 0.0, value)
    return np.where(swap, 1.0 - value, value)


def t_test_p_value(t: ArrayLike, df: ArrayLike) -> Floats:
    """Two-sided p-value of Student's t statistic with ``df`` degrees of freedom."""
    t_arr = np.abs(np.asarray(t, dtype=np.float64))
    df_arr = np.broadcast_to(np.asarray(df, dtype=np.float64), t_arr.shape)
    p = np.ones_like(t_arr)
    ok = df_arr > 0
    if np.any(ok):
        tt, dd = t_arr[ok], df_arr[ok]
        with np.errstate(over="ignore", invalid="ignore"):
            x = np.where(np.isinf(tt), 0.0, dd / (dd + tt * tt))
        p[ok] = _betainc(dd / 2.0, np.full_like(dd, 0.5), x)
    return np.clip(p, 0.0, 1.0)


def pooled_t(
    s1: Floats, q1: Floats, n1: Floats, s2: Floats, q2: Floats, n2: Floats
) -> tuple[Floats, Floats, Floats, Floats, Floats]:
    """Student's pooled two-sample t-test from sums and sums of squares of both sides.
    Returns (p, mean1, mean2, std1, std2)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        mean1, mean2 = s1 / n1, s2 / n2
        ss1 = np.maximum(q1 - s1 * mean1, 0.0)
        ss2 = np.maximum(q2 - s2 * mean2, 0.0)
        df = n1 + n2 - 2.0
        pooled = np.sqrt((ss1 + ss2) / df)
        diff = mean2 - mean1
        t = diff / (pooled * np.sqrt(1.0 / n1 + 1.0 / n2))
        # Two flat levels: any difference is certain, none is nothing.
        scale = np.maximum(np.abs(mean1), np.abs(mean2)) + 1.0
        flat = pooled <= 1e-12 * scale
        t = np.where(flat, np.where(np.abs(diff) > 1e-12 * scale, np.inf, 0.0), t)
        p = t_test_p_value(t, df)
        std1 = np.sqrt(ss1 / np.maximum(n1 - 1.0, 1.0))
        std2 = np.sqrt(ss2 / np.maximum(n2 - 1.0, 1.0))
    return p, mean1, mean2, std1, std2
