"""transformer_lab: the Transformer, Image Transformer and Music Transformer in JAX/Flax NNX.

    run = transformer_lab.load('workdirs/bible_enes')   # model, params, config, tokenizer
"""


def load(workdir: str, step: int | None = None, *, average_last: int = 0):
    """A trained run from its workdir, optionally its last checkpoints averaged (see
    ``transformer_lab.runs.load``)."""
    from transformer_lab.runs import load as load_run
    return load_run(workdir, step, average_last=average_last)
