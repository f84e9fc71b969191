"""The Python API: every command as a function a notebook can call, importable from `maskctl`
itself (lazily: `import maskctl` imports none of this until a name is used).

    run = maskctl.train("cpu-quick", data="data/train", folds=2, epochs=1, device="cpu")
    run.scores; submission, probs = run.predict("data/eval")

Modules: door (argument checks, quiet, errors), run (maskctl.Run), training, data,
predictions, inspect, benchmarks.
"""
from maskctl.api.benchmarks import bench, bench_quality
from maskctl.api.data import eda, split, synth
from maskctl.api.door import quiet
from maskctl.api.inspect import audit, demo, explain, pseudo, report
from maskctl.api.predictions import ensemble, export, predict, tta_eval
from maskctl.api.run import Run
from maskctl.api.training import resume, show_study, train, tune_study

__all__ = ["Run", "audit", "bench", "bench_quality", "demo", "eda", "ensemble", "explain", "export", "predict", "pseudo", "quiet", "report", "resume", "show_study",
           "split", "synth", "train", "tta_eval", "tune_study"]
