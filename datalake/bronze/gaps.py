"""Decide which gaps of an export cursor stay open. Pure: no database, no clock.

A gap is a run of cursor values below the high watermark that no committed row holds
yet. A transaction still running may have drawn such a value and commit it later, so a
gap may close only when no transaction that drew the value can still commit it.

On PostgreSQL that is decided from the transactions alive around each read:

* `nextval()` is not transactional and, in 31 draws out of 32, gives the drawing
  transaction no transaction id: until the row is written (after BEFORE triggers, other
  column expressions, lock waits), the transaction is in no snapshot's xid list, so
  "the snapshot's xmin has passed" proves nothing. Every transaction has a *virtual*
  transaction id from its first statement, though, and the exporter lists those alive
  in its database.
* With a cache-1 sequence (the default) values are handed out in increasing order, so
  a value below a committed, visible row was drawn before the snapshot that saw the row.
  The transaction that drew it was then either finished (its row, if committed, is
  visible) or alive just after the read: it is among the `holders` recorded with the gap.
* A holder that is no longer alive just *before* a later snapshot has ended before it:
  if it committed, that snapshot shows the row. So a gap closes once none of its holders
  is alive before a read. A prepared (two-phase) transaction gives up its virtual id
  but can still commit, so no gap closes while one is pending.

PgQ (Skytools) avoids the question by storing `txid_current()` in each event row and
cutting batches by txid snapshots rather than by sequence values; that needs a txid
column (or a DEFAULT that takes an xid before the value) in the backend's table, which
the lake does not own. Elsewhere a gap closes after a settle time.
"""

from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from datalake.bronze import ranges


@dataclass(frozen=True)
class Gap:
    """Cursor values [lo, hi] missing below the watermark, and who may still fill them."""

    lo: int
    hi: int
    seen_at: datetime
    holders: frozenset[str] | None = None  # virtual xids alive when the gap was seen

    def as_json(self) -> dict:
        """Return the JSON form stored on the cursor and on each batch."""
        data: dict = {"lo": self.lo, "hi": self.hi, "seen_at": self.seen_at.isoformat()}
        if self.holders is not None:
            data["holders"] = sorted(self.holders)
        return data

    @classmethod
    def from_json(cls, data: dict) -> "Gap":
        """Return the gap stored as `data` (gaps written before `holders` have None)."""
        holders = data.get("holders")
        return cls(
            lo=data["lo"],
            hi=data["hi"],
            seen_at=datetime.fromisoformat(data["seen_at"]),
            holders=frozenset(holders) if holders is not None else None,
        )


@dataclass(frozen=True)
class Observation:
    """What the exporter saw around one read of the source.

    On PostgreSQL `alive_before` (and `prepared_before`) are listed before the read's
    snapshot is taken, `alive_after` once the read is done. Both sets are None on other
    databases.
    """

    now: datetime
    alive_before: frozenset[str] | None = None
    alive_after: frozenset[str] | None = None
    prepared_before: bool = False

    @property
    def tracks_transactions(self) -> bool:
        return self.alive_before is not None and self.alive_after is not None


@dataclass(frozen=True)
class Outcome:
    """The gaps after one read: those still open, and those closed as never committed."""

    open: list[Gap]
    closed: list[Gap]


def advance(
    gaps: list[Gap],
    *,
    found: Iterable[int],
    watermark_before: int,
    watermark_after: int,
    fresh: Iterable[int],
    seen: Observation,
    settle: timedelta,
) -> Outcome:
    """Return the gaps once a read found `found` in old gaps and `fresh` above the watermark.

    Values found leave their gap; what is left of an old gap closes if it settled; holes
    among the fresh values up to `watermark_after` become new gaps.
    """
    kept: list[Gap] = []
    closed: list[Gap] = []
    for gap in gaps:
        for lo, hi in ranges.subtract([[gap.lo, gap.hi]], found):
            piece = _with_holders(replace(gap, lo=lo, hi=hi), seen)
            (closed if _settled(piece, seen, settle) else kept).append(piece)
    holders = seen.alive_after if seen.tracks_transactions else None
    kept.extend(
        Gap(lo, hi, seen.now, holders=holders)
        for lo, hi in ranges.missing(watermark_before, watermark_after, fresh)
    )
    return Outcome(kept, closed)


def _with_holders(gap: Gap, seen: Observation) -> Gap:
    """Return `gap` with holders; a gap recorded without any gets those alive now."""
    if not seen.tracks_transactions or gap.holders is not None:
        return gap
    # Whoever drew one of its values and is still running is alive now: a safe superset.
    return replace(gap, holders=seen.alive_before)


def _settled(gap: Gap, seen: Observation, settle: timedelta) -> bool:
    if seen.tracks_transactions:
        # A virtual id is not reused (a 32-bit counter per backend slot): no pruning needed.
        return not seen.prepared_before and not (gap.holders or frozenset()) & seen.alive_before
    return seen.now - gap.seen_at >= settle
