"""A run's time budget: shared equally by the folds still to train, checked after each epoch."""
import pytest

from maskctl.engine.budget import TimeBudget


class Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


def test_each_fold_gets_an_equal_share_of_what_is_left():
    clock = Clock()
    budget = TimeBudget(minutes=1, folds=2, started=clock.now, clock=clock)
    clock.now += 10  # reading and caching the data count too
    budget.start_fold()
    assert budget.fold_deadline == 110 + 25  # half of the 50 s left
    clock.now += 5  # the first fold ends early: the second gets the rest
    budget.start_fold()
    assert budget.fold_deadline == 115 + 45


def test_a_fold_stops_before_an_epoch_that_would_not_fit():
    clock = Clock()
    budget = TimeBudget(minutes=0.5, folds=1, started=clock.now, clock=clock)
    budget.start_fold()
    epochs = 0
    while True:
        budget.start_epoch()
        clock.now += 7
        epochs += 1
        reason = budget.stop_reason()
        if reason:
            break
    assert epochs == 4 and clock.now - 100 <= 30  # a fifth epoch would end at 35 s
    assert "time budget" in reason and "0.5 min" in reason and "7 s" in reason


def test_the_first_epoch_always_runs_even_when_the_budget_is_spent():
    clock = Clock()
    budget = TimeBudget(minutes=0.1, folds=1, started=clock.now - 60, clock=clock)  # spent before training starts
    budget.start_fold()
    budget.start_epoch()
    clock.now += 1
    assert budget.stop_reason() is not None  # the caller runs an epoch before it asks


def _fold_state(scheduler_name: str, epochs: int):
    import torch

    from maskctl.config import TrainConfig
    from maskctl.engine.callbacks import FoldState
    from maskctl.registry import SCHEDULERS

    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(2))], lr=1e-3)
    scheduler = SCHEDULERS.create(scheduler_name, optimizer=optimizer, **({"epochs": epochs} if scheduler_name == "cosine" else {}))
    config = TrainConfig(epochs=epochs, scheduler=scheduler_name)
    return FoldState(config, None, 0, None, epochs, optimizer=optimizer, scheduler=scheduler)


def _run_fold(state, budget, clock, epoch_seconds):
    """fit_fold's loop, as the time budget sees it: epochs of `epoch_seconds` (a number, or one per epoch), stopping
    when a callback says."""
    from maskctl.components.schedulers import planned_epochs, replan_epochs
    from maskctl.engine.fold_callbacks import TimeBudgetStop

    callback = TimeBudgetStop(budget)
    callback.on_fit_start(state)
    lrs = []
    for epoch in range(state.config.epochs):
        state.epoch = epoch
        lrs.append(state.optimizer.param_groups[0]["lr"])
        clock.now += epoch_seconds if isinstance(epoch_seconds, (int, float)) else epoch_seconds[epoch]
        state.optimizer.step()
        state.scheduler.step()
        callback.on_epoch_end(state)
        if state.epochs != (planned_epochs(state.scheduler) or state.epochs):
            replan_epochs(state.scheduler, state.epochs)
        if state.stop_reason:
            break
    return lrs


def test_a_cosine_cut_by_the_budget_is_replanned_to_anneal_by_the_last_epoch_that_fits():
    clock = Clock()
    budget = TimeBudget(minutes=1, folds=1, started=clock.now, clock=clock)
    state = _fold_state("cosine", epochs=20)
    lrs = _run_fold(state, budget, clock, epoch_seconds=10)
    assert len(lrs) == 6 and state.epochs == 6  # 60 s of 10 s epochs
    assert "6 epochs planned" in state.stop_reason
    assert lrs[0] == pytest.approx(1e-3) and lrs[-1] < 1e-4  # annealed, not cut at a high lr
    assert state.scheduler.T_max == 6


def test_other_schedules_are_cut_when_the_next_epoch_would_not_fit():
    clock = Clock()
    budget = TimeBudget(minutes=1, folds=1, started=clock.now, clock=clock)
    state = _fold_state("constant", epochs=20)
    lrs = _run_fold(state, budget, clock, epoch_seconds=10)
    assert len(lrs) == 6 and state.epochs == 20 and "an epoch takes about 10 s" in state.stop_reason
    assert lrs == [1e-3] * 6


def test_one_slow_epoch_does_not_cut_the_plan_for_good():
    clock = Clock()
    budget = TimeBudget(minutes=2, folds=1, started=clock.now, clock=clock)
    state = _fold_state("cosine", epochs=50)
    lrs = _run_fold(state, budget, clock, epoch_seconds=[30] + [10] * 49)  # another job slowed the first epoch
    assert len(lrs) == 10 and clock.now - 100 == 120  # 30 s + 9 x 10 s: the whole budget
    assert state.epochs == 10 and state.scheduler.T_max == 10 and lrs[-1] < 1e-4
