"""Test helpers: the naive attention reference, configs by path, running the CLIs in a subprocess,
and small files in the layouts of the real datasets. (Fixtures live in conftest.py.)"""

import contextlib
import logging
import os
import subprocess
import sys

import numpy as np

def naive_attention(query, key, value, mask=None):
    """Obviously-correct numpy attention: loops over batch and head; mask True = may attend.

    query [B, Q, H, D], key/value [B, K, H, D], mask broadcastable to [B, H, Q, K].
    """
    batch, q_len, heads, dim = query.shape
    k_len = key.shape[1]
    mask = np.ones((batch, heads, q_len, k_len), bool) if mask is None else np.broadcast_to(
        mask, (batch, heads, q_len, k_len))
    out = np.zeros((batch, q_len, heads, value.shape[-1]))
    for b in range(batch):
        for h in range(heads):
            logits = query[b, :, h] @ key[b, :, h].T / np.sqrt(dim)
            logits = np.where(mask[b, h], logits, -np.inf)
            with np.errstate(invalid='ignore'):  # fully masked rows are NaN here; callers skip them
                weights = np.exp(logits - logits.max(-1, keepdims=True))
                weights /= weights.sum(-1, keepdims=True)
            out[b, :, h] = weights @ value[b, :, h]
    return out


def load_config(path_and_arg: str):
    """``'configs/x.py:tiny'`` -> the ConfigDict, as ``--config`` would load it."""
    import importlib.util
    import pathlib
    path, _, arg = path_and_arg.partition(':')
    spec = importlib.util.spec_from_file_location('config_module', pathlib.Path(__file__).parents[1] / path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.get_config(arg or None)


ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def truncate_array_files(step_directory):
    """Corrupts a checkpoint: every array file of its state cut to 8 bytes (a save cut off by a crash)."""
    for root, _, files in os.walk(step_directory / 'state'):
        for name in files:
            if 'ocdbt.process' in root:
                with open(os.path.join(root, name), 'r+b') as f:
                    f.truncate(8)


def train_losses(workdir):
    from transformer_lab.training.logging import read_metrics
    return [r['train/loss'] for r in read_metrics(workdir) if 'train/loss' in r]


def tensorboard_events(workdir):
    """The run's TensorBoard folder read back as TensorBoard itself reads it (every event kept)."""
    from tensorboard.backend.event_processing import event_accumulator
    events = event_accumulator.EventAccumulator(os.path.join(workdir, 'tensorboard'), size_guidance=dict.fromkeys(
        ('scalars', 'images', 'audio', 'tensors'), 0))
    events.Reload()
    return events


def device_env(devices: int = 1) -> dict:
    """The environment of a subprocess on ``devices`` fake CPU devices, with unbuffered output."""
    return {**os.environ, 'XLA_FLAGS': f'--xla_force_host_platform_device_count={devices}',
            'JAX_PLATFORMS': 'cpu', 'PYTHONUNBUFFERED': '1', 'PYTHONPATH': os.path.join(ROOT, 'tests')}


def run_script(script, *args, devices: int = 1, stdin: str | None = None):
    return subprocess.run([sys.executable, f'scripts/{script}', *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=300, env=device_env(devices), input=stdin)




@contextlib.contextmanager
def compilations_of(function_name: str):
    """Yields a list that collects one entry per XLA compilation of the jitted ``function_name``
    while the block runs (JAX's compile log, switched on for the block)."""
    import jax
    compiled = []

    class Collect(logging.Handler):
        def emit(self, record):
            if f'Finished XLA compilation of jit({function_name})' in record.getMessage():
                compiled.append(record.getMessage())
    handler, logger = Collect(), logging.getLogger('jax')
    logger.addHandler(handler)
    try:
        with jax.log_compiles(True):
            yield compiled
    finally:
        logger.removeHandler(handler)
