"""maskctl's `adamp` optimizer is timm's AdamP because the `adamp` package crashes on
channels_last models; this checks that the two take the same steps where both work."""
import adamp
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
