"""Config helpers shared by every ``configs/*.py``: variant parsing, the common sections, validation.

A config file's ``get_config(arg)`` receives what follows the colon of ``--config=file.py:arg``
(big_vision style): ``tiny``, ``big,tiny`` or ``layers=4,tiny``; ``parse_arg`` turns it into typed
options. ``base_config`` gives every section with its defaults so a config file states only what it
changes. ``require`` / ``one_of`` are the steps of the checks that each section's owner makes of it
(``training.validation.validate`` asks them all before anything touches the disk).
"""

from __future__ import annotations

import ml_collections

ConfigDict = ml_collections.ConfigDict


class UserError(Exception):
    """A mistake of the user's or a damaged input, said in one line: the commands (cli.run) print its
    message as ``error: ...`` and exit 1, never a traceback. Every module's own kinds derive from it."""


class ConfigError(UserError, ValueError):
    """A config that cannot run; the message names the field and what would be valid."""

    def __init__(self, field: str, message: str):
        super().__init__(f'config.{field}: {message}')
        self.field = field


def parse_arg(arg: str | None, **defaults) -> ConfigDict:
    """Parses ``'big,tiny'`` / ``'layers=4,tiny'`` into a ConfigDict typed by ``defaults``.

    A bare name sets a boolean option to True; ``key=value`` converts value to the default's type.
    Unknown names raise a ConfigError listing the valid ones.
    """
    options = ConfigDict(defaults)
    for item in filter(None, (arg or '').split(',')):
        name, has_value, value = item.partition('=')
        name = name.strip()
        if name not in defaults:
            raise ConfigError(f'arg:{name}', f'unknown config variant {name!r}; valid: {sorted(defaults)}')
        default = defaults[name]
        if not has_value:
            if not isinstance(default, bool):
                raise ConfigError(f'arg:{name}', f'needs a value, e.g. {name}={default}')
            options[name] = True
        elif isinstance(default, bool):
            options[name] = value.lower() in ('1', 'true', 'yes')
        else:
            try:
                options[name] = type(default)(value)
            except ValueError as error:
                raise ConfigError(f'arg:{name}', f'{value!r} is not a {type(default).__name__}') from error
    return options


# model.attention_implementation='blockwise': the fastest blocks of a relative layer at L = 2048 on a CPU
# (docs/benchmarks.md, issue 31); attention.Implementation's defaults, which a test holds equal to these.
BLOCKWISE_BLOCKS = {'attention_query_block': 128, 'attention_key_block': 512}


def base_config() -> ConfigDict:
    """All config sections with their defaults (the paper's Transformer base where one applies)."""
    config = ConfigDict()
    config.seed = 0

    config.model = model = ConfigDict()
    model.name = 'encoder_decoder'
    model.num_encoder_layers = 6
    model.num_decoder_layers = 6
    model.d_model = 512
    model.num_heads = 8
    model.attention_dims = 0            # width of the attention's queries, keys and values; 0 = d_model
    model.d_ff = 2048
    model.dropout_rate = 0.1
    model.positional = 'sinusoidal'     # or 'learned' (Table 3, row E), or 'sinusoidal_concat' (Music Transformer)
    model.position_features = 0         # sinusoidal_concat: sinusoid dims concatenated to d_model minus these
    model.num_voices = 0                # > 0: a learned embedding of each token's voice (chorales: 4, S A T B)
    model.max_length = 256              # longest sequence (learned positions, decoding)
    model.norm = 'post'                 # 'post' = the paper; 'pre' = LayerNorm inside the residual
    model.share_embeddings = True       # source and target share one table (shared vocabulary)
    model.tie_output = True             # output projection = transposed target embedding
    model.head = 'categorical'          # output head by name (models/heads.py); images also 'dmol'
    model.dtype = 'float32'             # compute dtype; parameters are always float32
    model.activation_dtype = ''         # '' = dtype; 'float32' with dtype bfloat16: float32 results of bfloat16
                                        # products (what makes bfloat16 faster on a CPU, models/layers.py)
    model.attention_implementation = 'xla'   # or 'cudnn': the fused kernel on a GPU (bfloat16), else XLA's;
                                        # or 'blockwise': O(length) memory (attention/blockwise.py)
    model.update(BLOCKWISE_BLOCKS)      # blockwise: queries and keys per block
    model.attention = ConfigDict({'type': 'dot_product'})

    config.data = data = ConfigDict()
    data.name = 'bible_translation'
    data.data_dir = ''                  # TFDS data dir; '' = $TFDS_DATA_DIR or ~/tensorflow_datasets
    data.inputs_feature = 'en'          # source text feature; '' for a language model
    data.targets_feature = 'es'
    data.tokenizer = 'sentencepiece'    # or 'bytes'; 'pixels' for images; 'chorale' for chorale grids
    data.vocab_size = 8000              # sentencepiece only; trained on the training split
    data.max_length = 128               # tokens per row (longer examples are dropped, see pipeline)
    data.packing = True                 # pack several examples per row (else pad each to max_length)
    data.batch_size = 64                # global rows per optimizer update, over all devices, hosts, micro-batches
    data.train_split = 'train'
    data.eval_split = 'validation'
    data.shuffle_seed = 0               # grain's global shuffle, a new order every epoch
    data.workers = 0                    # grain worker processes making batches (0: in the training process)

    config.train = train = ConfigDict()
    train.num_steps = 100_000
    train.optimizer = 'adam'            # or 'adamw' (uses weight_decay)
    train.b1 = 0.9
    train.b2 = 0.98
    train.eps = 1e-9
    train.weight_decay = 0.0
    train.schedule = 'rsqrt'            # d_model^-0.5 * min(step^-0.5, step * warmup^-1.5); or 'constant', 'cosine'
    train.learning_rate = 1.0           # multiplies the rsqrt schedule; the peak for the others
    train.warmup_steps = 4000
    train.grad_clip_norm = 0.0          # 0 = no clipping
    train.grad_accum_steps = 1          # micro-batches per update: data.batch_size rows in M slices of batch_size/M
    train.nonfinite = 'stop'            # a non-finite loss or gradient: 'stop' the run, or 'skip' the update
    train.max_consecutive_skips = 10    # 'skip' mode: stop anyway after this many non-finite steps in a row
    train.label_smoothing = 0.1
    train.dropout_rng = 'threefry2x32'  # the dropout masks' bit generator, or 'rbg' (XLA's; faster on a GPU)
    train.log_every_steps = 50
    train.ema_decay = 0.0                # > 0: an exponential moving average of the parameters, evaluated too
    train.profile_steps = ()             # (START, COUNT): a jax.profiler trace of those steps, for TensorBoard

    config.eval = evaluation = ConfigDict()
    evaluation.every_steps = 1000       # cadence of the evaluators; they also run at the end
    evaluation.evaluator_every_steps = ConfigDict()   # {evaluator: steps} for those on a cadence of their own
    evaluation.batch_size = 64
    evaluation.evaluators = ('nll',)
    evaluation.max_examples = -1        # -1 = the whole split (decoding evaluators)
    evaluation.num_show = 3             # decoded examples printed by decoding evaluators
    evaluation.beam_size = 1            # translation: 1 = greedy; the paper: 4
    evaluation.length_penalty = 0.6     # beam search: alpha of ((5 + length) / 6)^alpha (the paper's 0.6)
    evaluation.extra_length = 50        # beam search: at most source length + this many tokens (the paper's 50)

    config.parallel = parallel = ConfigDict()
    parallel.mode = 'jit'               # jit over a NamedSharding mesh; or 'pmap' (explicit psum, replicated)
    parallel.shard_parameters = False   # jit only: FSDP-shard large parameters and optimizer state over devices
    parallel.min_shard_size = 1 << 18   # elements; smaller arrays stay replicated when sharding
    parallel.distributed = False        # multi-host: jax.distributed.initialize (also if $JAX_COORDINATOR_ADDRESS)
    parallel.coordinator_address = ''   # host:port of process 0; '' = detected (SLURM, TPU pod, ...)
    parallel.num_processes = 0          # 0 = detected
    parallel.process_id = 0             # this host's index (used when num_processes is set)
    parallel.stop_check_every_steps = 10  # many hosts: agree on a SIGTERM / SIGINT stop every N steps (a sync)

    config.checkpoint = checkpoint = ConfigDict()
    checkpoint.every_steps = 1000
    checkpoint.max_to_keep = 3          # the latest K; the best (below) is kept besides them
    checkpoint.best_metric = ''         # e.g. 'validation/nll': also keep the best checkpoint by it
    checkpoint.best_mode = 'min'        # 'min' or 'max' (e.g. 'max' for 'validation/bleu')

    config.sample = sample = ConfigDict()
    sample.num_samples = 4
    sample.max_length = 128
    sample.temperature = 1.0            # 0 = greedy
    sample.top_k = 0                    # 0 = the whole vocabulary
    sample.prompt = ''                  # decoder-only models: text to continue
    sample.every_steps = 1000           # the training loop's samples (files + TensorBoard) every N steps; 0 = none
    return config


def image_config(dataset: str, image_shape: tuple[int, int, int]) -> ConfigDict:
    """``base_config`` for an Image Transformer on ``dataset``: images as sequences of sub-pixels,
    intensities as tokens, a categorical head, no label smoothing, bits/dim evaluation."""
    config = base_config()
    height, width, channels = image_shape
    length = height * width * channels
    data = config.data
    data.name, data.inputs_feature, data.targets_feature = dataset, '', 'image'
    data.tokenizer, data.image_shape, data.max_length, data.packing = 'pixels', image_shape, length, False
    model = config.model
    model.name, model.image_shape, model.max_length = 'image_transformer', image_shape, length
    model.num_classes = 0               # > 0: class-conditional (a class embedding at every position)
    model.mixtures = 10                 # model.head='dmol': components (10 in the paper: 100 numbers per RGB pixel)
    config.train.label_smoothing = 0.0
    config.eval.evaluators = ('bits_per_dim',)
    config.sample.max_length = length
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
    length = config.model.max_length
    shrink_to_tiny(config, max_examples=max_examples)
    config.model.max_length = config.data.max_length = config.sample.max_length = length
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


def require(condition: bool, field: str, message: str) -> None:
    """Raises ConfigError(field, message) unless ``condition``: the one step of every config check."""
    if not condition:
        raise ConfigError(field, message)


def one_of(field: str, value, valid) -> None:
    require(value in valid, field, f'{value!r} is not one of {sorted(valid)}')


def positive(section: ConfigDict, prefix: str, *names: str) -> None:
    """Each of ``section``'s fields ``names`` is > 0."""
    for name in names:
        require(section[name] > 0, f'{prefix}.{name}', f'must be positive, got {section[name]}')
