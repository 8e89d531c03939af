import pytest

from datalake.storage import get_storage


@pytest.fixture
def lake(tmp_path, settings):
    """A fresh local lake and work directory for one test."""
    settings.DATALAKE_URI = str(tmp_path / "lake")
    settings.DATALAKE_WORK_DIR = str(tmp_path / "work")
    return get_storage()
