"""The training loop's seam: events in order (across a resume too), one-line errors naming the
callback, rank-0-only callbacks, the callbacks registry."""
import pytest

from maskctl.core.errors import MaskctlError
from maskctl.engine.callbacks import Callback, CallbackError, CallbackList, FoldState
from maskctl.registry import CALLBACKS


class Boom(Callback):
    name = "boom"

    def on_epoch_end(self, state):
        raise ValueError("disk on fire")


class Quiet(Callback):
    main_process_only = False

    def __init__(self):
        self.seen = []

    def on_epoch_end(self, state):
        self.seen.append(state.epoch)


def test_a_failing_callback_is_one_error_naming_it():
    with pytest.raises(CallbackError, match=r"^callback boom failed in on_epoch_end: ValueError: disk on fire$"):
        CallbackList([Boom()])("on_epoch_end", None)


def test_a_full_disk_in_a_callback_names_the_file_and_the_callback():
    class Full(Callback):
        name = "last-checkpoint"

        def on_epoch_end(self, state):
            raise OSError(28, "No space left on device", "runs/exp/fold0/last.pt")

    with pytest.raises(CallbackError, match=r"^callback last-checkpoint \(on_epoch_end\): runs/exp/fold0/last.pt: No space left on device$"):
        CallbackList([Full()])("on_epoch_end", None)


def test_worker_ranks_run_only_callbacks_that_neither_write_nor_log():
    quiet = Quiet()
    callbacks = CallbackList([Boom(), quiet], is_main=False)
    callbacks("on_epoch_end", FoldState(None, None, 0, None, 1, epoch=3))
    assert quiet.seen == [3]


def test_the_default_callbacks_are_listed_and_cannot_be_added_twice():
    from maskctl.engine.fold_callbacks import DEFAULT_CALLBACKS, check_callback_names

    assert set(DEFAULT_CALLBACKS) <= set(CALLBACKS.names())
    with pytest.raises(MaskctlError, match="always on"):
        check_callback_names(["console"])
    with pytest.raises(MaskctlError, match="Did you mean 'early-stopping'"):
        check_callback_names(["early-stoping"])


class Recorder(Callback):
    """Records (event, fold, epoch, resumed_from); fails once at fold 0's first epoch end."""

    events: list = []
    fail_once = True

    def __init__(self, config):
        pass

    def _record(self, event, state):
        Recorder.events.append((event, getattr(state, "fold", None), getattr(state, "epoch", None), getattr(state, "resumed_from", None)))

    def on_run_start(self, run):
        self._record("on_run_start", run)

    def on_fit_start(self, state):
        self._record("on_fit_start", state)

    def on_train_batch_end(self, state):
        self._record("on_train_batch_end", state)

    def on_epoch_end(self, state):
        self._record("on_epoch_end", state)
        if Recorder.fail_once:
            Recorder.fail_once = False
            raise RuntimeError("stop here")

    def on_best(self, state):
        self._record("on_best", state)

    def on_fit_end(self, state):
        self._record("on_fit_end", state)

    def on_run_end(self, run):
        assert run.summary is not None and "mean_f1" in run.summary
        self._record("on_run_end", run)


@pytest.fixture
def recorder():
    CALLBACKS.register("test-recorder")(Recorder)
    yield Recorder
    CALLBACKS._entries.pop("test-recorder")


def without_batches(events):
    return [e for e in events if e[0] != "on_train_batch_end"]


def test_events_in_order_across_a_failure_and_a_resume(recorder, tmp_path):
    from maskctl.config import load_config
    from maskctl.data.synth import synthesize
    from maskctl.engine import kfold

    synthesize(tmp_path / "data", people=12, eval_people=0, seed=3, width=48, height=64, show_progress=False)
    config = load_config(None, {"data": str(tmp_path / "data" / "train"), "folds": 2, "epochs": 2, "model": "test_resnet", "size": "64x48",
                                "batch_size": 16, "optimizer": "adamw", "scheduler": "cosine", "augmentation": "light", "device": "cpu",
                                "workers": 0, "runs_dir": str(tmp_path / "runs"), "callbacks": ["test-recorder"]})
    with pytest.raises(CallbackError, match="callback test-recorder failed in on_epoch_end: RuntimeError: stop here"):
        kfold.train(config)
    run = tmp_path / "runs" / "exp"
    assert (run / "fold0" / "last.pt").is_file() and (run / "fold0" / "metrics.csv").is_file()  # written before the failing callback
    first = without_batches(recorder.events)
    assert first == [("on_run_start", None, None, None), ("on_fit_start", 0, 0, None), ("on_epoch_end", 0, 0, None)]
    batches = [e for e in recorder.events if e[0] == "on_train_batch_end"]
    assert batches and all(e[1:3] == (0, 0) for e in batches)

    recorder.events.clear()
    kfold.resume(run)
    events = without_batches(recorder.events)
    assert events[:3] == [("on_run_start", None, None, None), ("on_fit_start", 0, 0, 0), ("on_epoch_end", 0, 1, 0)]  # epoch 0 is not replayed
    fold1 = [e for e in events if e[1] == 1]
    assert fold1[0] == ("on_fit_start", 1, 0, None)
    assert fold1[1:3] == [("on_epoch_end", 1, 0, None), ("on_best", 1, 0, None)]  # the first epoch is always a new best
    assert events.index(("on_fit_end", 0, 1, 0)) < events.index(fold1[0])  # fold 0 ends before fold 1 starts
    assert events[-2][0] == "on_fit_end" and events[-1][0] == "on_run_end"
    # on_best follows its epoch's on_epoch_end, never another's
    for index, event in enumerate(events):
        if event[0] == "on_best":
            assert events[index - 1][:3] == ("on_epoch_end", *event[1:3])


class Counter(Callback):
    """Counts the epochs it sees; its state is what a resume must give back."""

    name = "counter"

    def __init__(self, state=None):
        self.seen = [] if state is None else state

    def on_epoch_end(self, state):
        self.seen.append(state.epoch)

    def state_dict(self):
        return {"seen": self.seen} if self.seen else {}

    def load_state_dict(self, state):
        self.seen = list(state["seen"])


def test_callback_states_are_keyed_by_name_and_given_back():
    import torch

    first, second, stateless = Counter([1, 2]), Counter([torch.tensor(5)]), Quiet()
    states = CallbackList([first, second, stateless, Counter()]).state_dicts()
    assert states == {"counter": {"seen": [1, 2]}, "counter#2": {"seen": [torch.tensor(5)]}}  # no state, no entry
    again = [Counter(), Counter(), Counter([7])]
    CallbackList(again).load_state_dicts(states)
    assert [c.seen for c in again] == [[1, 2], [torch.tensor(5)], [7]]  # none saved under counter#3: it keeps its own


def test_a_state_that_is_not_plain_data_is_one_line_naming_the_callback():
    import numpy as np

    with pytest.raises(CallbackError, match=r"^callback counter: state_dict\(\)\['seen'\]\[1\] is a numpy.float64; last.pt keeps plain data only"):
        CallbackList([Counter([1, np.float64(0.5)])]).state_dicts()

    class NotADict(Callback):
        name = "odd"

        def state_dict(self):
            return [1]

    with pytest.raises(CallbackError, match=r"^callback odd: state_dict\(\) must return a dict, not list$"):
        CallbackList([NotADict()]).state_dicts()


def test_a_failing_on_run_failed_is_a_warning_and_every_callback_is_told(capsys):
    told = []

    class Breaks(Callback):
        name = "breaks"

        def on_run_failed(self, run, error):
            raise RuntimeError("cannot reach the server")

    class Listens(Callback):
        def on_run_failed(self, run, error):
            told.append(error)

    error = ValueError("the original")
    CallbackList([Breaks(), Listens()]).run_failed(None, error)
    assert told == [error]
    assert "warning: callback breaks failed in on_run_failed: RuntimeError: cannot reach the server" in capsys.readouterr().err


class FoldCounter(Callback):
    """Every (fold, epoch) it sees, kept across a resume; fails once when fold 1 starts."""

    fail_once = True
    counted: list = []

    def __init__(self, config):
        self.seen = []

    def on_fit_start(self, state):
        if state.fold == 1 and FoldCounter.fail_once:
            FoldCounter.fail_once = False
            raise RuntimeError("stop between the folds")

    def on_epoch_end(self, state):
        self.seen.append([state.fold, state.epoch])

    def state_dict(self):
        return {"seen": self.seen}

    def load_state_dict(self, state):
        self.seen = state["seen"]

    def on_run_end(self, run):
        FoldCounter.counted = self.seen


def test_a_resume_between_folds_gives_back_the_state_of_the_last_finished_fold(tmp_path):
    from maskctl.config import load_config
    from maskctl.data.synth import synthesize
    from maskctl.engine import kfold

    CALLBACKS.register("test-fold-counter")(FoldCounter)
    try:
        synthesize(tmp_path / "data", people=12, eval_people=0, seed=3, width=48, height=64, show_progress=False)
        config = load_config(None, {"data": str(tmp_path / "data" / "train"), "folds": 2, "epochs": 1, "model": "test_resnet", "size": "64x48",
                                    "batch_size": 16, "device": "cpu", "workers": 0, "runs_dir": str(tmp_path / "runs"),
                                    "callbacks": ["test-fold-counter"]})
        with pytest.raises(CallbackError, match="stop between the folds"):
            kfold.train(config)
        run = tmp_path / "runs" / "exp"
        assert (run / "fold0" / "result.json").is_file() and not (run / "fold1" / "last.pt").exists()
        kfold.resume(run)  # fold 1 has no last.pt: the counter's state comes from fold 0's
        assert FoldCounter.counted == [[0, 0], [1, 0]]
    finally:
        CALLBACKS._entries.pop("test-fold-counter")
