"""Every test runs offline, quiet and with its own image cache."""
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

import pytest  # noqa: E402


@pytest.fixture(scope="session", autouse=True)
def isolated_cache(tmp_path_factory):
    os.environ["MASKCTL_CACHE_DIR"] = str(tmp_path_factory.mktemp("image-cache"))
