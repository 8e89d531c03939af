"""Print how fast online features are looked up: in process (local memory, Redis), cold
from Parquet, over HTTP under load (gunicorn + wrk), and a refresh's wall time.

    python -m benchmarks.feature_lookup_bench                  # everything but the refresh
    python -m benchmarks.feature_lookup_bench --refresh-lake var/lake   # + a refresh with Spark

Goals (issue 11): warm p99 < 1 ms (local memory) / 2 ms (Redis); cold median < 50 ms;
HTTP >= 500 req/s with p99 < 25 ms and no errors at concurrency 32 for 30 s; a refresh
after one new hour of data < 30 s including Spark start-up.
"""

from __future__ import annotations

import argparse
import os
import random
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SYMBOLS = ("BTCUSDC", "ETHUSDC", "SOLUSDC", "BNBUSDC", "XRPUSDC")


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))]


def line(name: str, times: list[float], goal: str) -> None:
    ms = [t * 1000 for t in times]
    print(f"{name:<38} n={len(ms):>6}  median {statistics.median(ms):7.3f} ms"
          f"  p99 {percentile(ms, 0.99):7.3f} ms   goal {goal}")  # fmt: skip


def write_lake(lake: Path, clients: int) -> list[str]:
    from tests.datalake.feature_rows import row, write_partition

    as_of = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(minutes=5)
    return [
        write_partition(lake, c, as_of.date().isoformat(), [row(s, as_of, 1) for s in SYMBOLS])
        for c in range(1, clients + 1)
    ]


def warm(pairs: list[tuple[int, str]], n: int) -> list[float]:
    from datalake.features import get_latest_features

    times = []
    for _ in range(n):
        client, symbol = random.choice(pairs)
        started = time.perf_counter()
        answer = get_latest_features(client, symbol)
        times.append(time.perf_counter() - started)
        assert answer["source"] == "cache", answer
    return times


def cold(pairs: list[tuple[int, str]], n: int) -> list[float]:
    from django.core.cache import caches

    from datalake.features import get_latest_features

    times = []
    for client, symbol in random.sample(pairs, min(n, len(pairs))):
        caches["features"].clear()
        started = time.perf_counter()
        answer = get_latest_features(client, symbol)
        times.append(time.perf_counter() - started)
        assert answer["source"] == "parquet", answer
    return times


def redis_reachable(url: str) -> bool:
    from urllib.parse import urlparse

    parsed = urlparse(url)
    try:
        with socket.create_connection((parsed.hostname, parsed.port or 6379), timeout=1):
            return True
    except OSError:
        return False


def wrk(url: str, token: str, seconds: int, concurrency: int, rate: int | None) -> dict:
    """Run wrk against ``url`` and return its req/s, p50/p99 (ms) and error counts.

    ``rate`` None: as many requests as the server answers (closed loop). Otherwise a
    fixed offered rate in requests per second (benchmarks/wrk_rate.lua)."""
    command = [shutil.which("wrk"), "-t4", f"-c{concurrency}", f"-d{seconds}s", "--latency",
               "-H", f"Authorization: Bearer {token}", url]  # fmt: skip
    if rate:
        command[1:1] = ["-s", str(ROOT / "benchmarks" / "wrk_rate.lua")]
        command += ["--", str(rate), "4"]
    out = subprocess.run(command, capture_output=True, text=True, check=True).stdout

    def ms(label: str) -> float:
        found = re.search(rf"{label}%\s+([\d.]+)(us|ms|s)\b", out)
        if found is None:
            return float("nan")
        return float(found[1]) * {"us": 0.001, "ms": 1, "s": 1000}[found[2]]

    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    socket_errors = re.search(r"Socket errors: (.*)", out)
    return {"rate": float(re.search(r"Requests/sec:\s+([\d.]+)", out)[1]), "p50": ms("50"),
            "p99": ms("99"), "non2xx": int(errors[1]) if errors else 0,
            "socket": socket_errors[1] if socket_errors else "none"}  # fmt: skip


def http(env: dict[str, str], token: str, seconds: int, concurrency: int, workers: int,
         rate: int) -> None:  # fmt: skip
    if shutil.which("wrk") is None:
        print("HTTP: skipped (wrk not found: apt-get install wrk)")
        return
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "config.wsgi", "-b", f"127.0.0.1:{port}",
         "-w", str(workers), "--log-level", "warning"],
        cwd=ROOT, env=env,
    )  # fmt: skip
    try:
        url = f"http://127.0.0.1:{port}/api/datalake/features/stop_execution_features/1/BTCUSDC/"
        request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"})
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:  # until every worker has loaded the app
            try:
                for _ in range(20):
                    urllib.request.urlopen(request, timeout=5).read()
                break
            except OSError:
                time.sleep(0.2)
        closed = wrk(url, token, seconds, concurrency, None)
        paced = wrk(url, token, seconds, concurrency, rate)
    finally:
        server.terminate()
        server.wait(timeout=30)
    where = f"HTTP c={concurrency} {seconds}s gunicorn -w {workers}"
    for label, run in ((f"{where}, as fast as served:", closed),
                       (f"{where}, offered {rate} req/s:", paced)):  # fmt: skip
        print(f"{label:<50} {run['rate']:8.1f} req/s  p50 {run['p50']:7.2f} ms"
              f"  p99 {run['p99']:7.2f} ms  non-2xx {run['non2xx']},"
              f" socket errors {run['socket']}")  # fmt: skip
    ok = (closed["rate"] >= rate and paced["rate"] >= rate * 0.99 and paced["p99"] < 25
          and not closed["non2xx"] + paced["non2xx"])  # fmt: skip
    print(f"HTTP goal: >= {rate} req/s served, p99 < 25 ms at {rate} req/s, no errors:"
          f" {'PASS' if ok else 'FAIL'}")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=200)
    parser.add_argument("--lookups", type=int, default=10_000)
    parser.add_argument("--http-seconds", type=int, default=30)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument(
        "--workers",
        type=int,
        default=2 * (os.cpu_count() or 1),
        help="gunicorn sync workers (default: 2 per core)",
    )
    parser.add_argument("--rate", type=int, default=500,
                        help="offered rate of the paced HTTP run, requests/s")  # fmt: skip
    parser.add_argument("--redis-url", default=os.environ.get("BENCH_REDIS_URL",
                        "redis://127.0.0.1:6379/14"))  # fmt: skip
    parser.add_argument("--refresh-lake", help="time `manage.py refresh_features` on this lake")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="feature-bench-"))
    original = dict(os.environ)
    env = {**os.environ, "DATALAKE_URI": str(work / "lake"), "DATALAKE_VAR_DIR": str(work),
           "DATABASE_URL": f"sqlite:///{work}/bench.sqlite3", "DJANGO_DEBUG": "false",
           "DJANGO_SETTINGS_MODULE": "config.settings", "DATALAKE_LOG_LEVEL": "ERROR"}  # fmt: skip
    os.environ.update(env)
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from django.conf import settings
    from django.core.cache import caches
    from django.test.utils import override_settings

    from datalake.features import load_refresh

    try:
        keys = write_lake(work / "lake", args.clients)
        pairs = [(c, s) for c in range(1, args.clients + 1) for s in SYMBOLS]
        print(f"{len(pairs)} (client, symbol) pairs in {len(keys)} partitions")
        load_refresh("stop_execution_features", 1, keys)
        warm(pairs, 500)
        line("warm, local memory", warm(pairs, args.lookups), "p99 < 1 ms")
        line("cold from Parquet (cache cleared)", cold(pairs, 200), "median < 50 ms")

        if redis_reachable(args.redis_url):
            redis = {**settings.CACHES["features"], "BACKEND": "django_redis.cache.RedisCache",
                     "LOCATION": args.redis_url, "OPTIONS": {}}  # fmt: skip
            with override_settings(CACHES={**settings.CACHES, "features": redis}):
                caches["features"].clear()
                load_refresh("stop_execution_features", 1, keys)
                warm(pairs, 500)
                line("warm, Redis", warm(pairs, args.lookups), "p99 < 2 ms")
        else:
            print(f"warm, Redis: skipped ({args.redis_url} not reachable)")

        if args.http_seconds:
            subprocess.run([sys.executable, "manage.py", "migrate", "-v", "0"], cwd=ROOT,
                           env=env, check=True)  # fmt: skip
            token = subprocess.run(
                [sys.executable, "-c", TOKEN_SCRIPT], cwd=ROOT, env=env, check=True,
                capture_output=True, text=True,
            ).stdout.strip()  # fmt: skip
            if redis_reachable(args.redis_url):
                env["DATALAKE_FEATURES_REDIS_URL"] = args.redis_url  # shared by the workers
            http(env, token, args.http_seconds, args.concurrency, args.workers, args.rate)

        if args.refresh_lake:
            started = time.perf_counter()
            subprocess.run(
                [sys.executable, "manage.py", "refresh_features"], cwd=ROOT, check=True,
                env={**original, "DATALAKE_URI": args.refresh_lake},
            )  # fmt: skip
            print(f"refresh (spark-submit, Spark start-up included): "
                  f"{time.perf_counter() - started:.1f} s   goal < 30 s")  # fmt: skip
    finally:
        shutil.rmtree(work, ignore_errors=True)


TOKEN_SCRIPT = """
import django
django.setup()
from django.contrib.auth.models import User
from api.models import Client, ClientMembership
from datetime import datetime, UTC
from rest_framework_simplejwt.tokens import RefreshToken
client, _ = Client.objects.get_or_create(id=1, defaults={"name": "bench",
                                         "created_at": datetime.now(UTC)})
user, _ = User.objects.get_or_create(username="bench")
ClientMembership.objects.get_or_create(user=user, client=client)
print(RefreshToken.for_user(user).access_token)
"""

if __name__ == "__main__":
    main()
