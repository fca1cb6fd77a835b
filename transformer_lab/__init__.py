"""transformer_lab: the Transformer, Image Transformer and Music Transformer in JAX/Flax NNX.

    run = transformer_lab.load('workdirs/bible_enes')   # model, params, config, tokenizer
    maps = transformer_lab.attention_weights(run, batch) # per kind: [layers, heads, q_len, k_len]
"""


def load(workdir: str, step: int | None = None, *, average_last: int = 0, ema: bool = False):
    """A trained run from its workdir, optionally its last checkpoints averaged, or its moving average of
    the parameters (see ``transformer_lab.runs.load``)."""
    from transformer_lab.runs import load as load_run
    return load_run(workdir, step, average_last=average_last, ema=ema)


def attention_weights(run_or_model, batch: dict, example: int = 0):
    """The attention probabilities of a run or model on ``batch``, per kind of attention, [layers, heads,
    q_len, k_len] (see ``transformer_lab.attention_maps``)."""
    from transformer_lab.attention_maps import attention_weights as weights_of
    return weights_of(run_or_model, batch, example)
