"""maskctl tune's parts without training: the space, the base-recipe check, the pruning
callback driven with a FoldState, dead workers' trials, the per-trial seeded sampler."""
import subprocess
import sys
from pathlib import Path

import pytest

from maskctl.config import load_config
from maskctl.core.errors import MaskctlError
from maskctl.engine.callbacks import FoldState, RunState
from maskctl.tune.pruning import PruningCallback
from maskctl.tune.space import read_space, trial_config

optuna = pytest.importorskip("optuna")


def space_file(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "space.yaml"
    path.write_text(text)
    return path


def test_space_kinds_follow_the_recipe_fields(tmp_path):
    base = load_config("cpu-quick")
    space = read_space(space_file(tmp_path, "lr: {low: 1.0e-4, high: 1.0e-2, log: true}\nepochs: {low: 1, high: 3}\n"
                                            "loss: {choices: [focal, ce]}\nweight_decay: {low: 0, high: 0.01}\npatience: {choices: [null, 2]}\n"), base)
    kinds = {d.name: (d.kind, d.log) for d in space}
    assert kinds == {"lr": ("float", True), "epochs": ("int", False), "loss": ("choice", False),
                     "weight_decay": ("float", False), "patience": ("choice", False)}
    config = trial_config(base, {"lr": 0.002, "epochs": 2, "loss": "ce", "patience": None}, name="trial-3", runs_dir="tune/x")
    assert (config.lr, config.epochs, config.loss, config.patience, config.name) == (0.002, 2, "ce", None, "trial-3")
    assert config.model == base.model  # everything else is the base recipe's


@pytest.mark.parametrize("text, expected", [
    ("lrr: {low: 0.001, high: 0.01}\n", "unknown setting 'lrr' (did you mean lr?)"),
    ("drop_rate: {low: 0.0, high: 1.5}\n", "drop_rate: range 0..1.5 is outside what the setting takes"),
    ("lr: {low: 0.0, high: 0.01}\n", "lr: range 0..0.01 is outside what the setting takes"),
    ("loss: {choices: [focal, 3]}\n", "loss: choice 3 is outside what the setting takes"),
    ("epochs: {low: 1, high: 2.5}\n", "epochs is a whole number"),
    ("lr: {low: 0.01, high: 0.001}\n", "low (0.01) must be below high (0.001)"),
    ("lr: {low: 0, high: 0.01, log: true}\n", "a log scale needs low above 0"),
    ("model: {low: 1, high: 2}\n", "model is not a number: search it with choices"),
    ("name: {choices: [a, b]}\n", "name is set by tune for each trial"),
    ("lr.beta: {low: 0.1, high: 0.2}\n", "lr has no component settings"),
    ("lr: 0.01\n", "lr must be a mapping of low, high, log, type, choices"),
    ("{}\n", "searches nothing"),
])
def test_bad_space_is_one_line(tmp_path, text, expected):
    with pytest.raises(MaskctlError) as error:
        read_space(space_file(tmp_path, text), load_config("cpu-quick"))
    assert expected in str(error.value) and "\n" not in str(error.value)


def test_a_study_refuses_another_base_recipe():
    from maskctl.tune.study import check_same_base

    study = optuna.create_study(study_name="s", direction="maximize")
    check_same_base(study, load_config("cpu-quick"), "memory")
    check_same_base(study, load_config("cpu-quick", {"workers": 3, "device": "cpu"}), "memory")  # the machine's settings may differ
    with pytest.raises(MaskctlError, match="made with another base recipe \\(it differs in: epochs, lr\\)"):
        check_same_base(study, load_config("cpu-quick", {"epochs": 2, "lr": 0.1}), "memory")


class ScriptedTrial:
    """An optuna trial's report/should_prune, pruning when told to at a step."""

    number = 7

    def __init__(self, prune_at: int | None):
        self.prune_at, self.reports = prune_at, []

    def report(self, value, step):
        self.reports.append((step, value))

    def should_prune(self):
        return self.reports[-1][0] == self.prune_at


def fold_state(fold: int, epoch: int, f1: float) -> FoldState:
    return FoldState(config=None, run_dir=Path("r"), fold=fold, fold_dir=Path("r") / f"fold{fold}", epochs=3, epoch=epoch, row={"f1": f1})


def test_pruning_callback_reports_each_epoch_across_folds_and_stops_the_trial():
    trial = ScriptedTrial(prune_at=4)
    callback = PruningCallback(trial)
    callback.on_run_start(RunState(config=None, run_dir=Path("r"), folds=[2, 4]))
    for epoch in range(3):
        state = fold_state(2, epoch, 0.1 * epoch)
        callback.on_epoch_end(state)
        assert state.stop_reason is None
    state = fold_state(4, 0, 0.5)
    callback.on_fit_start(state)
    assert state.stop_reason is None
    callback.on_epoch_end(state)
    assert state.stop_reason is None and not callback.pruned
    state = fold_state(4, 1, 0.05)
    callback.on_epoch_end(state)
    assert "pruned by the tuner after epoch 2" in state.stop_reason and callback.pruned_at == 4
    assert trial.reports == [(0, 0.0), (1, 0.1), (2, 0.2), (3, 0.5), (4, 0.05)]


def test_pruning_callback_ends_later_folds_of_a_pruned_trial():
    callback = PruningCallback(ScriptedTrial(prune_at=0))
    callback.on_run_start(RunState(config=None, run_dir=Path("r"), folds=[0, 1]))
    callback.on_epoch_end(fold_state(0, 0, 0.1))
    later = fold_state(1, 0, 0.9)
    callback.on_fit_start(later)
    assert "pruned in an earlier fold" in later.stop_reason


def test_pruning_callback_prunes_with_optunas_median_pruner():
    """The real pruner: after two trials, one far below their median at an epoch is pruned."""
    study = optuna.create_study(direction="maximize", pruner=optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=1))
    states = []
    for f1s in ([0.3, 0.5], [0.4, 0.6], [0.1, 0.1]):
        trial = study.ask()
        callback = PruningCallback(trial)
        callback.on_run_start(RunState(config=None, run_dir=Path("r"), folds=[0]))
        for epoch, f1 in enumerate(f1s):
            state = fold_state(0, epoch, f1)
            callback.on_epoch_end(state)
            if state.stop_reason:
                break
        states.append(callback.pruned)
        if callback.pruned:
            study.tell(trial, state=optuna.trial.TrialState.PRUNED)
        else:
            study.tell(trial, f1s[-1])
    assert states == [False, False, True]


def test_trials_of_a_dead_worker_on_this_machine_end_failed(tmp_path):
    from optuna.storages.journal import JournalFileBackend

    from maskctl.tune.study import WORKER_ATTR, fail_trials_of_dead_workers, worker_id

    study = optuna.create_study(storage=optuna.storages.JournalStorage(JournalFileBackend(str(tmp_path / "j.log"))))
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    here = worker_id().rpartition("/")[0]
    dead, alive, elsewhere = study.ask(), study.ask(), study.ask()
    dead.set_user_attr(WORKER_ATTR, f"{here}/{gone.pid}")
    alive.set_user_attr(WORKER_ATTR, worker_id())
    elsewhere.set_user_attr(WORKER_ATTR, f"other-host/1/{gone.pid}")
    assert fail_trials_of_dead_workers(study) == [dead.number]
    states = [t.state.name for t in study.get_trials()]
    assert states == ["FAIL", "RUNNING", "RUNNING"]


def test_sampler_is_seeded_per_trial_number():
    from maskctl.tune.study import make_sampler

    def draws(seed):
        study = optuna.create_study(sampler=make_sampler(seed, trials=6))
        return [study.ask().suggest_float("x", 0, 1) for _ in range(3)]

    assert draws(0) == draws(0)
    assert len(set(draws(0))) == 3 and draws(0) != draws(1)


def test_without_optuna_tune_says_how_to_install(monkeypatch):
    from maskctl.tune.study import require_optuna

    monkeypatch.setitem(sys.modules, "optuna", None)
    with pytest.raises(MaskctlError, match=r"pip install 'maskctl\[tune\]'"):
        require_optuna()


LR_CHOICES = lambda n: "lr: {choices: [" + ", ".join(f"{0.0001 * (i + 1):.4f}" for i in range(n)) + "]}\n"  # noqa: E731
DOTTED_RANGES = lambda n: "".join(f"optimizer_args.k{i}: {{low: 0.1, high: 0.2}}\n" for i in range(n))  # noqa: E731


@pytest.mark.parametrize("text, values, refused", [
    (LR_CHOICES(5000), 5000, True),  # thousands of choices: refused before any is checked
    (DOTTED_RANGES(150), 300, True),  # two ends per range
    (LR_CHOICES(120) + "loss: {choices: [ce, focal]}\n" + DOTTED_RANGES(1).replace("k0", "eps"), 124, False),
    (LR_CHOICES(200), 200, False),
])
def test_a_space_is_bounded_and_each_value_checked_once(tmp_path, text, values, refused):
    """The space's size is bounded before any check; below the bound each value (each choice,
    each range end) is checked once, as the recipe a trial would get; what is echoed is cut."""
    import time

    from maskctl.tune.space import MAX_SPACE_VALUES, describe_space

    checked = []
    started = time.monotonic()
    if refused:
        with pytest.raises(MaskctlError) as error:
            read_space(space_file(tmp_path, text), load_config("cpu-quick"), check=checked.append)
        message = str(error.value)
        assert f"{values} values to search in all" in message and str(MAX_SPACE_VALUES) in message and len(message) < 300
        assert checked == [] and time.monotonic() - started < 5
        return
    dimensions = read_space(space_file(tmp_path, text), load_config("cpu-quick"), check=checked.append)
    assert len(checked) == values  # each value once, none twice
    line = describe_space(dimensions)
    assert len(line) < 300 and f"{len(dimensions[0].choices)} in all" in line
