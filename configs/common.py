"""The families' config builders, shared by the config files beside this one (big_vision's
``configs/common.py``): an Image Transformer's or a Music Transformer's sections from ``base_config``,
the shared variants (``tiny``, ``steps=N``, ``layers=N``, the Music Transformer's attention variants)
and the paper configs' compute on accelerators.

    from configs.common import COMMON_VARIANTS, apply_common_variants, image_config
"""

from __future__ import annotations

from transformer_lab.config import ConfigDict, ConfigError, base_config


def image_config(dataset: str, image_shape: tuple[int, int, int]) -> ConfigDict:
    """``base_config`` for an Image Transformer on ``dataset``: images as sequences of sub-pixels,
    intensities as tokens, a categorical head, no label smoothing, bits/dim evaluation.

    The data states the image's shape, its length in sub-pixels and the super-resolution factor once;
    the model and the sampler hold references to those fields (ml_collections' ``get_ref``), so that a
    config or an override sets each in one place and the sections cannot disagree."""
    config = base_config()
    height, width, channels = image_shape
    data = config.data
    data.name, data.inputs_feature, data.targets_feature = dataset, '', 'image'
    data.tokenizer, data.image_shape, data.packing = 'pixels', image_shape, False
    data.max_length = height * width * channels   # every sub-pixel of one image
    data.downsample = 1                 # > 1: super-resolution, from the images downsampled by this factor
    model = config.model
    model.name = 'image_transformer'
    model.image_shape, model.downsample = data.get_ref('image_shape'), data.get_ref('downsample')
    model.max_length = config.sample.max_length = data.get_ref('max_length')
    model.num_classes = 0               # > 0: class-conditional (a class embedding at every position)
    model.mixtures = 10                 # model.head='dmol': components (10 in the paper: 100 numbers per RGB pixel)
    config.train.label_smoothing = 0.0
    config.eval.evaluators = ('bits_per_dim',)
    return config


def music_config(dataset: str, *, targets_feature: str, tokenizer: str) -> ConfigDict:
    """``base_config`` for a decoder-only Music Transformer on ``dataset``: pieces as token windows,
    transposition by up to +-3 semitones and time stretches of performances (Huang et al. 2018, Sec.
    5.1-5.2), no label smoothing, NLL per token."""
    config = base_config()
    data = config.data
    data.name, data.inputs_feature, data.targets_feature = dataset, '', targets_feature
    data.tokenizer, data.packing = tokenizer, False
    data.transpose = 3                  # training pieces move by a random -transpose..+transpose semitones
    # Performances: a tempo factor drawn per training piece (Huang et al. 2018, Sec. 5.2); chorales: none.
    data.time_stretches = (0.95, 0.975, 1.0, 1.025, 1.05) if tokenizer == 'performance' else ()
    model = config.model
    model.name, model.norm = 'decoder_only', 'pre'
    config.train.label_smoothing = 0.0
    config.eval.evaluators = ('nll',)
    config.sample.primer_tokens = 0     # > 0: samples continue this many opening tokens of validation pieces
    return config


def cpu_music_config(dataset: str, *, targets_feature: str, tokenizer: str, window: int) -> ConfigDict:
    """``music_config`` at CPU scale: 3 layers of d_model 128, 4 heads, d_ff 512, dropout 0.1, on random
    crops of ``window`` tokens, 16 per batch, 2000 steps (the Bach chorales, music21 performances and
    midi_folder configs)."""
    config = music_config(dataset, targets_feature=targets_feature, tokenizer=tokenizer)
    config.data.max_length, config.data.batch_size = window, 16
    model = config.model
    model.num_decoder_layers, model.d_model, model.num_heads, model.d_ff = 3, 128, 4, 512
    model.max_length, model.dropout_rate = 1024, 0.1
    config.train.num_steps, config.train.warmup_steps = 2000, 200
    config.eval.every_steps, config.eval.batch_size = 500, 32
    config.checkpoint.every_steps = config.sample.every_steps = 500
    config.sample.max_length = window
    return config


MUSIC_VARIANTS = dict(baseline=False, relative=False, local=False, concat=False, voices=False, long=False)
# The `long` variant's length: 4x the crops of 2048 the paper trained on (Huang et al. 2018, Sec. 5.2).
LONG_LENGTH = 8192


def lengthen(config: ConfigDict, length: int) -> None:
    """``long``: crops, positions and samples of ``length`` tokens with as many tokens per batch as
    before (fewer rows, at least one), and blockwise attention, whose memory grows as the length rather
    than its square (attention/blockwise.py)."""
    old = config.data.max_length
    config.data.batch_size = max(1, config.data.batch_size * old // length)
    config.eval.batch_size = max(1, config.eval.batch_size * old // length)
    config.data.max_length = config.model.max_length = config.sample.max_length = length
    config.model.attention_implementation = 'blockwise'


def apply_music_variants(config: ConfigDict, arg: ConfigDict, *, max_relative_position: int,
                         block_length: int) -> ConfigDict:
    """The variants of a music config, last in its ``get_config``: ``tiny`` (``shrink_to_tiny``, relative
    distances and blocks of 16), then the Music Transformer's model variants (Huang et al. 2018, Tables
    1 and 3), combinable except for the attention: ``baseline`` (absolute sinusoids added, full causal
    attention; the default), ``relative`` (relative attention with skewing), ``local`` (relative local
    attention in blocks of ``block_length``), ``concat`` (sinusoids concatenated instead of added, half
    the dimensions), ``voices`` (a voice embedding: the paper's instrument labels) and ``long``
    (``lengthen`` to ``LONG_LENGTH``, relative distances up to half of it); then ``steps`` and ``layers``."""
    if arg.baseline + arg.relative + arg.local > 1:
        raise ConfigError('arg', 'pick one attention variant of baseline, relative and local')
    model = config.model
    if arg.tiny:
        shrink_to_tiny(config, max_examples=4)
        model.attention_dims, max_relative_position, block_length = 0, 16, 16
    if arg.long:
        lengthen(config, LONG_LENGTH)
        max_relative_position = LONG_LENGTH // 2
    if arg.relative:
        model.attention = ConfigDict({'type': 'relative', 'max_relative_position': max_relative_position})
    elif arg.local:
        model.attention = ConfigDict({'type': 'relative_local_1d', 'max_relative_position': max_relative_position,
                                      'block_length': block_length})
    else:
        model.attention = ConfigDict({'type': 'dot_product'})
    if arg.concat:
        model.positional, model.position_features, model.tie_output = 'sinusoidal_concat', model.d_model // 2, False
    if arg.voices:
        model.num_voices = 4
    return apply_common_variants(config, arg)


def shrink_to_tiny(config: ConfigDict, *, num_steps: int = 20, max_examples: int = 16) -> ConfigDict:
    """The shared ``:tiny`` variant: a one-layer, 32-wide model on 8 rows of 32 tokens, evaluated and
    checkpointed every 10 steps, so that any config trains and evaluates in seconds (tests, smoke runs),
    its batches made in the training process (a worker takes seconds to start)."""
    model = config.model
    model.num_encoder_layers = model.num_decoder_layers = 1
    model.d_model, model.num_heads, model.d_ff, model.max_length = 32, 2, 64, 64
    config.data.max_length, config.data.batch_size, config.data.workers = 32, 8, 0
    config.train.num_steps, config.train.warmup_steps, config.train.log_every_steps = num_steps, 5, 5
    config.eval.every_steps, config.eval.batch_size, config.eval.max_examples = 10, 8, max_examples
    config.checkpoint.every_steps = 10
    config.sample.max_length, config.sample.every_steps = 48, 0   # decoding would double a tiny run's time
    return config


def shrink_image_to_tiny(config: ConfigDict, *, max_examples: int, batch_size: int,
                         eval_batch_size: int = 0) -> ConfigDict:
    """``shrink_to_tiny`` for image configs: a tiny model, but the sequence stays the whole image."""
    length = config.data.max_length
    shrink_to_tiny(config, max_examples=max_examples)
    config.data.max_length = length     # the model's and the sampler's too (image_config)
    config.data.batch_size = batch_size
    if eval_batch_size:
        config.eval.batch_size = eval_batch_size
    return config


def apply_common_variants(config: ConfigDict, arg: ConfigDict) -> ConfigDict:
    """The variants every config offers besides its own: ``steps=N`` and ``layers=N`` (encoder and
    decoder alike); 0 keeps the config's value."""
    if arg.steps:
        config.train.num_steps = arg.steps
    if arg.layers:
        config.model.num_encoder_layers = config.model.num_decoder_layers = arg.layers
    return config


def for_accelerators(config: ConfigDict) -> ConfigDict:
    """The paper configs' compute, for a GPU or TPU: bfloat16 (parameters stay float32; softmax and
    losses run in float32), cuDNN's fused attention where it can run (XLA's elsewhere, after a
    one-line notice) and dropout masks from XLA's bit generator (``rbg``: threefry's bits are a visible
    share of a GPU step, docs/benchmarks.md; masks take half as many words,
    ``models/layers.py:dropout_keep_mask``). ``--config.model.dtype=float32``,
    ``--config.model.attention_implementation=xla`` and ``--config.train.dropout_rng=threefry2x32``
    undo it. Batches are made in 4 grain worker processes (``data.workers``)."""
    config.model.dtype, config.model.attention_implementation = 'bfloat16', 'cudnn'
    config.train.dropout_rng = 'rbg'
    # A GPU host feeds several devices from one process: 4 grain workers make its batches (one process
    # already outpaces one H200's step at these shapes; docs/benchmarks.md). --config.data.workers=0 undoes it.
    config.data.workers = 4
    return config


COMMON_VARIANTS = dict(tiny=False, steps=0, layers=0)
