"""transformer_lab: the Transformer, Image Transformer and Music Transformer in JAX/Flax NNX.

    run = transformer_lab.load('workdirs/bible_enes')   # model, params, config, tokenizer
"""


def load(workdir: str, step: int | None = None):
    """A trained run from its workdir (see ``transformer_lab.runs.load``)."""
    from transformer_lab.runs import load as load_run
    return load_run(workdir, step)
