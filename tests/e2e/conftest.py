"""A tiny synthetic data set shared by the end-to-end tests."""
import pytest


@pytest.fixture(scope="session")
def synth_data(tmp_path_factory):
    from maskctl.data.synth import synthesize

    root = tmp_path_factory.mktemp("synth") / "data"
    synthesize(root, people=24, eval_people=6, seed=5, width=48, height=64, show_progress=False)
    return root
