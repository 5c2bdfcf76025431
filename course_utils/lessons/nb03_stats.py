"""Notebook 03's statistics: Welch's t-test for a gap between two variants, and sampling error.

Three seeds per variant leave a rough estimate of the spread, so a gap of means is judged
with Welch's t-test (B. L. Welch, Biometrika 34, 1947), which does not assume the two
variants have the same spread, with the Welch-Satterthwaite degrees of freedom. The
p-value comes from Student's t distribution through the regularized incomplete beta
function, computed here (no scipy): for t with nu degrees of freedom,
P(|T| >= |t|) = I_{nu / (nu + t^2)}(nu / 2, 1 / 2).

``binomial_standard_error`` is the sampling error of a share measured on n samples, the
noise one label-accuracy figure carries before any seed changes.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np

BORDERLINE = (0.01, 0.10)  # p below the first: a clear gap; up to the second: borderline; above: within the noise


def _beta_continued_fraction(a: float, b: float, x: float, steps: int = 300, tiny: float = 1e-300) -> float:
    """The continued fraction of I_x(a, b) (modified Lentz's method; Press et al., Numerical Recipes, 6.4)."""
    qab, qap, qam = a + b, a + 1.0, a - 1.0
    c, d = 1.0, 1.0 - qab * x / qap
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, steps + 1):
        m2 = 2 * m
        even = m * (b - m) * x / ((qam + m2) * (a + m2))
        odd = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))
        for numerator in (even, odd):
            d = 1.0 + numerator * d
            d = 1.0 / (d if abs(d) > tiny else tiny)
            c = 1.0 + numerator / c
            c = c if abs(c) > tiny else tiny
            h *= d * c
        if abs(d * c - 1.0) < 1e-15:
            break
    return h


def regularized_incomplete_beta(a: float, b: float, x: float) -> float:
    """I_x(a, b) = B(x; a, b) / B(a, b) for a, b > 0 and 0 <= x <= 1."""
    if not (a > 0 and b > 0):
        raise ValueError(f"a and b must be positive, got a={a}, b={b}")
    if not 0.0 <= x <= 1.0:
        raise ValueError(f"x must lie in [0, 1], got {x}")
    if x in (0.0, 1.0):
        return x
    log_front = math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)
    if x < (a + 1) / (a + b + 2):  # the continued fraction converges fast here; else use the symmetry
        return math.exp(log_front) * _beta_continued_fraction(a, b, x) / a
    return 1.0 - math.exp(log_front) * _beta_continued_fraction(b, a, 1.0 - x) / b


def t_two_sided_p(t: float, df: float) -> float:
    """P(|T| >= |t|) for Student's t with ``df`` (not necessarily whole) degrees of freedom."""
    if not df > 0:
        raise ValueError(f"degrees of freedom must be positive, got {df}")
    return regularized_incomplete_beta(df / 2, 0.5, df / (df + t * t))


class WelchTest(NamedTuple):
    difference: float  # mean(a) - mean(b)
    standard_error: float  # sqrt(s_a^2 / n_a + s_b^2 / n_b)
    t: float  # difference / standard_error
    df: float  # Welch-Satterthwaite degrees of freedom
    p: float  # two-sided p-value
    verdict: str  # "clear", "borderline" or "within the noise" (thresholds: BORDERLINE)


def verdict(p: float) -> str:
    """Words for a p-value: below 0.01 clear, up to 0.10 borderline, above that within the noise."""
    if math.isnan(p):
        return "cannot tell (one seed)"
    return "clear" if p < BORDERLINE[0] else "borderline" if p <= BORDERLINE[1] else "within the noise"


def welch_t_test(a: Sequence[float], b: Sequence[float]) -> WelchTest:
    """Welch's unequal-variance t-test of mean(a) = mean(b), two-sided."""
    va, vb = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if len(va) < 2 or len(vb) < 2:
        diff = float(va.mean() - vb.mean())
        return WelchTest(diff, math.nan, math.nan, math.nan, math.nan, verdict(math.nan))
    sa, sb = float(va.var(ddof=1)) / len(va), float(vb.var(ddof=1)) / len(vb)
    se = math.sqrt(sa + sb)
    diff = float(va.mean() - vb.mean())
    if se == 0:
        p = 0.0 if diff else 1.0
        return WelchTest(diff, 0.0, math.copysign(math.inf, diff) if diff else 0.0, math.inf, p, verdict(p))
    df = float((sa + sb) ** 2 / (sa**2 / (len(va) - 1) + sb**2 / (len(vb) - 1)))
    t = diff / se
    p = t_two_sided_p(t, df)
    return WelchTest(diff, se, t, df, p, verdict(p))


def binomial_standard_error(share: float, n: int) -> float:
    """Sampling standard error of a share measured on n independent samples: sqrt(p (1 - p) / n)."""
    if n < 1:
        raise ValueError(f"n must be at least 1, got {n}")
    return math.sqrt(max(share * (1 - share), 0.0) / n)


def format_p(p: float) -> str:
    """'= 0.054', or '< 0.001' for a p-value too small to print with three decimals."""
    return "< 0.001" if p < 0.001 else f"= {p:.3f}"


def describe_welch(metric: str, names: tuple[str, str], test: WelchTest, fmt: str = "{:.3g}") -> str:
    """One line for the notebook: the gap, Welch's t, its degrees of freedom, p and the verdict."""
    f = fmt.format
    a, b = names
    if math.isnan(test.p):
        return f"{metric}: {a} - {b} = {f(test.difference)} (one seed each: no test possible)"
    return (f"{metric}: {a} - {b} = {f(test.difference)} (standard error {f(test.standard_error)}); "
            f"Welch's t = {test.t:.2f} with {test.df:.1f} degrees of freedom, p {format_p(test.p)}: {test.verdict}")
