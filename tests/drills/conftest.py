from tests.worker.conftest import live  # noqa: F401 (the live worker + sandbox fixture)
