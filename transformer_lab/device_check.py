"""Whether this device computes attention, and trains, as XLA's attention does (scripts/check_device.py).

Two kinds of checks, each giving one ``CheckResult`` (PASS, FAIL or SKIP and why):

- ``attention_checks``: every case of ``ATTENTION_CASES`` (each attention core, with the options that take
  other code paths) with every attention implementation this device runs (``model.attention_implementation``)
  in float32 and bfloat16, against XLA's implementation in float32 on the same device: the output on the real
  rows and the gradients of a random weighting of them with respect to q, k, v and the core's parameters
  (relative embeddings). Batch 2, a length that no blockwise block divides, head_dim a multiple of 8 (cuDNN's
  condition).
- ``training_checks``: the first steps of each model family's ``tiny`` config (``FAMILIES``) on each fast path
  (blockwise in float32; on a GPU cuDNN in bfloat16, the only dtype its kernel runs) against XLA in float32:
  the per-step losses. Runs of one config share their batches and initial parameters, so their curves differ
  only by how attention is computed.

Where cuDNN cannot run (no GPU, or shapes its kernel refuses) the library runs XLA's attention instead, so a
'cudnn' check there would compare XLA with itself: it is reported as skipped, with why.

float32 runs use float32 products at full precision: a GPU's default for them is TensorFloat-32 (10 mantissa
bits), a TPU's bfloat16 passes, rounding that would hide an error of the algorithm behind a tolerance as wide
as bfloat16's. bfloat16 runs compute as training does.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import pathlib
from typing import Iterable, Iterator

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from transformer_lab import benchmarking, cli
from transformer_lab.attention import IMPLEMENTATIONS, XLA, Implementation, make_core, padding_mask
from transformer_lab.training.validation import validate

# Errors are max |got - reference| / max(1, max |reference|) (``scaled_error``). float32: rounding (2^-24 per
# operation) of the same sums in another order, measured below 1e-6 on a CPU. bfloat16: 8 mantissa bits, ~2^-8
# relative error per operand, compounded over a few products and the softmax's sums (measured up to 7e-3).
ATTENTION_TOLERANCE = {'float32': 1e-5, 'bfloat16': 5e-2}
# Per-step losses over 20 steps. float32: rounding, amplified by Adam, which normalises each gradient (a rounding
# difference in a gradient near 0 can move its parameter a whole step): up to 2.3e-5 for the tiny Transformer on a
# CPU, while its blockwise attention ignoring the mask moved the losses by 6.8e-3. bfloat16 throughout against
# float32 agreed within 3% over 50 steps of a tiny model (tests/test_configs_train.py, bfloat16 against float32).
TRAINING_TOLERANCE = {'float32': 1e-3, 'bfloat16': 3e-2}

# Which dtypes each implementation is checked in: XLA in float32 is the reference; cuDNN's fused kernel
# runs in bfloat16 (or float16) only, in float32 the library runs XLA's attention instead.
ATTENTION_DTYPES = {'xla': ('bfloat16',), 'cudnn': ('bfloat16',), 'blockwise': ('float32', 'bfloat16')}
TRAINING_DTYPE = {'cudnn': 'bfloat16', 'blockwise': 'float32'}

BATCH, LENGTH, HEADS, HEAD_DIM = 2, 75, 2, 16
# Blocks smaller than the sequences checked (75 positions; the tiny configs' 32 tokens and the image's local
# blocks of 112 queries over 224 keys), so that rows run several blocks, partial last blocks included.
BLOCKWISE = Implementation('blockwise', query_block=8, key_block=16)
CUDNN_CALL = '__cudnn$fmha'   # the custom call of cuDNN's fused attention in a compiled program
FELL_BACK = "cuDNN refused these shapes and XLA's attention ran instead (see the notice on stderr)"


@dataclasses.dataclass(frozen=True)
class AttentionCase:
    """A core to check: its ``model.attention`` options, causal (decoder) or not, and whether the second row
    ends in padding (then a padding mask, and only real rows are compared)."""

    attention: dict
    causal: bool = True
    padded: bool = False


ATTENTION_CASES = {
    'dot_product_causal': AttentionCase({'type': 'dot_product'}),
    'dot_product_padded': AttentionCase({'type': 'dot_product'}, causal=False, padded=True),
    'relative_clip': AttentionCase({'type': 'relative', 'max_relative_position': 20}),
    'relative_zero_shared': AttentionCase({'type': 'relative', 'max_relative_position': 20,
                                           'far_distances': 'zero', 'share_heads': True}),
    'relative_beyond_length': AttentionCase({'type': 'relative', 'max_relative_position': 2 * LENGTH}),
    'local_1d': AttentionCase({'type': 'local_1d', 'block_length': 12}),
    'local_2d': AttentionCase({'type': 'local_2d', 'image_shape': (5, 15), 'query_shape': (2, 4),
                               'memory_flange': (1, 2)}),
    # Its relative logits come materialised per block, which blockwise leaves to XLA's path: errors 0.
    'relative_local_1d': AttentionCase({'type': 'relative_local_1d', 'block_length': 12,
                                        'max_relative_position': 8}),
}

# Each model family's tiny config, on data prepared offline (scripts/prepare_data.py).
CONFIGS = pathlib.Path(__file__).resolve().parents[1] / 'configs'
FAMILIES = {
    'transformer': 'transformer_bible_enes.py:tiny',
    'image_transformer': 'image_transformer_fashion_mnist.py:tiny',
    'music_transformer': 'music_transformer_bach_chorales.py:tiny,relative',
}


@dataclasses.dataclass(frozen=True)
class CheckResult:
    """One check: each compared quantity's ``scaled_error`` against ``tolerance``; or why it was skipped, or
    the error that the implementation raised (a failure of this check, not the end of the others)."""

    kind: str                   # 'attention' or 'training'
    subject: str                # an ATTENTION_CASES or FAMILIES name; '' for all of them
    implementation: str = ''
    dtype: str = ''
    errors: dict[str, float] = dataclasses.field(default_factory=dict)
    tolerance: float = 0.0
    detail: str = ''            # what else the line should say (training: where the loss curves start and end)
    skipped: str = ''           # not run, and why
    raised: str = ''            # the implementation's error

    @property
    def status(self) -> str:
        if self.skipped:
            return 'SKIP'
        passed = not self.raised and all(error <= self.tolerance for error in self.errors.values())  # NaN fails
        return 'PASS' if passed else 'FAIL'

    def line(self) -> str:
        head = ' '.join(filter(None, (self.status, self.kind, self.subject, self.implementation, self.dtype)))
        if self.skipped or self.raised:
            return f'{head}: {self.skipped or self.raised}'
        errors = ', '.join(f'{name} {error:.1e}' for name, error in self.errors.items())
        return f'{head}: {errors}{"; " + self.detail if self.detail else ""} (tolerance {self.tolerance:.1e})'


def summary(results: Iterable[CheckResult]) -> str:
    counts = {status: 0 for status in ('PASS', 'FAIL', 'SKIP')}
    for result in results:
        counts[result.status] += 1
    return f'{counts["PASS"]} passed, {counts["FAIL"]} failed, {counts["SKIP"]} skipped'


def skipped_implementations() -> dict[str, str]:
    """The implementations this device cannot run, with why."""
    backend = jax.default_backend()
    if backend == 'gpu':
        return {}
    return {'cudnn': f"cuDNN's fused attention needs a GPU; this device's backend is {backend}, where "
                     f"model.attention_implementation='cudnn' runs XLA's attention"}


def available_implementations() -> tuple[str, ...]:
    return tuple(name for name in IMPLEMENTATIONS if name not in skipped_implementations())


def scaled_error(got, reference) -> float:
    """max |got - reference| / max(1, max |reference|): relative to the reference's scale where it is large,
    absolute where it is small (a gradient near 0 has no relative error to speak of)."""
    reference = np.asarray(reference, np.float64)
    difference = np.abs(np.asarray(got, np.float64) - reference)
    return float(np.max(difference) / max(1.0, float(np.max(np.abs(reference)))))


def _precision(dtype: str):
    """float32 at full precision (see the module docstring); bfloat16 as training computes it."""
    return jax.default_matmul_precision('highest') if dtype == 'float32' else contextlib.nullcontext()


def _run_candidate(compute, kind: str, subject: str, implementation: str, dtype: str):
    """``compute()``, or the CheckResult that says why there is nothing to compare: the error it raised (e.g.
    a kernel this device's compiler rejects; a failure of this check, not the end of the others) or, where it
    returned None, cuDNN's fallback to XLA's attention (skipped)."""
    try:
        got = compute()
    except Exception as error:
        message = str(error).strip().splitlines()
        raised = f'raised {type(error).__name__}' + (f': {message[0]}' if message else '')
        return CheckResult(kind, subject, implementation, dtype, raised=raised)
    return CheckResult(kind, subject, implementation, dtype, skipped=FELL_BACK) if got is None else got


def _implementation(name: str) -> Implementation:
    return BLOCKWISE if name == 'blockwise' else Implementation(name)


def outputs_and_gradients(case: AttentionCase, implementation: Implementation, dtype: str) -> dict | None:
    """The core's output on random q, k, v [BATCH, LENGTH, HEADS, HEAD_DIM] in ``dtype`` (0 on padding rows)
    and the gradients of a random weighting of its real rows with respect to q, k, v and the core's
    parameters, by name, as float32 arrays; the same inputs and parameters for every call. None where
    cuDNN was asked for and XLA's attention ran instead."""
    rng = np.random.default_rng(0)
    query, key, value = (jnp.asarray(rng.normal(size=(BATCH, LENGTH, HEADS, HEAD_DIM)), dtype) for _ in range(3))
    real = np.ones((BATCH, LENGTH), bool)
    if case.padded:
        real[1, 2 * LENGTH // 3:] = False
    mask = padding_mask(jnp.asarray(real), jnp.asarray(real)) if case.padded else None
    weights = jnp.asarray(rng.normal(size=query.shape) * real[..., None, None], jnp.float32)
    core = make_core(case.attention, num_heads=HEADS, head_dim=HEAD_DIM, causal=case.causal, rngs=nnx.Rngs(0),
                     implementation=implementation)
    graphdef, params = nnx.split(core)

    def weighted_output(params, query, key, value):
        output = nnx.merge(graphdef, params)(query, key, value, mask).astype(jnp.float32)
        return (output * weights).sum(), output

    with _precision(dtype):
        compiled = jax.jit(jax.grad(weighted_output, argnums=(0, 1, 2, 3), has_aux=True)).lower(
            params, query, key, value).compile()
    if implementation.name == 'cudnn' and CUDNN_CALL not in compiled.as_text():
        return None
    (parameter_gradients, *input_gradients), output = compiled(params, query, key, value)
    results = {'output': np.where(real[..., None, None], output, 0.0)}
    results.update(zip(('grad query', 'grad key', 'grad value'), input_gradients))
    results.update({'grad ' + '.'.join(map(str, path)): gradient.value
                    for path, gradient in nnx.to_flat_state(parameter_gradients)})
    return {name: np.asarray(array, np.float32) for name, array in results.items()}


def attention_checks(cases: Iterable[str] | None = None,
                     implementations: Iterable[str] | None = None) -> Iterator[CheckResult]:
    """Every case of ``cases`` (default all of ``ATTENTION_CASES``) by every implementation of
    ``implementations`` (default those this device runs, after a SKIP line for each of the others) in its
    ``ATTENTION_DTYPES``, against XLA's attention in float32."""
    if implementations is None:
        yield from (CheckResult('attention', '', name, skipped=why) for name, why in skipped_implementations().items())
        implementations = available_implementations()
    implementations = tuple(implementations)
    for name in cases or ATTENTION_CASES:
        case = ATTENTION_CASES[name]
        reference = outputs_and_gradients(case, XLA, 'float32')
        for implementation in implementations:
            for dtype in ATTENTION_DTYPES[implementation]:
                got = _run_candidate(functools.partial(outputs_and_gradients, case, _implementation(implementation),
                                                       dtype), 'attention', name, implementation, dtype)
                if isinstance(got, CheckResult):
                    yield got
                    continue
                yield CheckResult('attention', name, implementation, dtype, tolerance=ATTENTION_TOLERANCE[dtype],
                                  errors={quantity: scaled_error(got[quantity], reference[quantity])
                                          for quantity in reference})


def family_config(family: str, implementation: str = 'xla', dtype: str = 'float32', steps: int = 20):
    """``family``'s tiny config (``FAMILIES``) computing attention by ``implementation`` (blockwise in
    ``BLOCKWISE``'s blocks) in ``dtype``, for ``steps`` steps, parsed as scripts/train.py parses its flags."""
    overrides = {'model.attention_implementation': implementation, 'model.dtype': dtype,
                 'model.attention_query_block': BLOCKWISE.query_block,
                 'model.attention_key_block': BLOCKWISE.key_block, 'train.num_steps': steps}
    return cli.config_from_arguments([f'--config={CONFIGS / FAMILIES[family]}',
                                      *(f'--config.{field}={value}' for field, value in overrides.items())])


def training_losses(config) -> np.ndarray | None:
    """The losses of ``config``'s first ``train.num_steps`` steps, its train step compiled as the training
    loop compiles it, from the initial state of ``config.seed`` on the first batches of its data in order
    (``benchmarking.compiled_train_step``: the same for every run of a config and seed). None where cuDNN
    was asked for and XLA's attention ran instead."""
    validate(config)
    with _precision(config.model.dtype):
        compiled, _, state, batches = benchmarking.compiled_train_step(config, batches=config.train.num_steps)
    if config.model.attention_implementation == 'cudnn' and CUDNN_CALL not in compiled.as_text():
        return None
    losses = []
    for batch in batches:
        state, metrics = compiled(state, batch)
        losses.append(metrics['loss'])
    return np.asarray(jax.device_get(losses), np.float64)


def training_checks(families: Iterable[str] | None = None, implementations: Iterable[str] | None = None,
                    steps: int = 20) -> Iterator[CheckResult]:
    """``steps`` training steps of each family of ``families`` (default all of ``FAMILIES``) by each
    implementation of ``implementations`` other than XLA (default those this device runs, after a SKIP
    line for each of the others) in its ``TRAINING_DTYPE``, against XLA in float32: the per-step losses.
    A family whose data is not prepared is skipped, with the command that prepares it."""
    if implementations is None:
        yield from (CheckResult('training', '', name, skipped=why) for name, why in skipped_implementations().items())
        implementations = available_implementations()
    implementations = tuple(name for name in implementations if name != 'xla')
    for family in families or FAMILIES:
        try:
            reference = training_losses(family_config(family, steps=steps))
        except OSError as error:   # DatasetNotPreparedError, whose message names the command that prepares it
            yield CheckResult('training', family, skipped=str(error))
            continue
        for implementation in implementations:
            dtype = TRAINING_DTYPE[implementation]
            config = family_config(family, implementation, dtype, steps)
            losses = _run_candidate(functools.partial(training_losses, config), 'training', family,
                                    implementation, dtype)
            if isinstance(losses, CheckResult):
                yield losses
                continue
            yield CheckResult('training', family, implementation, dtype, tolerance=TRAINING_TOLERANCE[dtype],
                              errors={'loss': scaled_error(losses, reference)},
                              detail=f'{steps} steps, loss {losses[0]:.3f} -> {losses[-1]:.3f} '
                                     f'(XLA float32 {reference[0]:.3f} -> {reference[-1]:.3f})')
