"""transformer_lab: the Transformer, Image Transformer and Music Transformer in JAX/Flax NNX."""
