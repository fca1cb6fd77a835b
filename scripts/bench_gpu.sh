#!/usr/bin/env bash
# The GPU benchmarks of issue 16 in one go (docs/benchmarks.md, "On a GPU"): the base Transformer at
# ~25K tokens per side per step, the Music Transformer at L = 2048 (relative and baseline), the Image
# Transformer with local 1D attention at 32x32x3, training and sampling, XLA's attention against cuDNN's.
# Each process runs its cuDNN variants last, so that a kernel cuDNN refuses loses only those rows.
#
#   bash scripts/bench_gpu.sh results.jsonl [extra bench.py flags, e.g. --steps=1 for a dry run]
set -u
out=${1:?usage: bash scripts/bench_gpu.sh RESULTS.jsonl [bench.py flags]}
shift
bench() { timeout 240 "${PYTHON:-python3}" scripts/bench.py --out="$out" --peak_gflops=0 "$@" || echo "bench.py $* failed: $?"; }

nvidia-smi --query-gpu=name,memory.total,clocks.max.sm --format=csv,noheader || true
bench --model=transformer --size=base --batch=192 --steps=10 --warmup=3 \
    --variant=model.dtype=bfloat16 --variant='' --variant=model.dtype=bfloat16,model.attention_implementation=cudnn "$@"
bench --model=music_transformer --length=2048 --steps=10 --warmup=3 \
    --variant=arg=baseline,model.attention_implementation=xla --variant=model.attention_implementation=xla \
    --variant=arg=baseline --variant='' "$@"
bench --model=image_transformer --steps=10 --warmup=3 --variant=model.attention_implementation=xla --variant='' "$@"
bench --model=music_transformer --length=2048 --mode=decode --steps=2 --warmup=1 --variant='' "$@"
bench --model=image_transformer --mode=decode --steps=2 --warmup=1 --variant='' "$@"
bench --model=transformer --size=base --mode=decode --beam=4 --steps=3 --warmup=1 --variant=model.dtype=bfloat16 "$@"
