"""fit's training step (maskctl.engine.step.TrainStep): accumulation, clipping, EMA."""
import pytest
import torch

from maskctl.engine.step import TrainStep, create_ema


def mse(model, batch, targets):
    return torch.nn.functional.mse_loss(model(batch), targets)


def linear_step(accumulate=1, clip_grad=None, scaler=None, ema_decay=None, ema_warmup=False):
    """A linear model (no batch statistics: a batch's gradient is the mean of its images')."""
    torch.manual_seed(0)
    model = torch.nn.Linear(6, 3)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    scaler = scaler or torch.amp.GradScaler("cpu", enabled=False)
    return TrainStep(model, optimizer, scaler, mse, torch.device("cpu"), accumulate=accumulate, clip_grad=clip_grad,
                     ema=create_ema(model, ema_decay, ema_warmup))


def data(batches, size=4):
    generator = torch.Generator().manual_seed(1)
    return [(torch.randn(size, 6, generator=generator), torch.randn(size, 3, generator=generator)) for _ in range(batches)]


def weights(step):
    return torch.cat([p.detach().flatten() for p in step.model.parameters()])


def test_accumulating_n_batches_steps_like_one_batch_of_n_times_the_images():
    batches = data(3)
    accumulated = linear_step(accumulate=3)
    stepped = [accumulated(x, y, index, len(batches))[1] for index, (x, y) in enumerate(batches)]
    assert stepped == [False, False, True]
    whole = linear_step()
    whole(torch.cat([x for x, _ in batches]), torch.cat([y for _, y in batches]))
    assert torch.allclose(weights(accumulated), weights(whole), atol=1e-6)


def test_the_last_shorter_group_of_an_epoch_is_stepped_too():
    batches = data(5)
    accumulated = linear_step(accumulate=2)
    stepped = [accumulated(x, y, index, len(batches))[1] for index, (x, y) in enumerate(batches)]
    assert stepped == [False, True, False, True, True]
    groups = linear_step()
    for group in (batches[0:2], batches[2:4], batches[4:5]):
        groups(torch.cat([x for x, _ in group]), torch.cat([y for _, y in group]))
    assert torch.allclose(weights(accumulated), weights(groups), atol=1e-6)


def test_clipping_bounds_the_global_gradient_norm():
    (x, y), = data(1)
    free = linear_step()
    free(x * 100, y)
    grads = lambda step: torch.cat([p.grad.flatten() for p in step.model.parameters()])  # noqa: E731 (kept after the step)
    assert grads(free).norm() > 1.0
    clipped = linear_step(clip_grad=1.0)
    clipped(x * 100, y)
    assert grads(clipped).norm() == pytest.approx(1.0, rel=1e-4)


def test_clipping_under_a_gradient_scaler_clips_the_unscaled_gradients():
    (x, y), = data(1)
    plain = linear_step(clip_grad=0.5)
    plain(x * 100, y)
    scaled = linear_step(clip_grad=0.5, scaler=torch.amp.GradScaler("cpu", init_scale=2.0**10))
    scaled(x * 100, y)
    assert torch.allclose(weights(plain), weights(scaled), atol=1e-6)


def test_the_ema_moves_after_each_optimizer_step_only():
    batches = data(2)
    step = linear_step(accumulate=2, ema_decay=0.5)
    before = [p.clone() for p in step.ema.module.parameters()]
    step(*batches[0], 0, 2)
    assert all(torch.equal(a, b) for a, b in zip(before, step.ema.module.parameters()))
    step(*batches[1], 1, 2)
    for old, new, live in zip(before, step.ema.module.parameters(), step.model.parameters()):
        assert torch.allclose(new, 0.5 * old + 0.5 * live)


def test_a_warming_up_ema_starts_at_the_live_weights_and_remembers_a_growing_share():
    """timm's warm-up: decay 1 - (1 + t)^(-2/3) after t steps (t counted from the first), capped
    at the recipe's decay: the first step copies the weights, later ones average more and more."""
    batches = data(4)
    step = linear_step(ema_decay=0.998, ema_warmup=True)
    step(*batches[0])
    assert step.updates == 1
    assert all(torch.equal(e, p) for e, p in zip(step.ema.module.parameters(), step.model.parameters()))
    before = [p.clone() for p in step.ema.module.parameters()]
    step(*batches[1])
    decay = 1 - 2 ** (-2 / 3)  # after the second step: t = 1
    for old, new, live in zip(before, step.ema.module.parameters(), step.model.parameters()):
        assert torch.allclose(new, decay * old + (1 - decay) * live, atol=1e-6)
    assert step.ema.get_decay(10_000) == pytest.approx(1 - 10_000 ** (-2 / 3)) and step.ema.get_decay(10**7) == 0.998


def fold_state(ema_decay):
    from maskctl.engine.callbacks import FoldState

    step = linear_step(ema_decay=ema_decay)
    meta = {"model": "linear", "num_classes": 3, "class_names": ["a", "b", "c"], "size": [8, 8]}
    scheduler = torch.optim.lr_scheduler.StepLR(step.optimizer, 1)
    state = FoldState(None, None, 0, None, 2, model=step.ema.module if step.ema else step.model, train_model=step.model, optimizer=step.optimizer,
                      scheduler=scheduler, scaler=step.scaler, ema=step.ema, meta=meta)
    return state, step


@pytest.mark.parametrize("ema_decay", [None, 0.9])
def test_last_pt_is_built_and_read_from_one_list_of_keys(tmp_path, ema_decay):
    from maskctl.engine import checkpoint

    state, step = fold_state(ema_decay)
    for x, y in data(2):
        step(x, y)
    state.scheduler.step()
    state.epoch, state.history, state.best_f1, state.best_epoch = 1, [{"f1": 0.5}], 0.5, 0
    saved = checkpoint.training_state(state, {})
    assert set(saved) == {"model", "meta", *checkpoint.RESUME_STATE} - ({"ema"} if ema_decay is None else set())
    checkpoint.save(tmp_path / "last.pt", saved)
    fresh, _ = fold_state(ema_decay)
    checkpoint.restore_training_state(fresh, tmp_path / "last.pt")
    assert (fresh.epoch, fresh.history, fresh.best_f1, fresh.best_epoch) == (1, [{"f1": 0.5}], 0.5, 0)
    assert fresh.scheduler.state_dict() == state.scheduler.state_dict()
    for kept, restored in ((state.train_model, fresh.train_model), (state.model, fresh.model)):
        assert all(torch.equal(a, b) for a, b in zip(kept.state_dict().values(), restored.state_dict().values()))


def test_last_pt_keeps_the_callback_states_and_an_older_one_without_them_still_resumes(tmp_path):
    from maskctl.engine import checkpoint

    path = tmp_path / "last.pt"
    state, _ = fold_state(None)
    checkpoint.save(path, checkpoint.training_state(state, {"counter": {"seen": [[0, 0]], "steps": torch.tensor(3)}}))
    states = checkpoint.restore_training_state(fold_state(None)[0], path)
    assert states["counter"]["seen"] == [[0, 0]] and int(states["counter"]["steps"]) == 3
    assert checkpoint.callback_states(path).keys() == {"counter"}

    older = checkpoint.training_state(state, {})
    del older["callbacks"]  # the last.pt of a maskctl without callback states
    checkpoint.save(path, older)
    assert checkpoint.restore_training_state(fold_state(None)[0], path) == {} and checkpoint.callback_states(path) == {}
