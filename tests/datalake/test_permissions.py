"""How the app finds a user's client: DATALAKE_USER_CLIENT, an attribute path or a callable."""

from types import SimpleNamespace

import pytest

from datalake.permissions import user_client_id


def client_of(user) -> int:
    return user.tenant * 10


@pytest.mark.parametrize(
    ("setting", "user", "expected"),
    [
        ("client", SimpleNamespace(client=SimpleNamespace(pk=3)), 3),
        ("client", SimpleNamespace(client_id=4, client=None), 4),
        ("client", SimpleNamespace(client=None), None),
        ("client", SimpleNamespace(), None),
        (
            "profile.client",
            SimpleNamespace(profile=SimpleNamespace(client=SimpleNamespace(pk=5))),
            5,
        ),
        ("profile.client", SimpleNamespace(), None),
        ("tests.datalake.test_permissions:client_of", SimpleNamespace(tenant=7), 70),
    ],
)
def test_user_client_id(settings, setting, user, expected) -> None:
    settings.DATALAKE_USER_CLIENT = setting
    assert user_client_id(user) == expected
