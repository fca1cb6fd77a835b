#!/usr/bin/env bash
# What a session lent an accelerator runs, in one go (a few minutes): the device check, then relative
# attention's three implementations timed at L = 2048 and 8192 (one layer, forward + backward, bfloat16,
# d_model 512, 8 heads, batch 2), plain causal attention beside them. Record the output, with the card's
# name, in docs/benchmarks.md. cuDNN rows that the kernel refuses run XLA's attention after a notice.
#
#   bash scripts/device_session.sh 2>&1 | tee device_session.log
set -u
PYTHON=${PYTHON:-python3}
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader || true
timeout 300 "$PYTHON" scripts/check_device.py || echo "check_device.py exited $?"
for length in 2048 8192; do
  relative="type=relative,max_relative_position=$((length / 2))"
  timeout 150 "$PYTHON" scripts/bench_attention.py --length=$length --batch=2 --dtype=bfloat16 --repeats=5 \
      --core=type=dot_product,implementation=cudnn --core=$relative --core=$relative,implementation=cudnn \
      --core=$relative,implementation=blockwise --core=type=dot_product,implementation=blockwise \
      || echo "bench_attention.py at $length exited $?"
done
