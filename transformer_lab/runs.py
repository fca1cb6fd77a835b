"""``load(workdir)``: a trained run's model, parameters, config and tokenizer, for notebooks and CLIs."""

from __future__ import annotations

import dataclasses
import os
import shutil

import jax
import ml_collections
from flax import nnx

from transformer_lab import sampling, tasks
from transformer_lab.config import ConfigError
from transformer_lab.data.tokenizers import SentencePieceTokenizer
from transformer_lab.models.catalog import build_model
from transformer_lab.sampling import Run
from transformer_lab.training import checkpoints, parallel
from transformer_lab.training import workdir as workdir_lib
from transformer_lab.training import state as state_lib


def load_config(workdir: str) -> ml_collections.ConfigDict:
    """The run's resolved config (WORKDIR/config.json); a missing or damaged file is one error naming it."""
    workdir_lib.check_usable(workdir)
    saved = workdir_lib.saved_config(workdir)
    if saved is None:
        raise FileNotFoundError(f'{os.path.join(workdir, workdir_lib.CONFIG_FILE)} not found: --workdir must be a '
                                f'directory written by scripts/train.py')
    return ml_collections.ConfigDict(saved)


def load_tokenizer(config, workdir: str):
    """The run's tokenizer: by name, or its sentencepiece model (WORKDIR/tokenizer.model, one error if
    missing or damaged)."""
    if config.data.tokenizer in tasks.FIXED_TOKENIZERS:
        return tasks.FIXED_TOKENIZERS[config.data.tokenizer]()
    path = os.path.join(workdir, 'tokenizer.model')
    if not os.path.exists(path):
        raise workdir_lib.DamagedRunError(f'{path} is missing: the run\'s sentencepiece model (data.tokenizer='
                              f'{config.data.tokenizer!r}) is needed to read and write its text; restore it from a '
                              f'copy of the run')
    try:
        return SentencePieceTokenizer(path)
    except (OSError, RuntimeError) as error:   # sentencepiece: a file that is not a model
        raise workdir_lib.DamagedRunError(f'{path} is damaged ({str(error).strip()[:120]}): not a sentencepiece model; restore '
                              f'it from a copy of the run') from None


def load(workdir: str, step: int | None = None, *, average_last: int = 0, ema: bool = False) -> Run:
    """Reads the parameters of the latest (or the given) checkpoint of ``workdir``, not its optimizer's
    state; needs no prepared dataset and writes nothing (``workdir`` may be a read-only copy of a run).

    ``average_last=N``: the parameters are the element-wise mean of the last N checkpoints' (up to
    ``step`` if given), the checkpoint averaging of Vaswani et al. (2017, Sec. 6.1: the last 5 for
    base models, 20 for big, written 10 minutes apart); ``step`` is then the newest of them.
    ``ema``: the run's moving average of its parameters instead (``train.ema_decay``).
    """
    config = load_config(workdir)
    if ema and not config.train.ema_decay > 0:
        raise ConfigError('train.ema_decay', f'0 in {workdir}: the run kept no moving average of its parameters; '
                                             f'--ema reads a run trained with train.ema_decay > 0')
    tokenizer = load_tokenizer(config, workdir)
    graphdef, params = nnx.split(build_model(config.model, tokenizer.vocab_size, seed=config.seed))
    replicated = parallel.replicated(parallel.make_mesh())
    abstract = checkpoints.abstract_like(params, jax.tree.map(lambda _: replicated, params))
    store = checkpoints.Checkpoints(workdir, max_to_keep=config.checkpoint.max_to_keep, read_only=True)
    try:
        params, step = state_lib.read_params(store, abstract, 'ema_params' if ema else 'params',
                                             chosen_steps(store, step, average_last))
    finally:
        store.close()
    return Run(config, tokenizer, nnx.merge(graphdef, params), graphdef, params, step)


def chosen_steps(store: checkpoints.Checkpoints, step: int | None, average_last: int) -> list[int] | None:
    """The checkpoints a read-only command reads: the last ``average_last`` up to ``step``, or ``step``
    alone, or None for the newest readable one."""
    if not average_last:
        return None if step is None else [step]
    steps = [s for s in store.all_steps() if step is None or s <= step][-average_last:]
    if len(steps) < average_last:
        raise FileNotFoundError(
            f'--average_last={average_last}, but {store.directory} holds {len(steps)} checkpoints'
            f'{"" if step is None else f" up to step {step}"} ({steps}); train with '
            f'checkpoint.max_to_keep >= {average_last} to keep them')
    return steps


def lengthened(run: Run, length: int) -> Run:
    """``run`` reading windows of ``length`` tokens (data.max_length; model.max_length at least that), its
    parameters unchanged: relative and sinusoidal models evaluated past the length they trained on
    (``sampling.past_trained_length``: a ValueError for learned positions)."""
    sampling.past_trained_length(run.config.model, length, '--length')
    config = run.config.copy_and_resolve_references()
    config.data.max_length, config.model.max_length = length, max(length, config.model.max_length)
    model = build_model(config.model, run.tokenizer.vocab_size, seed=config.seed)
    graphdef, _ = nnx.split(model)
    return dataclasses.replace(run, config=config, model=nnx.merge(graphdef, run.params), graphdef=graphdef)


def save_averaged(workdir: str, output: str, last: int) -> int:
    """Writes ``output``, a workdir like ``workdir`` (its config and tokenizer) whose one checkpoint
    holds the mean parameters (and moving averages) of ``workdir``'s last ``last`` checkpoints, at the
    newest one's step, with that step's optimizer state. Returns that step. Refuses an ``output`` that
    holds anything."""
    if os.path.exists(output) and os.listdir(output):
        raise FileExistsError(f'--output={output} is not empty; name a new directory for the averaged run')
    config = load_config(workdir)
    tokenizer = load_tokenizer(config, workdir)
    model = build_model(config.model, tokenizer.vocab_size, seed=config.seed)
    assembly = state_lib.assemble(config, model, parallel.make_mesh())
    store = checkpoints.Checkpoints(workdir, max_to_keep=config.checkpoint.max_to_keep, read_only=True)
    try:
        steps = chosen_steps(store, None, last)
        abstract = assembly.abstract()
        state = store.restore(abstract, steps[-1])[0]
        averaged = {field: state_lib.read_params(store, getattr(abstract, field), field, steps)[0]
                    for field in ('params', 'ema_params') if getattr(state, field) is not None}
    finally:
        store.close()
    state = state.replace(**averaged)
    os.makedirs(output, exist_ok=True)
    for name in ('config.json', 'tokenizer.model'):
        if os.path.exists(os.path.join(workdir, name)):
            shutil.copy(os.path.join(workdir, name), os.path.join(output, name))
    store = checkpoints.Checkpoints(output, max_to_keep=1)
    try:
        store.save(int(state.step), state)
    finally:
        store.close()
    return int(state.step)
