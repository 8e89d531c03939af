"""Argument types for the management commands: bad input becomes one argparse error line.

Each function takes the raw string and returns the value, or raises
`argparse.ArgumentTypeError` with a message that names what was wrong; argparse then exits
with status 2 (and `call_command` raises `CommandError`). Pure functions, no Django.
"""

import argparse
import math
from datetime import UTC, date, datetime, timedelta

# The last day a range may end on: one day is added to an inclusive end to close it.
LAST_DAY = date.max - timedelta(days=1)


def iso_date(value: str) -> date:
    """Return the date written YYYY-MM-DD."""
    try:
        day = date.fromisoformat(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{value!r} is not a date (YYYY-MM-DD): {exc}") from None
    if day > LAST_DAY:
        raise argparse.ArgumentTypeError(f"{value!r} is too late; the last day is {LAST_DAY}")
    return day


def iso_moment(value: str) -> datetime:
    """Return the UTC instant of an ISO date or date-time (UTC when no offset is given)."""
    try:
        moment = datetime.fromisoformat(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(
            f"{value!r} is not a date or date-time (ISO 8601, e.g. 2024-12-27 or"
            f" 2024-12-27T10:00:00+00:00): {exc}"
        ) from None
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    try:
        return moment.astimezone(UTC)
    except OverflowError:
        raise argparse.ArgumentTypeError(f"{value!r} is out of range in UTC") from None


def positive_int(value: str) -> int:
    """Return a whole number greater than zero."""
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a whole number") from None
    if number <= 0:
        raise argparse.ArgumentTypeError(f"{value!r} must be greater than zero")
    return number


def positive_seconds(value: str) -> float:
    """Return a finite number of seconds greater than zero."""
    try:
        seconds = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a number of seconds") from None
    if not math.isfinite(seconds) or seconds <= 0:
        raise argparse.ArgumentTypeError(f"{value!r} must be a number of seconds above zero")
    return seconds
