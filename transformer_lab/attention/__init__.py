"""The attention family: one core interface (see ``core``), variants chosen by ``model.attention.type``."""

from flax import nnx

from transformer_lab.attention.core import (DotProductCore, MultiHeadAttention, causal_mask,
                                            combine_masks, padding_mask, scaled_dot_product_attention,
                                            segment_mask)

# Variants join by name: `model.attention.type` picks one, the rest of `model.attention` are its options.
CORES = {
    'dot_product': DotProductCore,
}


def make_core(attention_config, *, num_heads: int, head_dim: int, rngs: nnx.Rngs) -> nnx.Module:
    """Builds the attention core named by ``attention_config.type`` with the config's options."""
    options = {k: v for k, v in attention_config.items() if k != 'type'}
    return CORES[attention_config.type](num_heads=num_heads, head_dim=head_dim, rngs=rngs, **options)


__all__ = ['CORES', 'make_core', 'MultiHeadAttention', 'DotProductCore', 'causal_mask',
           'combine_masks', 'padding_mask', 'segment_mask', 'scaled_dot_product_attention']
