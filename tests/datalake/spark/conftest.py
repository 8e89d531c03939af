import json
import shutil
import socket
import subprocess
import time
import urllib.request

import pytest


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def standalone_master(tmp_path_factory):
    """Start a Spark standalone master and one worker from the pyspark installation."""
    spark_class = shutil.which("spark-class")
    if spark_class is None:
        pytest.skip("spark-class not found (pyspark is not installed in this environment)")
    logs = tmp_path_factory.mktemp("standalone")
    port, ui_port, worker_ui = free_port(), free_port(), free_port()
    master_url = f"spark://127.0.0.1:{port}"
    processes = [
        subprocess.Popen(
            [spark_class, "org.apache.spark.deploy.master.Master", "--host", "127.0.0.1",
             "--port", str(port), "--webui-port", str(ui_port)],
            stdout=(logs / "master.log").open("w"), stderr=subprocess.STDOUT,
        ),
        subprocess.Popen(
            [spark_class, "org.apache.spark.deploy.worker.Worker", master_url, "--host",
             "127.0.0.1", "--cores", "1", "--memory", "1g", "--webui-port", str(worker_ui),
             "--work-dir", str(logs / "work")],
            stdout=(logs / "worker.log").open("w"), stderr=subprocess.STDOUT,
        ),
    ]  # fmt: skip
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{ui_port}/json/", timeout=2) as r:
                    state = json.load(r)
                if any(w.get("state") == "ALIVE" for w in state.get("workers", [])):
                    break
            except OSError:
                pass
            if time.monotonic() > deadline or any(p.poll() is not None for p in processes):
                output = (logs / "master.log").read_text() + (logs / "worker.log").read_text()
                pytest.fail("standalone cluster did not start:\n" + output)
            time.sleep(0.5)
        yield master_url
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
