"""The Python API end to end on a tiny synthetic set: train -> Run -> predict -> ensemble ->
export, the same files as the command line, errors as MaskctlError, quiet means silent."""
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from cli_helpers import invoke

import maskctl

TINY = dict(model="test_resnet", size="64x48", batch_size=16, lr=0.003, optimizer="adamw", scheduler="cosine", augmentation="light",
            device="cpu", workers=0, folds=2, epochs=1)


class Events(maskctl.Callback):
    """A caller's callback object, passed to train beside the run's own."""

    def __init__(self):
        self.seen = []

    def on_fit_end(self, state):
        self.seen.append(("fit_end", state.fold))

    def on_run_end(self, run):
        self.seen.append(("run_end", None))


@pytest.fixture(scope="module")
def trained(synth_data, tmp_path_factory):
    """One tiny run for every test here, predicted on the eval folder into the run folder."""
    events = Events()
    run = maskctl.train("cpu-quick", data=synth_data / "train", runs_dir=tmp_path_factory.mktemp("api-runs"), name="api",
                        callbacks=[events], quiet=True, **TINY)
    submission, probs = run.predict(synth_data / "eval", device="cpu", workers=0, quiet=True)
    return run, events, submission, probs


def test_train_returns_a_run_with_its_scores(trained, synth_data):
    run, events, _, _ = trained
    assert isinstance(run, maskctl.Run) and run.path.name == "api" and (run.path / "summary.json").is_file()
    assert events.seen == [("fit_end", 0), ("fit_end", 1), ("run_end", None)]
    scores = run.scores
    assert list(scores.index) == ["fold 0", "fold 1", "oof"]
    assert scores["f1"].between(0, 1).all() and set(scores.loc[["fold 0", "fold 1"], "epochs"]) == {1}
    assert scores.loc["oof", "images"] == len(pd.read_csv(synth_data / "train" / "train.csv")) * 7
    assert run.config.model == "test_resnet" and run.config.epochs == 1
    assert sorted(run.metrics["fold"].unique()) == [0, 1]
    assert maskctl.Run(str(run.path)) == run  # reopened from its path


def test_predict_returns_and_writes_what_the_command_writes(trained, synth_data, tmp_path):
    run, _, submission, probs = trained
    info = pd.read_csv(synth_data / "eval" / "info.csv", dtype={"ImageID": str})
    assert submission["ImageID"].tolist() == info["ImageID"].tolist()
    assert list(probs.columns) == ["ImageID", *[f"p{c}" for c in range(18)]]
    assert probs[[f"p{c}" for c in range(18)]].sum(axis=1).round(3).eq(1).all()
    result = invoke("predict", run.path, "--data", synth_data / "eval", "--out", tmp_path, "--device", "cpu", "--workers", "0")
    assert result.exit_code == 0, result.output
    for name in ("submission.csv", "probs.csv"):
        assert (tmp_path / name).read_bytes() == (run.path / name).read_bytes()


def test_ensemble_and_export(trained, synth_data, tmp_path):
    run, _, submission, _ = trained
    ensembled, probs = maskctl.ensemble([run, str(run.path)], out=tmp_path / "ensemble", quiet=True)
    assert (tmp_path / "ensemble" / "ensemble.json").is_file()
    assert ensembled.equals(pd.read_csv(tmp_path / "ensemble" / "submission.csv", dtype={"ImageID": str}))
    assert ensembled["ImageID"].tolist() == submission["ImageID"].tolist() and len(probs) == len(submission)

    export = maskctl.export(run, out=tmp_path / "export", quiet=True)
    assert (export / "model.onnx").is_file()
    served, _ = maskctl.predict(export, synth_data / "eval", quiet=True)
    assert served["ImageID"].tolist() == submission["ImageID"].tolist()
    assert (export / "submission.csv").is_file()


def test_quiet_prints_nothing(trained, synth_data, tmp_path, capsys):
    run, _, _, _ = trained
    run.predict(synth_data / "eval", out=tmp_path / "quiet", device="cpu", workers=0, quiet=True)
    with maskctl.quiet():
        maskctl.split(synth_data / "train", folds=2, out=tmp_path / "folds.csv")
    assert capsys.readouterr() == ("", "")
    folds = maskctl.split(synth_data / "train", folds=2, out=tmp_path / "folds.csv", overwrite=True)  # loud again after the block
    assert "wrote" in capsys.readouterr().out
    assert set(folds.columns) == {"person", "fold"} and set(folds["fold"]) == {0, 1}


def test_mistakes_are_maskctl_errors(trained, synth_data, tmp_path):
    run, _, _, _ = trained
    with pytest.raises(maskctl.MaskctlError, match=r"unknown setting 'epoch' \(did you mean epochs\?\); the settings are .*folds_file"):
        maskctl.train("cpu-quick", epoch=1)
    with pytest.raises(maskctl.MaskctlError, match="setting epochs must be at least 1"):
        maskctl.train("cpu-quick", epochs=0)
    with pytest.raises(maskctl.MaskctlError, match=r"maskctl.predict: unknown keyword 'dat' \(did you mean data\?\); it takes run, data, out"):
        run.predict(dat=synth_data / "eval")
    with pytest.raises(maskctl.MaskctlError, match="pairs must be at least 1"):
        maskctl.explain(run, pairs=0)
    with pytest.raises(maskctl.MaskctlError, match="already holds submission.csv"):
        run.predict(synth_data / "eval", quiet=True)  # the fixture's predictions stay
    for folder in (synth_data / "train", tmp_path / "missing"):
        with pytest.raises(maskctl.MaskctlError, match="is not a run folder"):
            maskctl.Run(folder)
    assert not (tmp_path / "eda").exists()
    with pytest.raises(maskctl.MaskctlError):
        maskctl.eda(tmp_path / "no-such-data", out=tmp_path / "eda")
    assert not (tmp_path / "eda").exists()


def test_the_settings_errors_the_docs_show_are_the_errors_raised():
    """docs/python-api.md's block of mistakes, each line run as printed: the comment under it is
    the start of the error's message (up to its '...')."""
    page = (Path(__file__).resolve().parents[2] / "docs" / "python-api.md").read_text()
    block = page.split('```python\nmaskctl.train("cpu-quick", epoch=1)\n', 1)[1].split("```", 1)[0]
    lines = ['maskctl.train("cpu-quick", epoch=1)', *block.strip().splitlines()]
    calls = lines[0::2]
    shown = [line.removeprefix("# MaskctlError: ").removesuffix("...") for line in lines[1::2]]
    assert len(calls) == len(shown) >= 2
    for call, message in zip(calls, shown):
        with pytest.raises(maskctl.MaskctlError) as raised:
            exec(call, {"maskctl": maskctl})
        assert str(raised.value).startswith(message), (call, str(raised.value))


def test_import_maskctl_stays_light_and_names_the_api():
    code = ("import sys, maskctl; heavy = [m for m in ('torch', 'pandas', 'timm', 'rich', 'maskctl.api') if m in sys.modules]; "
            "print(heavy); from maskctl import Callback, MaskctlError, registry")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.stdout.splitlines()[0] == "[]", result.stdout + result.stderr
    import inspect

    import maskctl.api
    import maskctl.commands.report  # noqa: F401  subpackages and modules imported: none replaces a function of the API
    import maskctl.tune  # noqa: F401

    assert set(maskctl.api.__all__) == {name for name, module in maskctl._PUBLIC.items() if module == "maskctl.api"}
    for name in maskctl.__all__:
        assert inspect.ismodule(getattr(maskctl, name)) == (name in ("config", "registry")), name
    assert "train" in dir(maskctl) and "Run" in dir(maskctl)
    with pytest.raises(AttributeError):
        maskctl.no_such_name  # noqa: B018


def test_bench_and_bench_quality_return_what_they_write(synth_data, tmp_path):
    """The benchmarks as functions: the record returned is the file written."""
    import json

    from test_cli_bench import tiny_recipe

    speed = maskctl.bench("loader", data=synth_data / "train", out=tmp_path / "speed", batches=2, device="cpu", quiet=True)
    assert speed == json.loads((tmp_path / "speed" / "bench.json").read_text())
    assert [row["size"] for row in speed["loader"]] == ["512x384", "96x72"] and all(row["ratio"] > 0 for row in speed["loader"])
    quality = maskctl.bench_quality(out=tmp_path / "q", config=tiny_recipe(tmp_path), minutes=0.02, styles=["hard"], seeds=[3],
                                    train_seeds=[0, 1], people=12, eval_people=4, image_size="64x48", device="cpu", quiet=True)
    assert quality == json.loads((tmp_path / "q" / "quality.json").read_text())
    assert [(row["data"], row["train_seed"]) for row in quality["rows"]] == [("hard/seed3", 0), ("hard/seed3", 1)]
    assert quality["worst_gap"] == min(row["gap"] for row in quality["rows"])


@pytest.mark.parametrize("call, message", [
    (lambda out: maskctl.bench("loadr", out=out), r"what must be one of loader, train, predict, all, got 'loadr' \(did you mean loader\?\)"),
    (lambda out: maskctl.bench("loader", out=out, repeats=3), "the loader measurement does not take repeats; it takes batches, workers"),
    (lambda out: maskctl.bench("all", out=out, batches=1), "batches must be at least 2"),
    (lambda out: maskctl.bench_quality(out=out, styles=["real", "hrad"]), "did you mean hard"),
    (lambda out: maskctl.bench_quality(out=out, seeds=[0, "x"]), "seeds must be different whole numbers"),
    (lambda out: maskctl.bench_quality(out=out, train_seeds=[1, 1]), "train_seeds must be different whole numbers"),
    (lambda out: maskctl.bench_quality(out=out, minutes=0), "minutes must be"),
    (lambda out: maskctl.bench_quality(out=out, config="cpu-scor"), "cpu-score"),
    (lambda out: maskctl.bench_quality(out=out, styles=7), "styles must be a list or a comma-separated text"),
    (lambda out: maskctl.bench_quality(out=out, seeds=None), "seeds must be a list"),
    (lambda out: maskctl.bench_quality(out=out, image_size=64), "64"),
])
def test_bench_mistakes_fail_before_any_work(call, message, tmp_path):
    with pytest.raises(maskctl.MaskctlError, match=message):
        call(tmp_path / "out")
    assert not (tmp_path / "out").exists()
