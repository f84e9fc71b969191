"""What a study found: a table of trials, the settings' importances, a plot and best.yaml."""
from __future__ import annotations

from pathlib import Path

from maskctl.config import TrainConfig, load_config
from maskctl.core import io
from maskctl.core.console import console, note
from maskctl.tune.space import trial_config
from maskctl.tune.study import BASE_ATTR, ERROR_ATTR, RUN_ATTR, WORKER_ATTR

BEST_RECIPE = "best.yaml"
PLOT = "trials.png"
MIN_TRIALS_FOR_IMPORTANCE = 3  # fANOVA fits a forest on the finished trials: fewer say nothing


def show_study(study, study_dir: Path) -> Path | None:
    """Prints the trials and importances; writes trials.png and, once a trial has finished,
    best.yaml. Returns best.yaml's path (None before any trial finished)."""
    from optuna.trial import TrialState

    trials = sorted(study.get_trials(deepcopy=False), key=lambda t: t.number)
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    best = max(complete, key=lambda t: t.value) if complete else None
    console.print(trial_table(study.study_name, trials, best))
    print_importances(study, len(complete))
    study_dir.mkdir(parents=True, exist_ok=True)
    if trials:
        plot_trials(study_dir / PLOT, trials)
        console.print(f"plot: {study_dir / PLOT}")
    if best is None:
        console.print("no trial has finished yet: no best.yaml")
        return None
    path = study_dir / BEST_RECIPE
    if not write_best_recipe(path, study, best):
        note(f"{path} is not the recipe maskctl wrote there (edited by hand?): kept as it is; delete it to have the best recipe written again")
    console.print(f"best: trial {best.number}, validation macro F1 [bold]{best.value:.4f}[/]; "
                  f"recipe {path} (maskctl train --config {path})")
    return path


def trial_table(name: str, trials: list, best):
    from rich.table import Table

    table = Table(title=f"study {name}: {len(trials)} trial(s)")
    for column in ("trial", "state", "macro F1", "settings", "run folder", "note"):
        table.add_column(column, justify="right" if column in ("trial", "macro F1") else "left")
    for trial in trials:
        value = f"{trial.value:.4f}" if trial.value is not None else ""
        settings = ", ".join(f"{k}={_short(v)}" for k, v in trial.params.items())
        style = "bold green" if best is not None and trial.number == best.number else None
        table.add_row(str(trial.number), trial.state.name, value, settings, _run_folder(trial), _note(trial), style=style)
    return table


def _run_folder(trial) -> str:
    """The trial's run folder, prefixed with its worker's host when that is another machine."""
    import socket

    host = str(trial.user_attrs.get(WORKER_ATTR, "")).split("/")[0]
    folder = str(trial.user_attrs.get(RUN_ATTR, ""))
    return f"{host}:{folder}" if host and host != socket.gethostname() else folder


def _note(trial) -> str:
    from optuna.trial import TrialState

    if trial.state == TrialState.PRUNED and trial.intermediate_values:
        step = max(trial.intermediate_values)
        return f"pruned at step {step} (F1 {trial.intermediate_values[step]:.4f})"
    if trial.state == TrialState.FAIL:  # the reason its worker recorded; none when the worker itself stopped mid-trial
        return str(trial.user_attrs.get(ERROR_ATTR, "no reason recorded: its worker stopped mid-trial (killed, or lost its heartbeat)"))
    return ""


def _short(value) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def print_importances(study, complete: int) -> None:
    """fANOVA importance of each searched setting for the macro F1 (Optuna's default evaluator)."""
    if complete < MIN_TRIALS_FOR_IMPORTANCE:
        console.print(f"importances: need at least {MIN_TRIALS_FOR_IMPORTANCE} finished trials ({complete} so far)")
        return
    from optuna.importance import FanovaImportanceEvaluator, get_param_importances

    try:
        importances = get_param_importances(study, evaluator=FanovaImportanceEvaluator(seed=0))
    except (ValueError, RuntimeError) as exc:  # e.g. a search space that changed between trials
        console.print(f"importances: not available ({(str(exc).splitlines() or [''])[0]})")
        return
    console.print("importances: " + ", ".join(f"{name} {share:.2f}" for name, share in importances.items()))


def plot_trials(path: Path, trials: list) -> None:
    """Macro F1 per trial (pruned trials at their last reported F1), and the best so far."""
    from matplotlib.figure import Figure
    from optuna.trial import TrialState

    fig = Figure(figsize=(8, 4))
    ax = fig.subplots()
    complete = [(t.number, t.value) for t in trials if t.state == TrialState.COMPLETE]
    pruned = [(t.number, t.intermediate_values[max(t.intermediate_values)]) for t in trials
              if t.state == TrialState.PRUNED and t.intermediate_values]
    if complete:
        ax.plot(*zip(*complete), "o", label="finished")
        best, steps = float("-inf"), []
        for number, value in complete:
            best = max(best, value)
            steps.append((number, best))
        ax.step(*zip(*steps), where="post", label="best so far")
    if pruned:
        ax.plot(*zip(*pruned), "x", color="grey", label="pruned (last epoch's F1)")
    ax.set_xlabel("trial")
    ax.set_ylabel("validation macro F1")
    if complete or pruned:  # a legend of nothing is a matplotlib warning, printed with its source path
        ax.legend(fontsize=8)
    else:
        ax.text(0.5, 0.5, "no trial finished or pruned yet", ha="center", va="center", transform=ax.transAxes)
    io.save_figure(path, fig)


def best_recipe(study, best) -> TrainConfig:
    """The study's base recipe with the best trial's settings; its runs go to runs/<study>-best."""
    base = load_config(None, study.user_attrs[BASE_ATTR])
    return trial_config(base, best.params, name=f"{study.study_name}-best", runs_dir=TrainConfig.runs_dir)


def write_best_recipe(path: Path, study, best) -> bool:
    """Writes best.yaml, or keeps one that maskctl did not write (a hand-edited recipe): False."""
    import yaml

    config = best_recipe(study, best)
    header = (f"# maskctl tune, study {study.study_name}: trial {best.number} of {len(study.trials)}, validation macro F1 {best.value:.4f}\n"
              f"# its run: {best.user_attrs.get(RUN_ATTR, '?')}; train it again with: maskctl train --config {path}\n")
    return io.replace_own_file(path, header + yaml.safe_dump(config.to_dict(), sort_keys=False), "tune")
