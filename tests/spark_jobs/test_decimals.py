"""spark_jobs.common.decimals: exact products and quotients, rounded once, half even."""

from __future__ import annotations

from decimal import ROUND_HALF_EVEN, Decimal, localcontext

import pytest
from pyspark.sql import SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import DecimalType

from spark_jobs.common.decimals import divide, multiply, round_half_even, round_nudged

pytestmark = pytest.mark.spark

MONEY = DecimalType(20, 8)
NOTIONAL = DecimalType(37, 16)

PRODUCTS = [
    ("97665.16", "0.00429"),
    ("99999999999.99999999", "99999999.99999999"),  # 22 integer digits: fits
    ("100000000", "10000"),
    ("-1.00000001", "0.99999999"),
    ("0.00000001", "-0.00000001"),
    ("123.45678901", "0"),
]


@pytest.mark.parametrize(("x", "y"), PRODUCTS)
def test_multiply_keeps_every_place(spark: SparkSession, x: str, y: str) -> None:
    frame = spark.createDataFrame([(Decimal(x), Decimal(y))], "x decimal(20,8), y decimal(20,8)")
    (row,) = frame.select(multiply(F.col("x"), F.col("y"), MONEY, MONEY).alias("p")).collect()
    with localcontext() as context:
        context.prec = 200  # Python's default (28 digits) would round the product
        assert row.p == Decimal(x) * Decimal(y)


def test_multiply_is_null_past_its_digits(spark: SparkSession) -> None:
    big = Decimal("999999999999.99999999")
    frame = spark.createDataFrame([(big, big)], "x decimal(20,8), y decimal(20,8)")
    (row,) = frame.select(multiply(F.col("x"), F.col("y"), MONEY, MONEY).alias("p")).collect()
    assert row.p is None


def test_types_that_do_not_fit_are_refused_when_the_expression_is_built() -> None:
    with pytest.raises(ValueError, match="more than 38 digits"):
        multiply(F.col("x"), F.col("y"), DecimalType(30, 8), MONEY)


def exact_half_even(n: Decimal, d: Decimal, places: int) -> Decimal:
    with localcontext() as context:
        context.prec = 200  # far more than any quotient here needs to be decided exactly
        return (n / d).quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_EVEN)


QUOTIENTS = [
    ("1.000000025", "1"),  # tie: to even (down)
    ("1.000000035", "1"),  # tie: to even (up)
    ("-1.000000025", "1"),
    ("-1.000000035", "1"),
    ("2.0000000500000001", "2"),  # a hair above a tie: up
    ("2.0000000499999999", "2"),  # a hair below: down
    ("1", "3"),
    ("-2", "3"),
    ("999999999999999999999.9999999999999999", "0.00000001"),  # overflows MONEY: null
    ("0.0000000000000001", "99999999999.99999999"),
    ("97665.16", "0"),  # no quotient
]


@pytest.mark.parametrize(("n", "d"), QUOTIENTS)
def test_divide_rounds_the_exact_quotient_once(spark: SparkSession, n: str, d: str) -> None:
    frame = spark.createDataFrame([(Decimal(n), Decimal(d))], "n decimal(37,16), d decimal(20,8)")
    q = divide(F.col("n"), F.col("d"), NOTIONAL, MONEY, 8)
    (row,) = frame.select(round_half_even(q, MONEY).alias("q")).collect()
    if Decimal(d) == 0:
        assert row.q is None
        return
    expected = exact_half_even(Decimal(n), Decimal(d), 8)
    assert row.q == (expected if abs(expected) < Decimal("1e12") else None)


@pytest.mark.parametrize(
    ("value", "nudge", "expected"),
    [
        ("1.0000000050000000", 0, "1.00000000"),
        ("1.0000000050000000", 1, "1.00000001"),
        ("1.0000000150000000", -1, "1.00000001"),
        ("-1.0000000050000000", -1, "-1.00000001"),
        ("-1.0000000050000000", 1, "-1.00000000"),
        ("1.0000000050000001", -1, "1.00000001"),  # not a tie: the nudge changes nothing
    ],
)
def test_round_nudged_breaks_a_tie_toward_the_nudge(
    spark: SparkSession, value: str, nudge: int, expected: str
) -> None:
    frame = spark.createDataFrame([(Decimal(value), nudge)], "v decimal(37,16), e int")
    (row,) = frame.select(round_nudged(F.col("v"), F.col("e"), 8, MONEY).alias("r")).collect()
    assert row.r == Decimal(expected)
