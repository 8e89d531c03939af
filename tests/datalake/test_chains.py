"""The scheduled chains: bronze_ingest (every dataset) and silver_transform (every silver
dataset in order), each one run with a child run per dataset; a failing step fails the
parent without stopping the other steps."""

import pytest

from datalake.bronze.schemas import DATASETS
from datalake.conf import DEFAULTS
from datalake.models import JobRun
from datalake.silver import SILVER_JOBS
from datalake.tasks import ChainFailed, bronze_ingest, silver_transform
from tests import factories

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def lake(tmp_path, settings):
    settings.DATALAKE_URI = str(tmp_path / "lake")
    settings.DATALAKE_WORK_DIR = str(tmp_path / "work")


def test_bronze_ingest_exports_every_dataset_under_one_run(lake):
    factories.events(factories.operation(), [1, 2, 3])
    parent = JobRun.objects.get(pk=bronze_ingest.apply().get())
    assert (parent.job_name, parent.status, parent.trigger) == ("bronze.ingest", "SUCCEEDED",
                                                                "schedule")  # fmt: skip
    children = {c.dataset: c for c in parent.children.all()}
    assert sorted(children) == sorted(DATASETS)
    assert children["events"].rows_out == parent.rows_out == 3


def test_bronze_ingest_fails_when_one_dataset_fails_and_exports_the_others(lake, settings):
    factories.events(factories.operation(), [1, 2])
    settings.DATALAKE_SOURCES = {**DEFAULTS["SOURCES"], "trades": {"model": "api.NoSuchModel"}}
    result = bronze_ingest.apply()
    assert isinstance(result.result, ChainFailed)
    assert "trades:" in str(result.result)
    parent = JobRun.objects.get(job_name="bronze.ingest")
    assert parent.status == JobRun.Status.FAILED
    assert parent.error.startswith("ChainFailed: trades:")
    assert parent.children.get(dataset="events").rows_out == 2


def test_silver_transform_runs_every_job_in_order_and_fails_if_one_fails(tmp_path, settings):
    script = tmp_path / "spark-submit"
    script.write_text("#!/bin/sh\nexit 1\n")
    script.chmod(0o755)
    settings.DATALAKE_SPARK_SUBMIT = str(script)
    settings.DATALAKE_WORK_DIR = str(tmp_path / "work")
    settings.DATALAKE_URI = str(tmp_path / "lake")
    settings.DATALAKE_SPARK_CLASS_ARCHIVE_DIR = "off"
    result = silver_transform.apply()
    assert isinstance(result.result, ChainFailed)
    parent = JobRun.objects.get(job_name="silver.transform")
    assert parent.status == JobRun.Status.FAILED
    children = list(parent.children.order_by("pk").values_list("job_name", "status"))
    assert children == [(name, "FAILED") for name in SILVER_JOBS]
