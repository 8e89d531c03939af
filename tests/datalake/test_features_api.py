"""The online features HTTP API: status codes, bodies, tenant isolation, schema."""

from __future__ import annotations

import contextlib
from datetime import UTC, datetime, timedelta

import pytest
import yaml
from django.contrib.auth.models import Permission, User
from django.core.cache import caches
from rest_framework.test import APIClient

from api.models import Client, ClientMembership
from tests.datalake.feature_rows import row, write_partition

pytestmark = pytest.mark.django_db

OLD = datetime(2024, 12, 27, 14, tzinfo=UTC)
URL = "/api/datalake/features/stop_execution_features/{}/{}/"
BATCH = "/api/datalake/features/stop_execution_features/"


@pytest.fixture
def lake(tmp_path, settings):
    settings.DATALAKE_URI = str(tmp_path / "lake")
    caches["features"].clear()
    yield tmp_path / "lake"
    with contextlib.suppress(Exception):  # a test may have pointed the alias at a dead Redis
        caches["features"].clear()


@pytest.fixture
def clients(lake) -> tuple[Client, Client]:
    a = Client.objects.create(name="a", created_at=OLD)
    b = Client.objects.create(name="b", created_at=OLD)
    now = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=1)
    write_partition(lake, a.pk, now.date().isoformat(), [row("BTCUSDC", now, 5)])
    write_partition(lake, b.pk, "2024-12-27", [row("ETHUSDC", OLD, 3)])
    return a, b


def member(client: Client, name: str, *, staff: bool = False, read_any: bool = False) -> User:
    user = User.objects.create_user(name, password="pw-" + name, is_staff=staff)
    ClientMembership.objects.create(user=user, client=client)
    if read_any:
        user.user_permissions.add(Permission.objects.get(codename="read_any_features"))
    return user


def jwt(user: User) -> APIClient:
    api = APIClient()
    token = api.post("/api/token/", {"username": user.username, "password": "pw-" + user.username})
    assert token.status_code == 200
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {token.json()['access']}")
    return api


def session(user: User) -> APIClient:
    api = APIClient()
    api.force_login(user)
    return api


def test_own_features_present_with_decimal_strings_and_z_times(clients) -> None:
    a, _ = clients
    response = jwt(member(a, "alice")).get(URL.format(a.pk, "BTCUSDC"))
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "PRESENT"
    assert body["features"]["stop_distance_pct"] == "2.5000"
    assert body["features"]["volume_24h"] == "1234.50000000"
    assert body["features"]["time_to_trigger_sec"] == 3600
    assert body["features"]["volatility_15m"] is None
    assert body["as_of"].endswith("Z")
    assert body["version"] == "sha256:test"


def test_not_found_and_stale_are_200(clients) -> None:
    a, b = clients
    api = jwt(member(a, "alice"))
    missing = api.get(URL.format(a.pk, "XRPUSDC"))
    assert (missing.status_code, missing.json()["status"]) == (200, "NOT_FOUND")
    assert missing.json()["features"] is None
    stale = session(member(b, "bob")).get(URL.format(b.pk, "ETHUSDC"))
    assert (stale.status_code, stale.json()["status"]) == (200, "STALE")
    assert stale.json()["as_of"] == "2024-12-27T14:00:00Z"


@pytest.mark.parametrize("login", [jwt, session])
def test_tenant_isolation(clients, login) -> None:
    a, b = clients
    alice = login(member(a, "alice"))
    assert alice.get(URL.format(b.pk, "ETHUSDC")).status_code == 403
    assert alice.get(URL.format(b.pk, "ANYTHING")).status_code == 403
    both = [{"client_id": a.pk, "symbol": "BTCUSDC"}, {"client_id": b.pk, "symbol": "ETHUSDC"}]
    assert alice.post(BATCH, {"entities": both}, format="json").status_code == 403
    # Staff without the permission: still only their own client.
    assert login(member(a, "staff", staff=True)).get(URL.format(b.pk, "ETHUSDC")).status_code == 403
    # Not staff, with the permission: no.
    plain = login(member(a, "perm", read_any=True))
    assert plain.get(URL.format(b.pk, "ETHUSDC")).status_code == 403
    # Staff with the permission: any client.
    ops = login(member(a, "ops", staff=True, read_any=True))
    assert ops.get(URL.format(b.pk, "ETHUSDC")).status_code == 200


def test_user_without_a_client_reads_nothing(clients) -> None:
    a, _ = clients
    loner = User.objects.create_user("loner", password="pw-loner")
    assert jwt(loner).get(URL.format(a.pk, "BTCUSDC")).status_code == 403


def test_unauthenticated_401_unknown_set_404(clients) -> None:
    a, _ = clients
    assert APIClient().get(URL.format(a.pk, "BTCUSDC")).status_code == 401
    api = jwt(member(a, "alice"))
    bad = api.get(f"/api/datalake/features/nope/{a.pk}/BTCUSDC/")
    assert bad.status_code == 404
    assert "unknown feature set" in bad.json()["detail"]


def test_batch(clients) -> None:
    a, _ = clients
    api = jwt(member(a, "alice"))
    entities = [{"client_id": a.pk, "symbol": "XRPUSDC"}, {"client_id": a.pk, "symbol": "BTCUSDC"}]
    response = api.post(BATCH, {"entities": entities}, format="json")
    assert response.status_code == 200
    assert [r["status"] for r in response.json()["results"]] == ["NOT_FOUND", "PRESENT"]
    assert api.post(BATCH, {"entities": []}, format="json").status_code == 400
    assert api.post(BATCH, {"nope": 1}, format="json").status_code == 400


def test_openapi_schema_is_served_and_describes_the_endpoints(clients) -> None:
    response = APIClient().get("/api/schema/")
    assert response.status_code == 200
    schema = yaml.safe_load(response.content)
    paths = schema["paths"]
    latest = paths["/api/datalake/features/{feature_set}/{client_id}/{symbol}/"]["get"]
    assert "jwtAuth" in str(latest["security"])
    assert "/api/datalake/features/{feature_set}/" in paths
    status = schema["components"]["schemas"]["StatusEnum"]["enum"]
    assert status == ["PRESENT", "NOT_FOUND", "STALE"]


def test_redis_down_is_not_a_500(clients, settings) -> None:
    a, _ = clients
    api = jwt(member(a, "alice"))
    settings.CACHES = {
        **settings.CACHES,
        "features": {
            "BACKEND": "django_redis.cache.RedisCache",
            "LOCATION": "redis://127.0.0.1:1/0",  # nothing listens there
            "OPTIONS": {"SOCKET_CONNECT_TIMEOUT": 0.2, "SOCKET_TIMEOUT": 0.2},
        },
    }
    response = api.get(URL.format(a.pk, "BTCUSDC"))
    assert (response.status_code, response.json()["status"]) == (200, "PRESENT")


@pytest.mark.parametrize("debug", [True, False])
def test_every_api_path_without_an_endpoint_is_a_json_404(clients, settings, debug) -> None:
    """Also with DEBUG on (the embedded default), where Django would answer its HTML page."""
    settings.DEBUG = debug
    a, _ = clients
    api = jwt(member(a, "alice"))
    cases = [
        ("get", "/api/datalake/features/stop_execution_features/abc/BTCUSDC/", None),
        ("get", "/api/datalake/features/stop_execution_features/-1/BTCUSDC/", None),
        ("get", "/api/datalake/features/", None),
        ("get", "/api/datalake/nope/", None),
        ("get", "/api/nope/", None),
        ("delete", "/api/datalake/features/stop_execution_features/1/BTCUSDC/x/", None),
        ("get", "/api/schema", "/api/schema/"),
        ("post", BATCH.rstrip("/"), BATCH),
        ("post", "/api/token", "/api/token/"),
    ]
    for method, path, hint in cases:
        for caller in (api, APIClient()):
            response = getattr(caller, method)(path)
            assert response.status_code == 404, (method, path, response.content[:200])
            assert response["Content-Type"] == "application/json", (method, path)
            detail = response.json()["detail"]
            assert detail.startswith(f"no API endpoint at {path}"), detail
            assert (f"did you mean {hint}?" in detail) == bool(hint), detail


def test_a_browser_accept_header_still_gets_json(clients) -> None:
    """The API renders JSON only: a browser's Accept header gets JSON answers and errors,
    never the browsable API's HTML page."""
    a, b = clients
    api = jwt(member(a, "alice"))
    browser = {"HTTP_ACCEPT": "text/html,application/xhtml+xml,*/*;q=0.8"}
    cases = [
        (api, URL.format(a.pk, "BTCUSDC"), 200),
        (api, URL.format(b.pk, "BTCUSDC"), 403),
        (APIClient(), URL.format(a.pk, "BTCUSDC"), 401),
        (api, "/api/nope/", 404),
    ]
    for caller, path, status in cases:
        response = caller.get(path, **browser)
        assert response.status_code == status, (path, response.content[:200])
        assert response["Content-Type"] == "application/json", (path, response["Content-Type"])
        response.json()


def test_the_json_404_is_not_in_the_openapi_schema(clients) -> None:
    paths = yaml.safe_load(APIClient().get("/api/schema/").content)["paths"]
    assert sorted(paths) == [
        "/api/datalake/features/{feature_set}/",
        "/api/datalake/features/{feature_set}/{client_id}/{symbol}/",
        "/api/token/",
        "/api/token/refresh/",
    ]
