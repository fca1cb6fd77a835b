"""``load(workdir)``: a trained run's model, parameters, config and tokenizer, for notebooks and CLIs."""

from __future__ import annotations

import dataclasses
import json
import os

import jax
import ml_collections
from flax import nnx

from transformer_lab import registry
from transformer_lab.data.tokenizers import FIXED_TOKENIZERS, SentencePieceTokenizer
from transformer_lab.training import checkpoints, parallel
from transformer_lab.training.loop import initial_state


@dataclasses.dataclass
class Run:
    config: ml_collections.ConfigDict
    tokenizer: object
    model: nnx.Module          # holds the restored parameters
    graphdef: nnx.GraphDef
    params: object
    step: int


def load_config(workdir: str) -> ml_collections.ConfigDict:
    path = os.path.join(workdir, 'config.json')
    if not os.path.exists(path):
        raise FileNotFoundError(f'{path} not found: --workdir must be a directory written by scripts/train.py')
    with open(path) as f:
        return ml_collections.ConfigDict(json.load(f))


def load_tokenizer(config, workdir: str):
    if config.data.tokenizer in FIXED_TOKENIZERS:
        return FIXED_TOKENIZERS[config.data.tokenizer]()
    return SentencePieceTokenizer(os.path.join(workdir, 'tokenizer.model'))


def load(workdir: str, step: int | None = None) -> Run:
    """Restores the latest (or the given) checkpoint of ``workdir``; needs no prepared dataset."""
    config = load_config(workdir)
    tokenizer = load_tokenizer(config, workdir)
    model = registry.build_model(config.model, tokenizer.vocab_size, seed=config.seed)
    mesh = parallel.make_mesh()
    graphdef, state, _, _ = initial_state(config, model)
    abstract = checkpoints.abstract_like(state, jax.tree.map(lambda _: parallel.replicated(mesh), state))
    store = checkpoints.Checkpoints(workdir, max_to_keep=config.checkpoint.max_to_keep)
    try:
        if step is not None:
            state, _ = store.restore(abstract, step)
        elif (restored := store.restore_latest(abstract, set_aside_unreadable=False)) is not None:
            state, _ = restored
        else:
            raise FileNotFoundError(f'{store.directory} holds no checkpoint')
    finally:
        store.close()
    return Run(config, tokenizer, nnx.merge(graphdef, state.params), graphdef, state.params, int(state.step))
