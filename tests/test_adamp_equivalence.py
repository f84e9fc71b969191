"""maskctl's `adamp` optimizer is its own sync-free AdamP (the `adamp` package crashes on
channels_last models; this checks that the two take the same steps where both work."""
import adamp
import pytest
import torch
from timm.optim import AdamP


def test_timm_adamp_matches_the_adamp_package_on_a_contiguous_model():
    torch.manual_seed(0)
    reference = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.Flatten(), torch.nn.Linear(4 * 6 * 6, 5))
    ours = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.Flatten(), torch.nn.Linear(4 * 6 * 6, 5))
    ours.load_state_dict(reference.state_dict())
    settings = {"lr": 1e-2, "weight_decay": 1e-5, "nesterov": True}
    optimizers = [adamp.AdamP(reference.parameters(), **settings), AdamP(ours.parameters(), **settings)]
    inputs = torch.randn(8, 3, 8, 8)
    for _ in range(5):
        for model, optimizer in zip((reference, ours), optimizers):
            optimizer.zero_grad()
            model(inputs).square().mean().backward()
            optimizer.step()
    for a, b in zip(reference.parameters(), ours.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def _bn_net():
    # Bias-free convolutions before BatchNorm, as in timm's CNNs: a bias there gets only float
    # noise as gradient, which Adam blows up differently under any rounding change.
    return torch.nn.Sequential(torch.nn.Conv2d(3, 16, 3, bias=False), torch.nn.BatchNorm2d(16), torch.nn.ReLU(),
                               torch.nn.Conv2d(16, 32, 3, bias=False), torch.nn.BatchNorm2d(32), torch.nn.Flatten(), torch.nn.Linear(32 * 4 * 4, 5))


@pytest.mark.parametrize("flat", [True, False])
@pytest.mark.parametrize("nesterov", [True, False])
def test_maskctl_adamp_takes_timms_steps_on_a_channels_last_model(flat, nesterov):
    from maskctl.components.adamp import AdamP as MaskctlAdamP

    torch.manual_seed(0)
    reference = _bn_net()
    ours = _bn_net().to(memory_format=torch.channels_last)
    ours.load_state_dict(reference.state_dict())
    settings = {"lr": 1e-2, "weight_decay": 1e-2, "nesterov": nesterov}
    optimizers = [AdamP(reference.parameters(), **settings), MaskctlAdamP(ours.parameters(), flat=flat, **settings)]
    inputs = torch.randn(8, 3, 8, 8)
    for _ in range(10):
        for model, optimizer in zip((reference, ours), optimizers):
            optimizer.zero_grad()
            model(inputs).square().mean().backward()
            optimizer.step()
    for a, b in zip(reference.parameters(), ours.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)


def test_both_projections_and_none_match_timm_in_one_flat_step():
    """One group holding a matrix whose gradient is orthogonal to it per channel (channel
    projection), one orthogonal only as a whole (layer projection), one aligned (no projection),
    a vector, and a step-count mismatch between parameters."""
    from maskctl.components.adamp import AdamP as MaskctlAdamP

    torch.manual_seed(1)
    weights = [torch.randn(6, 4, 3, 3), torch.randn(5, 40), torch.randn(4, 8), torch.randn(7)]
    grads = [torch.randn_like(w) for w in weights]
    w, g = weights[0].reshape(6, -1), grads[0].reshape(6, -1)
    grads[0] = (g - (g * w).sum(1, keepdim=True) / (w * w).sum(1, keepdim=True) * w).reshape(weights[0].shape)
    grads[1] = grads[1] - (grads[1] * weights[1]).sum() / (weights[1] * weights[1]).sum() * weights[1]
    grads[2] = weights[2] * 3 + 0.01 * grads[2]
    results = []
    for make in (lambda ps: AdamP(ps, lr=1e-2, weight_decay=0.1, nesterov=True), lambda ps: MaskctlAdamP(ps, lr=1e-2, weight_decay=0.1, nesterov=True, flat=True)):
        params = [torch.nn.Parameter(w.clone()) for w in weights]
        optimizer = make(params)
        for step in range(3):
            for i, (p, grad) in enumerate(zip(params, grads)):
                p.grad = None if (step == 0 and i == 2) else grad * (step + 1)  # matrix 2 starts a step late
            optimizer.step()
        results.append(params)
    for a, b in zip(*results):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def test_a_timm_adamp_state_resumes_in_maskctl_adamp():
    from maskctl.components.adamp import AdamP as MaskctlAdamP

    torch.manual_seed(0)
    model = _bn_net()
    timm_optimizer = AdamP(model.parameters(), lr=1e-2, nesterov=True)
    model(torch.randn(4, 3, 8, 8)).sum().backward()
    timm_optimizer.step()
    ours = MaskctlAdamP(model.parameters(), lr=1e-2, nesterov=True)
    ours.load_state_dict(timm_optimizer.state_dict())
    ours.step()
    assert all(ours.state[p]["step"] == 2 for p in model.parameters())
