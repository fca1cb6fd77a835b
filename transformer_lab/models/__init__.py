"""Models: the Transformer family, each an embedder, the shared stacks (stacks.py) and a head (heads.py).

``Model`` is the one face the training loop, the evaluators and decoding use; models/catalog.py builds a
model by name from the ``model`` section of a config and a vocabulary size.
"""

from __future__ import annotations

from typing import Protocol

import jax

from transformer_lab.models.heads import Head


class Model(Protocol):
    """What every model offers (``EncoderDecoder``, ``DecoderOnly``, ``ImageTransformer``)."""

    head: Head                # what the outputs mean: losses, predictions, sampling (heads.py)
    stops_at_eos: bool        # whether a generated sequence ends at EOS (text, music) or has a fixed length

    @staticmethod
    def check_config(model_config) -> None:
        """Raises ConfigError for ``model`` fields this model cannot take (beyond the stacks' checks)."""

    def __call__(self, batch: dict, rngs=None) -> jax.Array:
        """Teacher forcing over ``batch['targets']`` (and ``batch['inputs']``, ``batch['label']`` where the
        model is conditioned) -> outputs float32 [batch, positions, outputs per position] for ``head``;
        ``rngs`` None means no dropout."""

    def init_decode_state(self, batch_size: int, max_length: int, inputs: jax.Array | None = None) -> dict:
        """The caches of cached decoding for ``batch_size`` rows, conditioned on ``inputs`` where the
        model needs them. ``inputs`` may have fewer rows, a divisor of batch_size: each then conditions
        that many consecutive decoding rows (the beams of a source), which share what is computed
        from it (the encoder runs once per source)."""

    def decode_step(self, tokens: jax.Array, position: jax.Array, state: dict) -> tuple[jax.Array, dict]:
        """tokens [batch]: those chosen at step position - 1 -> (outputs [batch, ...] of step ``position``,
        the updated state). Equal to the full pass's outputs at that position."""
