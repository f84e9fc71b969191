import math
import warnings
from dataclasses import replace

import pytest
import torch

from maskctl.components import schedulers as S
from maskctl.components.settings import component_settings
from maskctl.config import TrainConfig
from maskctl.core.errors import MaskctlError
from maskctl.registry import SCHEDULERS

SEED = dict(base_lr=3e-5, eta_max=3e-4, t0=10, t_mult=1, t_up=3, gamma=1.0)

# Worked out by hand: warm-up base + (peak - base) * t / 3 for t < 3, then
# base + (peak - base) * (1 + cos(pi * (t - 3) / 7)) / 2, with peak - base = 2.7e-4 and
# cos(k pi / 7) = 0.9009688679, 0.6234898019, 0.2225209340, -0.2225209340, -0.6234898019, -0.9009688679.
SEED_CYCLE = [
    3e-5,  # epoch 0: the base lr
    1.2e-4,  # 3e-5 + 2.7e-4 / 3
    2.1e-4,  # 3e-5 + 2 * 2.7e-4 / 3
    3e-4,  # the peak
    2.866307972e-4,
    2.491711233e-4,
    1.950403261e-4,
    1.349596739e-4,
    8.082887675e-5,
    4.336920283e-5,
]


@pytest.mark.parametrize("epoch", range(30))
def test_seed_curve_by_hand(epoch):
    assert S.warmup_restart_lr(epoch, **SEED) == pytest.approx(SEED_CYCLE[epoch % 10], rel=1e-8)


def test_restart_returns_to_base():
    assert S.warmup_restart_lr(10, **SEED) == pytest.approx(3e-5, rel=1e-12)
    assert S.warmup_restart_lr(13, **SEED) == pytest.approx(3e-4, rel=1e-12)


def make_optimizer(lr=3e-5):
    return torch.optim.SGD([torch.nn.Parameter(torch.zeros(2))], lr=lr)


def run_epochs(optimizer, scheduler, epochs):
    seen = []
    for _ in range(epochs):
        seen.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    return seen


def test_scheduler_drives_optimizer_over_20_epochs():
    optimizer = make_optimizer()
    scheduler = S.WarmupRestarts(optimizer, eta_max=3e-4, t0=10, t_mult=1, t_up=3, gamma=1.0)
    seen = run_epochs(optimizer, scheduler, 20)
    assert seen == pytest.approx(SEED_CYCLE * 2, rel=1e-8)


def test_registry_builds_seed_scheduler_from_config():
    optimizer = make_optimizer()
    config = TrainConfig()
    scheduler = SCHEDULERS.create("cosine-warmup-restarts", optimizer=optimizer, **component_settings("scheduler", replace(config, scheduler="cosine-warmup-restarts", epochs=20)))
    assert isinstance(scheduler, S.WarmupRestarts)
    assert run_epochs(optimizer, scheduler, 12) == pytest.approx(SEED_CYCLE + SEED_CYCLE[:2], rel=1e-8)


def test_t_mult_2_cycle_lengths():
    params = dict(base_lr=3e-5, eta_max=3e-4, t0=4, t_mult=2, t_up=1)
    lrs = [S.warmup_restart_lr(e, **params) for e in range(30)]
    restarts = [e for e, lr in enumerate(lrs) if lr == pytest.approx(3e-5, rel=1e-12)]
    assert restarts == [0, 4, 12, 28]  # cycles of 4, 8, 16 epochs
    peaks = [e for e, lr in enumerate(lrs) if lr == pytest.approx(3e-4, rel=1e-12)]
    assert peaks == [1, 5, 13, 29]
    # first cycle by hand: cos(pi/3) = 0.5, cos(2 pi/3) = -0.5
    assert lrs[2] == pytest.approx(3e-5 + 2.7e-4 * 0.75, rel=1e-9)
    assert lrs[3] == pytest.approx(3e-5 + 2.7e-4 * 0.25, rel=1e-9)
    # second cycle (8 epochs, 1 warm-up) has the same 7-step cosine as the seed's
    assert lrs[6:12] == pytest.approx(SEED_CYCLE[4:10], rel=1e-8)


def test_t_mult_2_scheduler_matches_function():
    optimizer = make_optimizer()
    scheduler = S.WarmupRestarts(optimizer, eta_max=3e-4, t0=4, t_mult=2, t_up=1)
    expected = [S.warmup_restart_lr(e, 3e-5, 3e-4, 4, 2, 1) for e in range(14)]
    assert run_epochs(optimizer, scheduler, 14) == pytest.approx(expected, rel=1e-10)


def test_gamma_halves_second_peak():
    params = dict(SEED, gamma=0.5)
    assert S.warmup_restart_lr(3, **params) == pytest.approx(3e-4, rel=1e-12)
    assert S.warmup_restart_lr(13, **params) == pytest.approx(1.5e-4, rel=1e-12)
    assert S.warmup_restart_lr(23, **params) == pytest.approx(7.5e-5, rel=1e-12)
    assert S.warmup_restart_lr(10, **params) == pytest.approx(3e-5, rel=1e-12)
    # warm-up of the second cycle heads for the lower peak: 3e-5 + (1.5e-4 - 3e-5) / 3
    assert S.warmup_restart_lr(11, **params) == pytest.approx(7e-5, rel=1e-10)


def test_state_dict_round_trip_resumes_curve():
    model = torch.nn.Linear(2, 1)
    optimizer = torch.optim.SGD(model.parameters(), lr=3e-5, momentum=0.9)
    scheduler = S.WarmupRestarts(optimizer, eta_max=3e-4, t0=10, t_up=3)
    run_epochs(optimizer, scheduler, 7)
    saved_opt, saved_sched = optimizer.state_dict(), scheduler.state_dict()

    model2 = torch.nn.Linear(2, 1)
    optimizer2 = torch.optim.SGD(model2.parameters(), lr=3e-5, momentum=0.9)
    scheduler2 = S.WarmupRestarts(optimizer2, eta_max=3e-4, t0=10, t_up=3)
    optimizer2.load_state_dict(saved_opt)
    scheduler2.load_state_dict(saved_sched)
    assert scheduler2.last_epoch == 7
    assert run_epochs(optimizer2, scheduler2, 13) == pytest.approx((SEED_CYCLE * 2)[7:20], rel=1e-8)


@pytest.mark.parametrize("kwargs", [dict(t0=10, t_up=10), dict(t0=10, t_up=11), dict(t0=10, t_up=-1), dict(t0=0, t_up=0), dict(t0=10, t_up=3, t_mult=0)])
def test_bad_parameters(kwargs):
    with pytest.raises(MaskctlError):
        S.WarmupRestarts(make_optimizer(), eta_max=3e-4, **kwargs)


def test_no_warmup():
    # t_up = 0: pure cosine from the peak, restarting at the peak
    assert S.warmup_restart_lr(0, 1e-5, 1e-3, 4, t_up=0) == pytest.approx(1e-3)
    assert S.warmup_restart_lr(2, 1e-5, 1e-3, 4, t_up=0) == pytest.approx(1e-5 + (1e-3 - 1e-5) * 0.5)
    assert S.warmup_restart_lr(4, 1e-5, 1e-3, 4, t_up=0) == pytest.approx(1e-3)


def test_other_schedulers_build_and_step():
    config = TrainConfig(lr=1e-3, t0=2)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        optimizer = make_optimizer(1e-3)
        step = SCHEDULERS.create("step", optimizer=optimizer, **component_settings("scheduler", replace(config, scheduler="step", epochs=6)))
        assert run_epochs(optimizer, step, 5) == pytest.approx([1e-3, 1e-3, 5e-4, 5e-4, 2.5e-4])

        optimizer = make_optimizer(1e-3)
        cosine = SCHEDULERS.create("cosine", optimizer=optimizer, **component_settings("scheduler", replace(config, scheduler="cosine", epochs=4)))
        lrs = run_epochs(optimizer, cosine, 5)
        assert lrs[0] == pytest.approx(1e-3)
        assert lrs[2] == pytest.approx((1e-3 + 1e-5) / 2)
        assert lrs[4] == pytest.approx(1e-5)

        optimizer = make_optimizer(1e-3)
        plateau = SCHEDULERS.create("plateau", optimizer=optimizer, **component_settings("scheduler", replace(config, scheduler="plateau", epochs=6)))
        for f1 in [0.5, 0.5, 0.5, 0.5]:
            optimizer.step()
            S.step_scheduler(plateau, f1)
        assert optimizer.param_groups[0]["lr"] == pytest.approx(5e-4)


def test_a_replanned_cosine_anneals_to_its_floor_at_the_new_end_and_a_resume_keeps_the_plan():
    optimizer = make_optimizer(1e-3)
    cosine = SCHEDULERS.create("cosine", optimizer=optimizer, epochs=12)
    assert S.planned_epochs(cosine) == 12
    optimizer.step()
    cosine.step()  # epoch 1 of 12
    assert S.replan_epochs(cosine, 4)  # a time budget finds 4 epochs fit
    assert optimizer.param_groups[0]["lr"] == pytest.approx(1e-5 + (1e-3 - 1e-5) * (1 + math.cos(math.pi / 4)) / 2)  # at once
    lrs = run_epochs(optimizer, cosine, 3)
    assert lrs[-1] > 1e-5 and cosine.get_last_lr()[0] == pytest.approx(1e-5)  # epoch 3 ends the curve: the next lr is the floor
    resumed_optimizer = make_optimizer(1e-3)
    resumed = SCHEDULERS.create("cosine", optimizer=resumed_optimizer, epochs=12)
    resumed.load_state_dict(cosine.state_dict())
    assert S.planned_epochs(resumed) == 4


def test_schedules_that_cannot_be_replanned_say_so():
    optimizer = make_optimizer(1e-3)
    step = SCHEDULERS.create("step", optimizer=optimizer, t0=2)
    assert not S.replan_epochs(step, 3) and S.planned_epochs(step) is None
