"""Checks that this device computes attention, and trains, as XLA's attention does.

    python scripts/check_device.py [--notraining] [--steps=20] [--case=relative_clip ...] [--family=transformer ...]

On whatever device JAX has (GPU, TPU or CPU): every attention core with every attention implementation
available there (``model.attention_implementation``), in float32 and bfloat16, output and gradients against
XLA's implementation in float32; then ``--steps`` training steps of each model family's tiny config on each
fast path against XLA, per-step losses (transformer_lab/device_check.py says which cases, dtypes and
tolerances). One line per check, PASS, FAIL or SKIP (with why: cuDNN needs a GPU, a dataset not prepared),
then a summary. Exit status 1 on any FAIL, else 0.
"""

import itertools
import sys

import jax
from absl import flags

from transformer_lab import cli, device_check

FLAGS = flags.FLAGS
flags.DEFINE_bool('training', True, 'Also compare training steps of each model family (--notraining: attention only).')
flags.DEFINE_integer('steps', 20, 'Training steps per run.', lower_bound=1)
flags.DEFINE_multi_enum('case', None, list(device_check.ATTENTION_CASES), 'Only these attention cases (default all).')
flags.DEFINE_multi_enum('family', None, list(device_check.FAMILIES), 'Only these model families (default all).')


def main(argv):
    del argv
    device = jax.devices()[0]
    print(f'device: {device.device_kind} (JAX backend {jax.default_backend()}, {jax.device_count()} devices)')
    checks = [device_check.attention_checks(FLAGS.case)]
    if FLAGS.training:
        checks.append(device_check.training_checks(FLAGS.family, steps=FLAGS.steps))
    results = []
    for result in itertools.chain(*checks):
        results.append(result)
        print(result.line(), flush=True)
    print(device_check.summary(results))
    sys.exit(1 if any(result.status == 'FAIL' for result in results) else 0)


if __name__ == '__main__':
    cli.run(main)
