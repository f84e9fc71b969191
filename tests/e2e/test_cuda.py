"""The CUDA path, where it differs from the CPU's: AMP with GradScaler, channels_last, pinned
memory and loader workers feeding a GPU, DDP over NCCL (torchrun with one process), and
predict's CUDA batches. Skipped without a GPU; `pytest -m cuda` runs only these."""
import json
import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import torch
from cli_helpers import TINY, invoke

pytestmark = [pytest.mark.cuda, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")]

# The tiny CPU options on the GPU, with loader workers feeding pinned memory.
ON_CUDA = ["cuda" if option == "cpu" else option for option in TINY[:-2]] + ["--workers", "2"]


@pytest.fixture(scope="module")
def cuda_run(synth_data, tmp_path_factory):
    runs = tmp_path_factory.mktemp("cuda-runs")
    result = invoke("train", "--data", synth_data / "train", "--epochs", "2", "--val-ratio", "0.25", *ON_CUDA, "--runs-dir", runs, "--name", "gpu")
    assert result.exit_code == 0, result.output
    assert "device cuda:0" in result.output
    return runs / "gpu"


def test_amp_training_keeps_a_live_grad_scaler(cuda_run):
    last = torch.load(cuda_run / "fold0" / "last.pt", weights_only=True)
    scale = last["scaler"]["scale"]
    assert np.isfinite(float(scale)) and float(scale) > 0  # AMP ran: an enabled scaler has a state
    metrics = pd.read_csv(cuda_run / "fold0" / "metrics.csv")
    assert np.isfinite(metrics[["train_loss", "val_loss", "f1"]].to_numpy()).all()
    assert (metrics["images_per_s"] > 0).all()


def test_channels_last_and_amp_match_the_fp32_forward():
    from maskctl.components.models import build_model
    from maskctl.data.transforms import normalize_on_device
    from maskctl.engine.inference import autocast

    torch.manual_seed(0)
    device = torch.device("cuda")
    model = build_model("resnet18", 18).to(device).eval()
    images = torch.randint(0, 255, (8, 3, 64, 48), dtype=torch.uint8, device=device)
    with torch.no_grad():
        reference = model(normalize_on_device(images, channels_last=False)).float().softmax(1)
        model = model.to(memory_format=torch.channels_last)
        batch = normalize_on_device(images, channels_last=True)
        assert batch.is_contiguous(memory_format=torch.channels_last)
        with autocast(device, True):
            fast = model(batch)
    assert fast.dtype == torch.float16
    assert (fast.float().softmax(1) - reference).abs().max().item() < 2e-2


def test_grad_scaler_skips_a_step_with_inf_gradients():
    """What GradScaler is for: an overflowing fp16 step is skipped and the scale is lowered."""
    model = torch.nn.Linear(4, 2).cuda()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    scaler = torch.amp.GradScaler("cuda", init_scale=2.0**16)
    before = model.weight.detach().clone()
    with torch.autocast("cuda", dtype=torch.float16):
        loss = model(torch.full((2, 4), 6e4, device="cuda")).float().sum() * 1e30
    scaler.scale(loss).backward()
    scaler.step(optimizer)
    scaler.update()
    assert torch.equal(model.weight, before)
    assert scaler.get_scale() < 2.0**16


def test_torchrun_one_process_trains_through_nccl_ddp(synth_data, tmp_path):
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "1", "--master-port", "29533", "-m", "maskctl",
               "train", "--data", str(synth_data / "train"), "--epochs", "1", "--val-ratio", "0.25", *ON_CUDA, "--runs-dir", str(tmp_path), "--name", "ddp"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300, env=os.environ.copy())
    assert result.returncode == 0, result.stderr[-3000:]
    assert "DDP over 1 process(es) (nccl)" in result.stdout
    assert len(pd.read_csv(tmp_path / "ddp" / "fold0" / "metrics.csv")) == 1
    assert (tmp_path / "ddp" / "summary.json").is_file()


def test_predict_on_cuda_agrees_with_the_cpu(cuda_run, synth_data, tmp_path):
    for device in ("cuda", "cpu"):
        result = invoke("predict", cuda_run, "--data", synth_data / "eval", "--device", device, "--out", tmp_path / device, "--batch-size", "16")
        assert result.exit_code == 0, result.output
    gpu = pd.read_csv(tmp_path / "cuda" / "probs.csv")
    cpu = pd.read_csv(tmp_path / "cpu" / "probs.csv")
    columns = [f"p{c}" for c in range(18)]
    assert list(gpu["ImageID"]) == list(cpu["ImageID"])
    # fp16 autocast on the GPU, BatchNorm folded into fp32 convolutions on the CPU.
    assert np.abs(gpu[columns].to_numpy() - cpu[columns].to_numpy()).max() < 2e-2
    agree = (pd.read_csv(tmp_path / "cuda" / "submission.csv")["ans"] == pd.read_csv(tmp_path / "cpu" / "submission.csv")["ans"]).mean()
    assert agree >= 0.95


def test_tta_eval_on_cuda(cuda_run):
    result = invoke("tta-eval", cuda_run, "--device", "cuda")
    assert result.exit_code == 0, result.output
    assert json.loads((cuda_run / "tta.json").read_text())


def test_flat_adamp_on_cuda_takes_timms_steps():
    """The flat, sync-free AdamP path runs on CUDA by default: the same steps as timm's AdamP.
    Both get the same gradients: two backward passes differ in the last bits on a GPU (atomic
    adds), and Adam turns last-bit noise on near-zero gradients into full-size steps."""
    import timm
    from timm.optim import AdamP as TimmAdamP

    from maskctl.components.adamp import AdamP

    torch.manual_seed(0)
    model = timm.create_model("resnet18", num_classes=18).cuda().to(memory_format=torch.channels_last)
    start = [p.detach().clone() for p in model.parameters()]
    images = torch.randn(4, 3, 64, 48, device="cuda").contiguous(memory_format=torch.channels_last)
    model(images).square().mean().backward()
    results = []
    for make in (TimmAdamP, AdamP):
        for p, s in zip(model.parameters(), start):
            p.data.copy_(s)
        optimizer = make(model.parameters(), lr=1e-3, weight_decay=1e-2, nesterov=True)
        for _ in range(3):
            optimizer.step()
        results.append([p.detach().clone() for p in model.parameters()])
    for a, b in zip(*results):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
