"""What maskctl says is what is so, in one clean line (issue 23, class 11): `lr: 1e-3` is the
number it reads as in --set, a damaged MLflow store is one line without SQL, ensemble names
the files a run has, `tune show` prints no library warning and gives a failed trial's reason."""
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from maskctl.cli.main import app
from maskctl.core.errors import MaskctlError


def recipe_value(tmp_path: Path, text: str, field: str):
    from maskctl.config import load_config

    (tmp_path / "recipe.yaml").write_text(text)
    return getattr(load_config(tmp_path / "recipe.yaml"), field)


def space_bounds(tmp_path: Path, text: str):
    from maskctl.config import TrainConfig
    from maskctl.tune.space import read_space

    (tmp_path / "space.yaml").write_text(text)
    return [(d.name, d.low, d.high, d.choices) for d in read_space(tmp_path / "space.yaml", TrainConfig(model="test_resnet"))]


@pytest.mark.parametrize("read, expected", [
    (lambda tmp: recipe_value(tmp, "lr: 1e-3\n", "lr"), 1e-3),
    (lambda tmp: recipe_value(tmp, "lr: 5E-4\nweight_decay: 1e-2\n", "weight_decay"), 1e-2),
    (lambda tmp: recipe_value(tmp, "eta_max: +2e-3\n", "eta_max"), 2e-3),
    (lambda tmp: recipe_value(tmp, "optimizer_args: {eps: 1e-8, betas: [0.9, 9.99e-1]}\n", "optimizer_args"), {"eps": 1e-8, "betas": [0.9, 0.999]}),
    (lambda tmp: recipe_value(tmp, "model: 1e3x\n", "model"), "1e3x"),  # text stays text
    (lambda tmp: space_bounds(tmp, "lr: {low: 1e-4, high: 1e-2, log: true}\n"), [("lr", 1e-4, 1e-2, ())]),
    (lambda tmp: space_bounds(tmp, "weight_decay: {choices: [0, 1e-4, 1e-3]}\n"), [("weight_decay", None, None, (0, 1e-4, 1e-3))]),
])
def test_exponent_numbers_in_recipes_and_spaces_are_numbers(tmp_path, read, expected):
    assert read(tmp_path) == expected


def damaged_mlflow_store(tmp_path: Path) -> str:
    from maskctl.config import TrainConfig
    from maskctl.engine.callbacks import CallbackList
    from maskctl.engine.trackers.mlflow import MLFLOW_STORE, MLflowTracker

    (tmp_path / "runs" / "exp").mkdir(parents=True)
    (tmp_path / "runs" / MLFLOW_STORE).write_bytes(b"SQLite format 3\x00" + bytes(range(256)) * 8)

    class Started:
        run_dir, config = tmp_path / "runs" / "exp", TrainConfig()

    with pytest.raises(MaskctlError) as refused:
        CallbackList([MLflowTracker()])("on_run_start", Started())
    return str(refused.value)


def ensemble_of_a_run_without_submission(tmp_path: Path) -> str:
    run = tmp_path / "run"
    run.mkdir()
    for name in ("config.yaml", "folds.csv"):
        (run / name).write_text("x\n")
    (run / "probs.csv").write_text("ImageID,p0\na.jpg,1\n")
    result = CliRunner().invoke(app, ["ensemble", str(run), str(run), "--out", str(tmp_path / "out")])
    assert result.exit_code == 1
    return result.output


def show_study(tmp_path: Path, reason: str | None) -> str:
    """`tune show` of a study whose one trial failed, with `reason` recorded or none (a killed worker's)."""
    import optuna

    from maskctl.tune.study import BASE_ATTR, ERROR_ATTR

    (tmp_path / "tune" / "s").mkdir(parents=True)
    study = optuna.create_study(study_name="s", storage=f"sqlite:///{tmp_path / 'tune/s/study.db'}", direction="maximize")
    study.set_user_attr(BASE_ATTR, {})
    trial = study.ask({"lr": optuna.distributions.FloatDistribution(1e-4, 1e-2, log=True)})
    if reason is not None:
        trial.set_user_attr(ERROR_ATTR, reason)
    study.tell(trial, state=optuna.trial.TrialState.FAIL)
    result = CliRunner().invoke(app, ["tune", "show", "s"])
    assert result.exit_code == 0, result.output
    return " ".join(re.sub("[│┃]", " ", result.output).split())  # the table's note column, wrapped, read as one text


def crashed_trial_reason(tmp_path: Path) -> str:
    """A trial whose training raised something other than a refusal (a crash): its reason is recorded."""
    import optuna

    from maskctl.config import TrainConfig
    from maskctl.engine import kfold
    from maskctl.tune import Worker
    from maskctl.tune.space import Dimension
    from maskctl.tune.study import ERROR_ATTR

    def crash(config, callbacks=()):
        raise RuntimeError("CUDA error: an illegal memory access\nwas encountered")

    study = optuna.create_study(direction="maximize")
    worker = Worker(TrainConfig(model="test_resnet"), [Dimension("lr", "float", 1e-4, 1e-2)], tmp_path, 1)
    original, kfold.train = kfold.train, crash
    try:
        study.optimize(worker.objective, n_trials=1, catch=(MaskctlError,))  # the worker turns whatever a trial raises into one line
    finally:
        kfold.train = original
    return study.trials[0].user_attrs[ERROR_ATTR]


@pytest.mark.parametrize("say, expected, never", [
    (damaged_mlflow_store, ["mlflow.db cannot be used", "file is not a database", "move it aside"], ["\n", "SQL", "sqlalche.me"]),
    (ensemble_of_a_run_without_submission, ["has probs.csv but no predict.json"], ["has submission.csv"]),
    (lambda tmp: show_study(tmp, None), ["no reason recorded: its worker stopped mid-trial"], ["Warning", "worker gone", ".py:"]),
    (lambda tmp: show_study(tmp, "the loss became nan"), ["the loss became nan"], ["Warning", "worker gone", ".py:"]),
    (crashed_trial_reason, ["CUDA error: an illegal memory access"], ["\n"]),  # errors.one_line: the first line says what happened
])
def test_messages_say_what_is_so_in_one_clean_line(tmp_path, monkeypatch, say, expected, never):
    monkeypatch.chdir(tmp_path)
    text = say(tmp_path)
    assert all(part in text for part in expected), text
    assert not [part for part in never if part in text], text
