#!/usr/bin/env bash
# The GPU checks, as one script for a lent GPU machine (every step capped; the last ones get what time is left):
#   1. the Koopman window at scale, 1e7 parameters × 1000 snapshots, GPU against CPU      (bench_scale.py)
#   2. one reused MnistNet cell, GPU against CPU                                          (bench_cell.py)
#   3. recording the Koopman window during 3 dense epochs, GPU and CPU                    (bench_recording.py)
#   4. ResNet-20 on CIFAR-shaped generated data: time per epoch, window recording and fit (a KMP run)
#   5. more seeds of the MNIST timing sweep on the GPU (--only seed=2), results as a tarball
# Usage: bench/gpu_checks.sh OUT_DIR [SECONDS]   MNIST .gz files in $GPU_ASSETS/mnist, wheels in $GPU_ASSETS/whl
set -u
out=${1:?output folder}
budget=${2:-540}
assets=${GPU_ASSETS:-.gpu}
start=$(date +%s)
left() { echo $(( budget - ($(date +%s) - start) )); }
mkdir -p "$out"
export PYTHONUNBUFFERED=1 WANDB_MODE=disabled KOOPSWEEP_ROOT=/tmp/ks PYTHONPATH=$PWD
if [ -d "$assets/whl" ] && ls "$assets"/whl/*.whl >/dev/null 2>&1; then
    python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site "$assets"/whl/*.whl
    export PYTHONPATH=$PWD:/tmp/site
fi
mkdir -p /tmp/data/MNIST/raw
for f in "$assets"/mnist/*.gz; do gunzip -c "$f" > "/tmp/data/MNIST/raw/$(basename "$f" .gz)"; done
{
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
    python3 -c "import torch, hydra, omegaconf; print('torch', torch.__version__, 'hydra', hydra.__version__, 'cuda', torch.cuda.is_available(), torch.cuda.get_device_name(0))"
    nproc; free -g | head -2
} > "$out/env.txt" 2>&1
cat "$out/env.txt"

step() {  # step NAME SECONDS COMMAND...: run with a cap, output to $out/NAME.txt and the console
    local name=$1 cap=$2; shift 2
    local t; t=$(left)
    [ "$t" -lt "$cap" ] && cap=$t
    if [ "$cap" -le 5 ]; then echo "== $name: skipped, no time left" | tee "$out/$name.txt"; return; fi
    echo "== $name (cap ${cap}s)"
    timeout "$cap" "$@" 2>&1 | tee "$out/$name.txt" | grep -v "^\s*$" | tail -25
}

step scale 170 python3 bench/bench_scale.py --numel 10000000 --snapshots 1000 --devices cuda cpu
step cell_gpu 60 python3 bench/bench_cell.py --device cuda --threads 4 --repeats 2 --data-dir /tmp/data
step cell_cpu 80 python3 bench/bench_cell.py --device cpu --threads 16 --repeats 2 --data-dir /tmp/data
step recording_gpu 50 python3 bench/bench_recording.py --device cuda --threads 4 --epochs 3 --repeats 1 --data-dir /tmp/data
step recording_cpu 80 python3 bench/bench_recording.py --device cpu --threads 16 --epochs 3 --repeats 1 --data-dir /tmp/data
step resnet20 70 python3 -m koopsweep model=resnet20 dataset=synthetic dataset.source.like=cifar10 \
    dataset.source.train=50000 dataset.source.test=10000 dataset.augment=true device=cuda schedule.train=2ep \
    schedule.finetune=1ep pruner=kmp pruner.compression=8 logger=none progress=false threads=4 \
    hydra.run.dir=/tmp/ks/resnet20
cp /tmp/ks/resnet20/results.json "$out/resnet20_results.json" 2>/dev/null
t=$(left)
if [ "$t" -gt 30 ]; then
    echo "== timing_kmp seed 2 on the GPU (${t}s left)"
    timeout $(( t - 15 )) python3 -m koopsweep sweep local timing_kmp --only seed=2 --jobs 4 --threads 4 \
        --wandb disabled device=cuda paths.data_dir=/tmp/data hydra.sweep.dir=/tmp/ks/timing_kmp_gpu > "$out/seeds.txt" 2>&1
    tail -3 "$out/seeds.txt"
fi
(cd /tmp/ks && find . -name results.json -path "*timing_kmp_gpu*" | tar czf "$out/seeds.tgz" -T -) 2>/dev/null
echo "results.json files: $(tar tzf "$out/seeds.tgz" 2>/dev/null | wc -l); total $(( $(date +%s) - start ))s"
