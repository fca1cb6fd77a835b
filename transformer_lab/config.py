"""The config's parsing, defaults and error vocabulary, at the bottom of the package.

A config file's ``get_config(arg)`` receives what follows the colon of ``--config=file.py:arg``
(big_vision style): ``tiny``, ``big,tiny`` or ``layers=4,tiny``; ``parse_arg`` turns it into typed
options. ``base_config`` gives every section with its defaults so a config file states only what it
changes (the families' builders live beside the configs, ``configs/common.py``). ``require`` /
``one_of`` are the steps of the checks that each section's owner makes of it
(``training.validation.validate`` asks them all before anything touches the disk); ``UserError`` is
what every module raises for a mistake of the user's.
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
                                        # products (what makes bfloat16 faster on a CPU, backends.py)
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
