#!/usr/bin/env bash
# The checks to run when a GPU is lent (device time is short: one prepared run, each step
# under its own time limit, so that one stuck step cannot take the rest). From the
# repository root, with the cuda extra and torch installed:
#     bash benchmarks/gpu_session.sh > gpu_session.log 2>&1
# Under 10 minutes in all at worst. Each step writes to stdout; the JSON lines are what
# benchmarks/README.md takes.
set -u
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv || true
python -c "import numba, numba_cuda, numpy; print('numba', numba.__version__, 'numpy', numpy.__version__)" || true
# 1. The CUDA tests at full size on the GPU (the simulator's tiny tile is not the default there).
NPVAE_TEST_GPU=1 timeout 120 python -m pytest -q -x tests/test_kernels_cuda.py tests/test_device_training.py
# 2. A steady step's launches, new device arrays and synchronisations on the GPU itself.
timeout 60 python benchmarks/step_counts.py
# 3. Launch overheads first (short): numba-cuda's launch, the backend's thin path, the floor.
timeout 60 python benchmarks/gpu.py --repeats 1 --kinds overheads
# 4. npvae against PyTorch CUDA: products, epochs, the conv step, the k = 5000 evaluation.
timeout 300 python benchmarks/gpu.py --repeats 1 --kinds product,mlp_epoch,conv_step,eval
