"""Exact decimal arithmetic and safe typing in Spark SQL (ANSI mode on, no UDFs).

Spark types a decimal product ``decimal(p1,s1) * decimal(p2,s2)`` as
``decimal(p1+p2+1, s1+s2)``; past 38 digits it cuts the scale (to 6 places at worst)
and rounds HALF_UP, and a quotient is rounded HALF_UP at a scale the type rules pick.
The helpers here keep every intermediate type at 38 digits or fewer, so no rule cuts
anything, and round once, HALF_EVEN, at the end. A value too large for an intermediate
type becomes null (``try_cast``), never an error: under ANSI mode one such row would
otherwise fail the job for every client.

- :func:`multiply` splits one factor into its integer and fractional parts, so the two
  partial products fit 38 digits at the full scale ``s1 + s2``.
- :func:`divide` returns the quotient truncated at a scale and the exact remainder, from
  ``%`` (exact) and a division whose result is a whole number of units (exact too);
  :func:`round_half_even` rounds from those two, so a tie is a real tie.

The type derivations assume ``spark.sql.decimalOperations.allowPrecisionLoss=true``
(Spark's default, pinned in :mod:`spark_jobs.common.session`).
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from pyspark.sql import Column
from pyspark.sql import functions as F
from pyspark.sql.types import DataType, DecimalType

MAX_DIGITS = 38


def unit(scale: int) -> Column:
    """Return 10^-scale as a ``decimal(scale, scale)`` literal (scale >= 1)."""
    return F.lit(Decimal(1).scaleb(-scale)).cast(DecimalType(scale, scale))


def typed(value: Column, dtype: DataType) -> Column:
    """Return ``value`` cast to ``dtype``, or null when it does not fit / does not parse."""
    return value.try_cast(dtype)


def _check(digits: int, what: str) -> None:
    if digits > MAX_DIGITS:
        raise ValueError(f"{what} needs decimal({digits}, ...): more than {MAX_DIGITS} digits")


def multiply(
    x: Column, y: Column, x_type: DecimalType, y_type: DecimalType, digits: int = 37
) -> Column:
    """Return x·y exactly, as ``decimal(digits, sx+sy)``; null if it needs more digits.

    ``x`` and ``y`` are cast to ``x_type`` / ``y_type`` first (null if they do not fit).
    y = yi + yf (integer part, fraction in [0, 1)): x·yi is ``decimal(px+py-sy+2, sx)``
    and x·yf ``decimal(px+sy+1, sx+sy)``; both must fit 38 digits (checked here).
    """
    (px, sx), (py, sy) = (x_type.precision, x_type.scale), (y_type.precision, y_type.scale)
    scale = sx + sy
    _check(px + (py - sy + 1) + 1, "x · integer part of y")
    _check(px + sy + 1, "x · fraction of y")
    _check(digits, "the product")
    x, y = typed(x, x_type), typed(y, y_type)
    whole = F.floor(y)  # decimal(py-sy+1, 0)
    part = DecimalType(digits - 1, scale)  # two of them add up to decimal(digits, scale)
    high = typed(x * whole, part)
    if sy == 0:
        return typed(high, DecimalType(digits, scale))
    fraction = typed(y - whole, DecimalType(sy, sy))
    return high + typed(x * fraction, part)


@dataclass(frozen=True)
class Quotient:
    """n / d as an exact pair: ``truncated`` (toward zero, at ``scale``) and ``remainder``.

    n = truncated·d + remainder, |remainder| < d·10^-scale, remainder has n's sign.
    """

    truncated: Column
    remainder: Column
    modulus: Column  # d·10^-scale
    scale: int


def divide(n: Column, d: Column, n_type: DecimalType, d_type: DecimalType, scale: int) -> Quotient:
    """Return n / d truncated at ``scale`` places, with its exact remainder.

    Null when d is null or not positive. With m = d·10^-scale, ``n % m`` is exact and
    ``(n - n % m) / d`` is a whole number of 10^-scale units, so Spark's division
    returns it exactly as long as its result type keeps ``scale`` places: with
    allowPrecisionLoss that is 38 - (pn - sn + 1) - sd >= scale (checked here).
    """
    pn, sn, pd, sd = n_type.precision, n_type.scale, d_type.precision, d_type.scale
    pm, sm = pd + scale + 1, sd + scale  # m = d · decimal(scale, scale)
    _check(pm, "d · 10^-scale")
    sr = max(sn, sm)
    pr = min(pn - sn, pm - sm) + sr  # Spark's type of n % m
    pe = max(pn - sn, pr - sr) + sr + 1  # n - n % m
    _check(pe, "n - n % m")
    if MAX_DIGITS - (pe - sr) - sd < scale:
        raise ValueError(f"(n - n % m) / d would keep fewer than {scale} places")
    n, d = typed(n, n_type), typed(d, d_type)
    d = F.when(d > 0, d)
    modulus = d * unit(scale)
    remainder = n % modulus
    whole = typed((n - remainder) / d, DecimalType(MAX_DIGITS - 1, scale))
    return Quotient(whole, remainder, modulus, scale)


def is_odd_unit(value: Column, scale: int) -> Column:
    """Return whether ``value`` is an odd number of 10^-scale units."""
    return (value % (unit(scale) * F.lit(2))) != 0


def _away_or_not(q: Quotient, away: Column, result: DecimalType) -> Column:
    """Return q's truncated quotient, one unit further from zero where ``away``."""
    step = F.when(q.remainder < 0, -unit(q.scale)).otherwise(unit(q.scale))
    return typed(F.when(away, q.truncated + step).otherwise(q.truncated), result)


def round_half_even(q: Quotient, result: DecimalType) -> Column:
    """Return the exact quotient of ``q`` rounded once, HALF_EVEN, at q's scale.

    The remainder decides: more than half a unit rounds away from zero, exactly half
    rounds to the even neighbour. Null if the result does not fit ``result``.
    """
    twice = F.abs(q.remainder) * F.lit(2)
    away = (twice > q.modulus) | ((twice == q.modulus) & is_odd_unit(q.truncated, q.scale))
    return _away_or_not(q, away, result)


def round_half_up(q: Quotient, result: DecimalType) -> Column:
    """Return the exact quotient of ``q`` rounded once, HALF_UP (a tie away from zero),
    at q's scale. Null if the result does not fit ``result``."""
    return _away_or_not(q, F.abs(q.remainder) * F.lit(2) >= q.modulus, result)


def round_nudged(value: Column, nudge: Column, scale: int, result: DecimalType) -> Column:
    """Return value + ε rounded HALF_EVEN at ``scale``, where ε is tiny with the sign of
    ``nudge`` (0: none) and |ε| is below one unit of ``value``'s own scale.

    ``value`` is exact and finer than ``scale``; ε only matters when ``value`` is a tie,
    and then it says which side of the tie the exact number lies on.
    """
    half = unit(scale + 1) * F.lit(5)
    tie = F.abs(value % unit(scale)) == half
    return typed(
        F.when(tie & (nudge > 0), F.ceil(value, scale))
        .when(tie & (nudge < 0), F.floor(value, scale))
        .otherwise(F.bround(value, scale)),
        result,
    )
