"""Unit tests: offline, quiet, and with their own image cache for the session."""
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

import pytest  # noqa: E402


@pytest.fixture(scope="session", autouse=True)
def unit_cache_dir(tmp_path_factory):
    path = tmp_path_factory.mktemp("unit-image-cache")
    old = os.environ.get("MASKCTL_CACHE_DIR")
    os.environ["MASKCTL_CACHE_DIR"] = str(path)
    yield path
    if old is None:
        os.environ.pop("MASKCTL_CACHE_DIR", None)
    else:
        os.environ["MASKCTL_CACHE_DIR"] = old
