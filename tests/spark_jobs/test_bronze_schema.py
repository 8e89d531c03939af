"""The Spark jobs' copy of the bronze schemas matches the exporter's (no SparkSession)."""

import pyarrow as pa
import pytest
from pyspark.sql.types import (
    BooleanType,
    DataType,
    DateType,
    DecimalType,
    IntegerType,
    LongType,
    StringType,
    TimestampType,
)

from datalake.bronze.schemas import get_dataset
from spark_jobs.common import bronze


def spark_type(dtype: pa.DataType) -> DataType:
    """Return the Spark type a bronze Parquet column of Arrow type ``dtype`` reads as."""
    if pa.types.is_decimal(dtype):
        return DecimalType(dtype.precision, dtype.scale)
    if pa.types.is_timestamp(dtype):
        return TimestampType()
    return {
        pa.string(): StringType(),
        pa.int64(): LongType(),
        pa.int32(): IntegerType(),
        pa.bool_(): BooleanType(),
    }[dtype]


@pytest.mark.unit
@pytest.mark.parametrize(
    ("name", "layout"),
    [
        ("events", bronze.BRONZE_EVENTS),
        ("orders", bronze.BRONZE_ORDERS),
        ("portfolio", bronze.BRONZE_PORTFOLIO),
        ("klines", bronze.BRONZE_KLINES),
    ],
)
def test_spark_layout_has_the_exporter_columns_and_types(name: str, layout) -> None:
    dataset = get_dataset(name)
    expected = {column: spark_type(dtype) for column, dtype in dataset.columns}
    expected["date"] = DateType()
    assert {f.name: f.dataType for f in layout.schema.fields} == expected
    assert layout.partition_by[-1] == "date"
    assert set(layout.partition_by) - {"date"} == set(dataset.partition_by)
