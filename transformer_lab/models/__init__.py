"""Models: the Transformer family built from the shared attention and layers."""
