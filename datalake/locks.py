"""Locks that the database releases when the holder dies.

PostgreSQL: a session advisory lock (released when the connection closes). Other
databases: a Lease row with an expiry, renewed while working; a lease held by a process
that no longer runs on this host is taken over at once.
"""

import hashlib
import os
import socket
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta

from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from datalake.models import Lease


class ConcurrentRun(Exception):
    """Another run of the same job holds the lock."""


class LockHandle:
    def __init__(self, name: str, holder: str, ttl: timedelta) -> None:
        self.name, self.holder, self.ttl = name, holder, ttl

    def renew(self) -> None:
        """Push the lease's expiry forward (no-op for advisory locks)."""
        if connection.vendor != "postgresql":
            Lease.objects.filter(name=self.name, holder=self.holder).update(
                expires_at=timezone.now() + self.ttl
            )


def _advisory_key(name: str) -> int:
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)


def _holder_is_dead(holder: str) -> bool:
    host, _, rest = holder.partition(":")
    pid = rest.partition(":")[0]
    if host != socket.gethostname() or not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


@contextmanager
def exclusive(name: str, ttl_seconds: int = 900) -> Iterator[LockHandle]:
    """Hold the lock `name` for the block, or raise ConcurrentRun at once."""
    holder = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
    handle = LockHandle(name, holder, timedelta(seconds=ttl_seconds))
    if connection.vendor == "postgresql":
        key = _advisory_key(name)
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_try_advisory_lock(%s)", [key])
            if not cursor.fetchone()[0]:
                raise ConcurrentRun(f"another run holds the lock {name!r}")
        try:
            yield handle
        finally:
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_unlock(%s)", [key])
        return

    now = timezone.now()
    with transaction.atomic():
        current = Lease.objects.select_for_update().filter(name=name).first()
        if current is not None and current.expires_at > now and not _holder_is_dead(current.holder):
            raise ConcurrentRun(f"another run holds the lock {name!r} ({current.holder})")
        if current is not None:
            current.delete()
        try:
            Lease.objects.create(name=name, holder=holder, expires_at=now + handle.ttl)
        except IntegrityError:
            raise ConcurrentRun(f"another run holds the lock {name!r}") from None
    try:
        yield handle
    finally:
        Lease.objects.filter(name=name, holder=holder).delete()
