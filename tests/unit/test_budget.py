"""A run's time budget: shared equally by the folds still to train, checked after each epoch."""
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
