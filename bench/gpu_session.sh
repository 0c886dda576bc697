#!/usr/bin/env bash
# The GPU benchmarks of issues #9 and #11 on a lent GPU machine (one NVIDIA
# H100/H200 with JAX, PyTorch, flax, optax and orbax installed, no network).
# Run from the repository root:
#
#   bash bench/gpu_session.sh                    # every step, in the order below
#   bash bench/gpu_session.sh model1024 jax256   # only the named steps
#
# Logs go under $OUT (or ./gpu_out), one file per step, each line of the
# console stamped with the step's start and end time (compiles included).
#
# What the `input` step needs beside the checkout (both git-ignored, carried
# with the call; the model steps need neither):
#   .whl/        cp312 wheels of the packages the image lacks (grain,
#                array_record, tensorflow-datasets and its pure-Python needs,
#                ml_collections, PyWavelets, dm-tree, portpicker), and
#                .whl/pure/promise (a pure-Python package with no wheel);
#   .benchdata/  the tests' tiny built dataset (python -c "import builtdata;
#                builtdata.build('.benchdata')" with tests/ on the path).
#
# Steps, each under its own time limit so that a slow compile in one cannot
# starve the rest:
#   model3     model speed, 3 leads, batch 256: JAX f32/bf16 vs PyTorch eager/
#              compile/compile+bf16-autocast on CUDA, interleaved (#11);
#   input      grain vs device-resident input, K = 1, 8, 32, batch 32/256 (#9);
#   forms      depthwise shifted-sum vs grouped conv, strided patches vs
#              library conv, 12 leads, batch 256 (#11);
#   model12    as model3, 12 leads;
#   model1024  as model3 at batch 1024, 3 and 12 leads, PyTorch eager/compile;
#   jax256     JAX only, f32/bf16, 3 and 12 leads, batch 256 (the current
#              code against the PyTorch rows of an earlier model3/model12 run).
#   fullscale  the paper's whole table at the databases' real size (#30):
#              bench/full_scale.py --fraction=1 writes and builds the synthetic
#              databases (16 processes), then trains the 7 lead sets x 3 seeds
#              on SPH for 25 epochs as vmapped populations, evaluates all 21
#              members on PTB, PTB-XL and SPH test and writes the table, in
#              bfloat16 and then float32 on the same built data; then
#              populations of 3, 6 and 12 against a solo model on the same
#              batch (member-samples/s, bytes per sample). Needs .whl/ as
#              `input` does. One call:
#
#                bash bench/gpu_session.sh fullscale
set -u
OUT=${OUT:-gpu_out}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 XLA_PYTHON_CLIENT_MEM_FRACTION=0.45
export JAX_COMPILATION_CACHE_DIR=/tmp/jax_cache JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS=0
PY=python3
STEPS=("$@")
[ ${#STEPS[@]} -eq 0 ] && STEPS=(model3 input forms model12)
export PYTHONPATH=$PWD
if [[ " ${STEPS[*]} " == *" input "* || " ${STEPS[*]} " == *" fullscale "* ]]; then
  $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
    || { echo "wheel install failed"; exit 1; }
  export PYTHONPATH=/tmp/site:$PWD/.whl/pure:$PWD
fi

{
  date -u
  nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.sm,clocks.max.sm --format=csv
  nproc
  $PY -c "import jax, flax, optax, orbax.checkpoint as o, torch; \
print('jax', jax.__version__, jax.devices(), 'flax', flax.__version__, 'optax', optax.__version__, \
'orbax', o.__version__, 'torch', torch.__version__)"
} 2>&1 | tee "$OUT/env.txt"

step() {  # step <seconds> <log name> <command...>
  local limit=$1 log=$2
  shift 2
  echo "=== $(date -u +%T) $log (limit ${limit}s): $*"
  timeout "$limit" "$@" 2>&1 | grep -v "^WARNING: All log messages\|^I0000\|^W0000" | tee "$OUT/$log.txt"
  echo "=== $(date -u +%T) $log exit ${PIPESTATUS[0]}"
}

MT="$PY bench/model_throughput.py"
for s in "${STEPS[@]}"; do
  case $s in
    model3) step 200 model3 $MT --leads=3 --batch=256 --dtypes=float32,bfloat16 \
      --torch=eager,compile,compile-bf16 --torch-device=cuda --steps=20 --rounds=3 ;;
    input) step 140 input $PY bench/train_throughput.py --data_dir=.benchdata --batch=32,256 --k=1,8,32 \
      --modes=device,grain --workers=4 --min_steps=64 ;;
    forms) step 90 forms $MT --leads=12 --batch=256 --dtypes=float32 --no-torch \
      --forms=patches,library,grouped --steps=10 --rounds=3 ;;
    model12) step 120 model12 $MT --leads=12 --batch=256 --dtypes=float32,bfloat16 \
      --torch=eager,compile --torch-device=cuda --steps=20 --rounds=3 ;;
    model1024) for leads in 3 12; do
        step 200 "model1024_$leads" $MT --leads=$leads --batch=1024 --dtypes=float32,bfloat16 \
          --torch=eager,compile --torch-device=cuda --steps=10 --rounds=3
      done ;;
    jax256) step 90 jax256 $MT --leads=3,12 --batch=256 --dtypes=float32,bfloat16 --no-torch \
      --steps=20 --rounds=3 ;;
    fullscale)
      FS="$PY bench/full_scale.py --fraction=1 --workers=$(nproc) --workdir=/tmp/full_scale"
      step 420 fullscale_bf16 $FS --dtype=bfloat16 --run=bf16
      step 300 fullscale_f32 $FS --dtype=float32 --run=f32 --stages=train,eval,table
      step 150 populations $PY bench/population_throughput.py --p=1,3,6,12 --batch=32 --k=8 ;;
    *) echo "unknown step $s" ;;
  esac
done
date -u
