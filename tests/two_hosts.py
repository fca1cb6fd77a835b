"""Run by test_parallel_training.

    two_hosts.py host ID PORT WORKDIR MODE [STEPS CHECK_EVERY SIGTERM_AT]
                                        process ID (0 or 1) of a two-process run on 127.0.0.1:PORT,
                                        training the tiny LM 10 (or STEPS) steps through the ordinary
                                        loop in parallel.mode MODE (jit or pmap), the hosts agreeing
                                        on a stop every CHECK_EVERY steps; SIGTERM_AT > 0: this host
                                        sends itself SIGTERM during that step. Exits as
                                        scripts/train.py does: 128 + signal after a stop.
    two_hosts.py reference OUT.npz      one process on 2 devices, the same global batches (host 0's rows
                                        above host 1's, as make_array_from_process_local_data stacks
                                        them): the per-step losses and final parameters
"""

import signal
import sys

import jax
import numpy as np

from helpers import load_config
from transformer_lab.training import evaluators, loop, parallel, preemption
from transformer_lab.training import state as state_lib

NUM_STEPS = 10


def tiny_lm():
    config = load_config('configs/transformer_lm_kjv.py:tiny')
    config.train.num_steps = NUM_STEPS
    config.eval.evaluators = ('nll',)
    return config


def sigterm_during(signal_step: int):
    """This host receives SIGTERM in step ``signal_step``, after dispatching it and before the loop asks
    whether to stop, as from a scheduler (the real signal, through the real handler)."""
    requested = preemption.StopSignals.requested

    def requested_after_a_signal(signals, step):
        if step == signal_step:
            signal.raise_signal(signal.SIGTERM)   # delivered to this thread before it returns
        return requested(signals, step)

    preemption.StopSignals.requested = requested_after_a_signal


def host(process_id: int, port: int, workdir: str, mode: str, num_steps: int = NUM_STEPS, check_every: int = 10,
         sigterm_at: int = 0):
    config = tiny_lm()
    config.train.num_steps = num_steps
    config.parallel.mode = mode
    config.parallel.distributed = True
    config.parallel.coordinator_address = f'127.0.0.1:{port}'
    config.parallel.num_processes, config.parallel.process_id = 2, process_id
    config.parallel.stop_check_every_steps = check_every
    if sigterm_at:
        sigterm_during(sigterm_at)
    try:
        loop.train_and_evaluate(config, workdir)
    except preemption.TrainingInterrupted as interrupted:
        print(f'stopped: {interrupted}', file=sys.stderr)
        jax.distributed.shutdown()
        sys.exit(128 + interrupted.signal_number)
    jax.distributed.shutdown()


def reference(output: str):
    config = tiny_lm()
    pipeline, model = loop.setup(config)
    mesh = parallel.make_mesh()
    assembly = state_lib.assemble(config, model, mesh)
    graphdef, state, strategy = assembly.graphdef, assembly.placed(), assembly.strategy
    train_step = assembly.train_step(config.train)
    streams = [iter(pipeline.train_batches(config.data.batch_size // 2, seed=config.data.shuffle_seed,
                                           shard_index=index, shard_count=2)) for index in range(2)]
    losses = []
    for _ in range(NUM_STEPS):
        host_batches = [next(stream) for stream in streams]
        batch = {name: np.concatenate([b[name] for b in host_batches]) for name in host_batches[0]}
        state, metrics = train_step(state, strategy.put_batch(batch))
        losses.append(float(metrics['loss']))
    context = evaluators.make_context(config, pipeline, graphdef, mesh)
    nll = loop.evaluate(context, state.params, config.data.eval_split)['validation/nll']
    leaves = {f'param_{i}': np.asarray(leaf) for i, leaf in enumerate(jax.tree.leaves(state.params))}
    np.savez(output, losses=np.array(losses), nll=nll, **leaves)


if __name__ == '__main__':
    if sys.argv[1] == 'host':
        host(int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], sys.argv[5], *map(int, sys.argv[6:]))
    else:
        reference(sys.argv[2])
