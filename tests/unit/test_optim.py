import pytest
import timm
import torch
from torch import nn

from maskctl.components import optim  # noqa: F401  (registers the optimizers)
from maskctl.components.settings import component_settings
from maskctl.config import TrainConfig
from maskctl.registry import OPTIMIZERS


class Tiny(nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.conv = nn.Conv2d(3, 4, 3)
        self.fc = nn.Linear(4, 3)

    def forward(self, x):
        return self.fc(self.conv(x).mean((2, 3)))


def one_step(model, optimizer, x, y):
    before = [p.detach().clone() for p in model.parameters()]
    optimizer.zero_grad()
    loss = nn.functional.cross_entropy(model(x), y)
    loss.backward()
    optimizer.step()
    return before


@pytest.mark.parametrize("name", ["adamp", "adam", "adamw", "sgd"])
def test_each_optimizer_builds_and_steps(name):
    config = TrainConfig(optimizer=name, lr=1e-2, weight_decay=1e-5, momentum=0.9, nesterov=True)
    model = Tiny()
    optimizer = OPTIMIZERS.create(name, params=model.parameters(), **component_settings("optimizer", config))
    group = optimizer.param_groups[0]
    assert group["lr"] == 1e-2
    assert group["weight_decay"] == 1e-5
    x = torch.randn(2, 3, 8, 8, generator=torch.Generator().manual_seed(1))
    before = one_step(model, optimizer, x, torch.tensor([0, 2]))
    changed = [not torch.equal(b, p) for b, p in zip(before, model.parameters())]
    assert all(changed)


def test_optimizer_settings():
    model = Tiny()
    sgd = OPTIMIZERS.create("sgd", params=model.parameters(), **component_settings("optimizer", TrainConfig(optimizer="sgd", momentum=0.8, nesterov=True)))
    assert sgd.param_groups[0]["momentum"] == 0.8 and sgd.param_groups[0]["nesterov"] is True
    sgd0 = OPTIMIZERS.create("sgd", params=model.parameters(), **component_settings("optimizer", TrainConfig(optimizer="sgd", momentum=0.0, nesterov=True)))
    assert sgd0.param_groups[0]["nesterov"] is False  # torch refuses nesterov without momentum
    adamp = OPTIMIZERS.create("adamp", params=model.parameters(), **component_settings("optimizer", TrainConfig()))
    assert type(adamp).__module__ == "maskctl.components.adamp"
    assert adamp.param_groups[0]["nesterov"] is True
    assert adamp.param_groups[0]["lr"] == 3e-5


def test_adamp_on_channels_last_model():
    torch.manual_seed(0)
    model = timm.create_model("test_resnet", num_classes=3, pretrained=False).to(memory_format=torch.channels_last)
    optimizer = OPTIMIZERS.create("adamp", params=model.parameters(), **component_settings("optimizer", TrainConfig(lr=1e-2)))
    x = torch.randn(2, 3, 16, 16, generator=torch.Generator().manual_seed(0)).contiguous(memory_format=torch.channels_last)
    conv = next(m for m in model.modules() if isinstance(m, nn.Conv2d))
    assert conv.weight.is_contiguous(memory_format=torch.channels_last)
    before = conv.weight.detach().clone()
    for _ in range(2):
        one_step(model, optimizer, x, torch.tensor([0, 1]))
    assert not torch.equal(before, conv.weight)
    assert torch.isfinite(conv.weight).all()
