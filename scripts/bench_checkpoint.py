"""How long a checkpoint save of a config stays pending: the window in which ``kill -9`` loses it.

    python scripts/bench_checkpoint.py --config=configs/transformer_bible_enes.py [--saves=3] \
        [--record=docs/benchmarks.md]

Saves the config's initial train state (parameters and Adam moments) the way the loop does, and
reports, median over ``--saves``: the time ``save()`` blocks training (it copies the arrays to host
memory), and the time until orbax has committed the checkpoint (the step directory renamed from its
temporary name). A process killed with SIGKILL inside that second window resumes from the previous
checkpoint; SIGTERM and SIGINT wait for the commit (training/preemption.py).
"""

import os
import sys
import tempfile
import time

import jax
import numpy as np
from absl import flags

from transformer_lab import cli, tasks
from transformer_lab.benchmarking import heading, publish
from transformer_lab.models.catalog import build_model
from transformer_lab.training import checkpoints
from transformer_lab.training.state import assemble

FLAGS = flags.FLAGS
cli.define_config_flag()
flags.DEFINE_integer('saves', 3, 'Timed saves.')
flags.DEFINE_string('record', None, 'Append the results table to this markdown file.')
flags.mark_flag_as_required('config')


def config_argument() -> str:
    """``FILE[:variant]`` as given, for the table."""
    return next(arg.split('=', 1)[1] for arg in sys.argv if arg.startswith('--config='))


def main(argv):
    del argv
    config = FLAGS.config
    tokenizer = config.data.tokenizer
    vocab_size = tasks.FIXED_TOKENIZERS[tokenizer]().vocab_size if tokenizer in tasks.FIXED_TOKENIZERS else config.data.vocab_size
    model = build_model(config.model, vocab_size, seed=config.seed)
    state = assemble(config, model).placed()
    megabytes = sum(x.nbytes for x in jax.tree.leaves(state)) / 2**20
    blocking, pending = [], []
    with tempfile.TemporaryDirectory() as workdir:
        store = checkpoints.Checkpoints(workdir, max_to_keep=2)
        for step in range(1, FLAGS.saves + 2):   # the first save is a warm-up
            start = time.perf_counter()
            store.save(step, state)
            returned = time.perf_counter()
            while not os.path.isdir(os.path.join(store.directory, str(step))):
                time.sleep(0.001)
            committed = time.perf_counter()
            store.wait()
            if step > 1:
                blocking.append(returned - start)
                pending.append(committed - returned)
        store.close()
    publish([heading('Checkpoint save window'), '',
             '| config | state (params + Adam) | save() blocks | pending until committed |', '|---|---|---|---|',
             f'| {config_argument()} | {megabytes:.0f} MiB | {np.median(blocking) * 1e3:.0f} ms | '
             f'{np.median(pending) * 1e3:.0f} ms (max {max(pending) * 1e3:.0f}) |'], FLAGS.record)


if __name__ == '__main__':
    cli.run(main)
