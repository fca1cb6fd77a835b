"""The one training loop and what it needs: steps, optimizers, parallelism, checkpoints, logging."""
