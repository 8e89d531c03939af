"""Bronze data contracts: split a batch into rows that keep the contract and rows that
go to quarantine, each with the reason. Pure: Arrow compute only, no Django."""

import pyarrow as pa
import pyarrow.compute as pc

from datalake.bronze.schemas import SYMBOL_PATTERN, Dataset

REASON_COLUMN = "_reject_reason"


def _first_reason(current: pa.Array, bad: pa.Array, reason: str) -> pa.Array:
    bad = pc.fill_null(bad, False)
    return pc.if_else(pc.and_(bad, pc.is_null(current)), pa.scalar(reason), current)


def check(dataset: Dataset, table: pa.Table) -> tuple[pa.Table, pa.Table]:
    """Return (rows that keep the dataset's contract, rejected rows with `_reject_reason`).

    The first broken rule names the reason; no row is dropped: every input row is in
    exactly one of the two tables. A `_reject_reason` column already in `table` (a value
    the reader could not hold in the bronze type) comes first.
    """
    if REASON_COLUMN in table.column_names:
        reasons = table[REASON_COLUMN]
        table = table.drop_columns([REASON_COLUMN])
    else:
        reasons = pa.nulls(table.num_rows, pa.string())
    for name in dataset.required:
        reasons = _first_reason(reasons, pc.is_null(table[name]), f"{name}: required, is null")
    for name, allowed in dataset.enums.items():
        bad = pc.invert(pc.is_in(table[name], value_set=pa.array(sorted(allowed))))
        bad = pc.and_(bad, pc.is_valid(table[name]))
        reasons = _first_reason(reasons, bad, f"{name}: not one of {', '.join(sorted(allowed))}")
    for name in dataset.non_negative:
        column = table[name]
        zero = pa.scalar(0, column.type)
        reasons = _first_reason(reasons, pc.less(column, zero), f"{name}: negative")
    for name in dataset.symbol_columns:
        ok = pc.match_substring_regex(table[name], SYMBOL_PATTERN)
        bad = pc.and_(pc.invert(pc.fill_null(ok, True)), pc.is_valid(table[name]))
        reasons = _first_reason(reasons, bad, f"{name}: does not match {SYMBOL_PATTERN}")
    rejected_mask = pc.is_valid(reasons)
    if not pc.any(rejected_mask).as_py():
        return table, table.schema.empty_table().append_column(
            REASON_COLUMN, pa.array([], pa.string())
        )
    good = table.filter(pc.invert(rejected_mask))
    rejected = table.filter(rejected_mask).append_column(
        REASON_COLUMN, reasons.filter(rejected_mask)
    )
    return good, rejected
