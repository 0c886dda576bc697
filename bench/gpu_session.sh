#!/usr/bin/env bash
# The GPU benchmarks of issues #9 and #11 in one call on a lent GPU machine
# (one NVIDIA H100/H200 with JAX, PyTorch, flax, optax and orbax installed,
# no network). Run from the repository root:
#
#   bash bench/gpu_session.sh            # writes its logs under $OUT (or ./gpu_out)
#
# What it needs beside the checkout (both git-ignored, carried with the call):
#   .whl/        cp312 wheels of the packages the image lacks (grain,
#                array_record, tensorflow-datasets and its pure-Python needs,
#                ml_collections, PyWavelets, dm-tree, portpicker), and
#                .whl/pure/promise (a pure-Python package with no wheel);
#   .benchdata/  the tests' tiny built dataset (python -c "import builtdata;
#                builtdata.build('.benchdata')" with tests/ on the path).
#
# Steps, most important first, each under its own time limit so that a slow
# compile in one cannot starve the rest:
#   1. model speed, 3 leads (#11): JAX f32/bf16 vs PyTorch eager/compile/
#      compile+bf16-autocast on CUDA, batch 256 and 1024, interleaved;
#   2. input modes (#9): grain vs device-resident, K = 1, 8, 32, batch 32/256;
#   3. formulations (#11): depthwise shifted-sum vs grouped conv, strided
#      patches vs library conv, 12 leads, batch 256;
#   4. model speed, 12 leads, as step 1.
set -u
OUT=${OUT:-gpu_out}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 XLA_PYTHON_CLIENT_MEM_FRACTION=0.45
export JAX_COMPILATION_CACHE_DIR=/tmp/jax_cache JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS=0
PY=python3
$PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
  || { echo "wheel install failed"; exit 1; }
export PYTHONPATH=/tmp/site:$PWD/.whl/pure:$PWD

{
  date -u
  nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.sm,clocks.max.sm --format=csv
  nproc
  $PY -c "import jax, flax, optax, orbax.checkpoint as o, torch, grain; \
print('jax', jax.__version__, jax.devices(), 'flax', flax.__version__, 'optax', optax.__version__, \
'orbax', o.__version__, 'torch', torch.__version__, 'grain ok')"
} 2>&1 | tee "$OUT/env.txt"

step() {  # step <seconds> <log name> <command...>
  local limit=$1 log=$2
  shift 2
  echo "=== $(date -u +%T) $log (limit ${limit}s): $*"
  timeout "$limit" "$@" 2>&1 | grep -v "^WARNING: All log messages\|^I0000\|^W0000" | tee "$OUT/$log.txt"
  echo "=== $(date -u +%T) $log exit ${PIPESTATUS[0]}"
}

step 200 model3 $PY bench/model_throughput.py --leads=3 --batch=256,1024 --dtypes=float32,bfloat16 \
  --torch=eager,compile,compile-bf16 --torch-device=cuda --steps=20 --rounds=3
step 140 input $PY bench/train_throughput.py --data_dir=.benchdata --batch=32,256 --k=1,8,32 \
  --modes=device,grain --workers=4 --min_steps=64
step 90 forms $PY bench/model_throughput.py --leads=12 --batch=256 --dtypes=float32 --no-torch \
  --forms=patches,library,grouped --steps=10 --rounds=3
step 90 model12 $PY bench/model_throughput.py --leads=12 --batch=256,1024 --dtypes=float32,bfloat16 \
  --torch=eager,compile --torch-device=cuda --steps=20 --rounds=3
date -u
