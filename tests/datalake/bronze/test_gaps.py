"""The gap rule, driven without a database (datalake.bronze.gaps)."""

from datetime import UTC, datetime, timedelta

import pytest

from datalake.bronze.gaps import Gap, Observation, advance

pytestmark = pytest.mark.unit

T0 = datetime(2026, 1, 1, tzinfo=UTC)
SETTLE = timedelta(minutes=10)


def pg(alive_before=(), alive_after=(), prepared=False, at=T0) -> Observation:
    return Observation(at, frozenset(alive_before), frozenset(alive_after), prepared)


def other_db(at: datetime) -> Observation:
    return Observation(at)


def gap(lo=5, hi=5, holders=None, seen_at=T0) -> Gap:
    return Gap(lo, hi, seen_at, None if holders is None else frozenset(holders))


@pytest.mark.parametrize(
    ("old", "seen", "still_open"),
    [
        # PostgreSQL: the gap stays while a transaction alive when it was seen is alive.
        (gap(holders={"3/7"}), pg(alive_before={"3/7"}), True),
        (gap(holders={"3/7", "4/1"}), pg(alive_before={"4/1", "9/9"}), True),
        (gap(holders={"3/7"}), pg(alive_before={"9/9"}), False),  # only newer ones alive
        (gap(holders=set()), pg(), False),
        # ... and while a prepared transaction (no virtual id any more) is pending.
        (gap(holders={"3/7"}), pg(prepared=True), True),
        (gap(holders=set()), pg(prepared=True), True),
        # A gap stored without holders takes those alive now: closed only later.
        (gap(holders=None), pg(alive_before={"3/7"}), True),
        (gap(holders=None), pg(alive_before=set()), False),
        # Other databases: the settle time.
        (gap(holders=None), other_db(T0 + SETTLE - timedelta(seconds=1)), True),
        (gap(holders=None), other_db(T0 + SETTLE), False),
        (gap(holders={"3/7"}), other_db(T0 + SETTLE), False),
    ],
)
def test_an_old_gap_closes_only_when_nothing_can_still_fill_it(old, seen, still_open):
    outcome = advance(
        [old], found=[], watermark_before=10, watermark_after=10, fresh=[], seen=seen,
        settle=SETTLE,
    )  # fmt: skip
    assert (outcome.open != [], outcome.closed != []) == (still_open, not still_open)


def test_a_gap_without_holders_keeps_the_transactions_alive_now():
    outcome = advance(
        [gap(holders=None)], found=[], watermark_before=10, watermark_after=10, fresh=[],
        seen=pg(alive_before={"3/7"}, alive_after={"3/7", "5/5"}), settle=SETTLE,
    )  # fmt: skip
    assert outcome.open == [gap(holders={"3/7"})]


@pytest.mark.parametrize(
    ("old", "found", "before", "after", "fresh", "expected"),
    [
        # Holes among fresh values become gaps held by the transactions alive after the read.
        ([], [], 0, 5, [1, 2, 5], [(3, 4, {"8/1"})]),
        ([], [], 0, 3, [1, 2, 3], []),
        ([], [], 10, 10, [], []),
        # Found values leave their gap; the rest keeps its first holders.
        ([gap(3, 7, {"3/7"})], [5], 10, 10, [], [(3, 4, {"3/7"}), (6, 7, {"3/7"})]),
        ([gap(3, 7, {"3/7"})], [3, 4, 5, 6, 7], 10, 10, [], []),
        ([gap(3, 3, {"3/7"})], [3], 10, 12, [12], [(11, 11, {"8/1"})]),
    ],
)
def test_advance_moves_found_values_out_and_new_holes_in(
    old, found, before, after, fresh, expected
):
    seen = pg(alive_before={"3/7"}, alive_after={"8/1"}, at=T0 + timedelta(hours=1))
    outcome = advance(
        old, found=found, watermark_before=before, watermark_after=after, fresh=fresh,
        seen=seen, settle=SETTLE,
    )  # fmt: skip
    assert [(g.lo, g.hi, set(g.holders)) for g in outcome.open] == expected
    assert outcome.closed == []
    for new in (g for g in outcome.open if g.holders == {"8/1"}):
        assert new.seen_at == seen.now


@pytest.mark.parametrize(
    "kept",
    [
        gap(holders={"3/7", "12/44"}),
        gap(holders=set()),
        gap(holders=None),
    ],
)
def test_gap_json_round_trip(kept):
    assert Gap.from_json(kept.as_json()) == kept


def test_gap_json_written_before_holders_is_read():
    stored = {"lo": 3, "hi": 4, "seen_at": T0.isoformat(), "xmax": 77}
    assert Gap.from_json(stored) == Gap(3, 4, T0, None)
