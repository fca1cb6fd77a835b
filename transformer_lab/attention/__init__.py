"""The attention family: one core interface (see ``core``), variants chosen by ``model.attention.type``."""

import inspect

from flax import nnx

from transformer_lab.attention.core import (IMPLEMENTATIONS, XLA, AttentionCore, DotProductCore, Implementation,
                                            MultiHeadAttention, causal_mask, combine_masks, padding_mask,
                                            scaled_dot_product_attention, segment_mask)
from transformer_lab.attention.local import Local1DCore, Local2DCore
from transformer_lab.attention.relative import RelativeCore, RelativeLocal1DCore
from transformer_lab.config import ConfigError, one_of

# Variants join by name: `model.attention.type` picks one, the rest of `model.attention` are its options.
CORES = {
    'dot_product': DotProductCore,
    'local_1d': Local1DCore,
    'local_2d': Local2DCore,
    'relative': RelativeCore,
    'relative_local_1d': RelativeLocal1DCore,
}

# Arguments cores take from the model rather than from `model.attention` (``image_shape``: the position
# grid that image models give the cores that see their sequence as an image).
MODEL_ARGUMENTS = ('num_heads', 'head_dim', 'causal', 'rngs', 'implementation', 'image_shape')


def check_attention(field: str, attention_config) -> None:
    """``model.attention`` (or ``model.encoder_attention``): a known type and only options it takes."""
    one_of(f'{field}.type', attention_config.type, CORES)
    accepted = set(inspect.signature(CORES[attention_config.type].__init__).parameters) - {'self', *MODEL_ARGUMENTS}
    for option in sorted(set(attention_config) - {'type'} - accepted):
        raise ConfigError(f'{field}.{option}', f'not an option of attention type {attention_config.type!r}; '
                                               f'its options: {sorted(accepted)}')


def make_core(attention_config, *, num_heads: int, head_dim: int, causal: bool, rngs: nnx.Rngs,
              implementation: Implementation = XLA) -> AttentionCore:
    """Builds the attention core named by ``attention_config.type`` with the config's options, running
    its attention by ``implementation`` (XLA's, cuDNN's fused kernel on a GPU, or blockwise)."""
    options = {k: v for k, v in attention_config.items() if k != 'type'}
    return CORES[attention_config['type']](num_heads=num_heads, head_dim=head_dim, causal=causal, rngs=rngs,
                                        implementation=implementation, **options)


__all__ = ['CORES', 'IMPLEMENTATIONS', 'Implementation', 'XLA', 'MODEL_ARGUMENTS', 'check_attention', 'make_core',
           'MultiHeadAttention', 'AttentionCore', 'DotProductCore',
           'Local1DCore', 'Local2DCore', 'RelativeCore', 'RelativeLocal1DCore', 'causal_mask',
           'combine_masks', 'padding_mask', 'segment_mask', 'scaled_dot_product_attention']
