#!/usr/bin/env bash
# The GPU verification in one go, for a lent GPU machine (about 6 minutes on an H200): the
# CUDA-marked tests, then bench/gpu_check.py (loading vs in-memory batches, the GPU recipe gpu-b4 at
# batch 16 and 32, predict as whole processes against the baseline loop). Everything lands in
# $OUT (default ./gpu-out) as text and JSON.
#   bash bench/gpu_verify.sh [gpu_check.py options, e.g. --parts optimizer,recipe,predict]
# Where maskctl's dependencies are missing, install them first (pip install -e .), or put
# wheels in .whl/ and they are installed to /tmp/site.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-gpu-out}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 NO_ALBUMENTATIONS_UPDATE=1
if compgen -G ".whl/*.whl" >/dev/null; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
    export PYTHONPATH=/tmp/site:$PWD${PYTHONPATH:+:$PYTHONPATH}
else
    export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}
fi
{
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
    python3 -c "import torch, timm, sys; print('python', sys.version.split()[0], 'torch', torch.__version__, 'cuda', torch.version.cuda, 'timm', timm.__version__, torch.cuda.get_device_name(0))"
    nproc
} 2>&1 | tee "$OUT/machine.txt"
started=$(date +%s)
timeout 120 python3 -m pytest -q -m cuda tests/e2e/test_cuda.py -p no:cacheprovider 2>&1 | tee "$OUT/cuda_tests.txt"
echo "cuda tests: $(( $(date +%s) - started ))s" | tee -a "$OUT/cuda_tests.txt"
started=$(date +%s)
timeout 300 python3 bench/gpu_check.py --out "$OUT/gpu_check.json" "$@" 2>&1 | tee "$OUT/gpu_check.txt"
echo "gpu_check: $(( $(date +%s) - started ))s" | tee -a "$OUT/gpu_check.txt"
