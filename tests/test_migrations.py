"""The models and the committed migrations must not drift apart."""

from io import StringIO

import pytest
from django.core.management import call_command


@pytest.mark.django_db
def test_no_missing_migrations():
    out = StringIO()
    try:
        call_command("makemigrations", "--check", "--dry-run", stdout=out, stderr=out)
    except SystemExit as exc:  # makemigrations --check exits 1 when changes are missing
        pytest.fail(f"models changed without a migration (exit {exc.code}):\n{out.getvalue()}")
