"""Output heads: the last projection of a model and what its outputs mean as a distribution.

Every head has one face, which the training step, the evaluators and decoding use without knowing
the head (``Head``); ``model.head`` chooses it by name from ``HEADS``, as ``model.attention.type``
chooses an attention core:

``categorical``  a softmax over a vocabulary or the 256 intensities of a sub-pixel, one value per position
                 (``token_losses`` for training and evaluation, ``choose_tokens`` for decoding);
``dmol``         a discretised mixture of logistics over the C channels of a pixel, C values per position.

The discretised mixture of logistics (DMOL) of PixelCNN++ (Salimans et al. 2017, Sec. 2.1-2.2), used by
the Image Transformer's DMOL models (Parmar et al. 2018, Sec. 3.3). Written by hand: no maintained JAX
library provides it.

A pixel with C channels, intensities v in 0..255 rescaled to x = v / 127.5 - 1 in [-1, 1], has

    p(x) = sum_k pi_k prod_c [ sigma((x_c - m_kc + 1/255) / s_kc) - sigma((x_c - m_kc - 1/255) / s_kc) ]

with the CDF taken as 0 below x = -1 and 1 above x = 1 (the edge bins absorb the tails), and channel
dependencies through the means: m_k0 = mu_k0, m_k1 = mu_k1 + a_k x_0, m_k2 = mu_k2 + b_k x_0 + c_k x_1.
Per pixel and mixture component: 1 logit, C means, C log-scales and C (C - 1) / 2 coefficients: 100
numbers for K = 10 components of RGB, 30 for grey.
"""

from __future__ import annotations

from typing import Protocol

import jax
import jax.numpy as jnp
import optax
from flax import nnx

from transformer_lab.backends import first_argmax
from transformer_lab.config import ConfigError

Array = jax.Array
INTENSITIES = 256   # the values of one image channel


def token_losses(logits: jax.Array, targets: jax.Array, label_smoothing: float) -> tuple[jax.Array, jax.Array]:
    """Per-token label-smoothed cross-entropy and plain NLL, float32 [batch, length].

    Label smoothing (Szegedy et al. 2016; Vaswani et al., Sec. 5.4) trains against
    q = (1 - eps) * onehot(y) + eps / K over the K classes (eps spread over all K, the true class
    included, as optax.smooth_labels does). With log p_k = z_k - logsumexp(z):

        NLL = logsumexp(z) - z_y,    CE_q = (1 - eps) NLL + eps (logsumexp(z) - mean_k z_k).

    The smoothed form is written out rather than taken from optax.softmax_cross_entropy of smoothed
    one-hot targets (optax has no integer-label form with smoothing): neither the one-hot
    [batch, length, K] nor the log-probabilities are materialised (faster and smaller temporaries than
    the one-hot form, and than picking z_y by a comparison with the class index: docs/benchmarks.md).
    The NLL is what gets
    reported: the paper's perplexities and every likelihood number of this project are unsmoothed.
    """
    logits = logits.astype(jnp.float32)
    nll = optax.softmax_cross_entropy_with_integer_labels(logits, targets)
    if label_smoothing == 0:
        return nll, nll
    uniform_cross_entropy = jax.nn.logsumexp(logits, axis=-1) - logits.mean(axis=-1)
    return (1 - label_smoothing) * nll + label_smoothing * uniform_cross_entropy, nll


def choose_tokens(logits: jax.Array, key: jax.Array, temperature: float, top_k: int) -> jax.Array:
    """logits [batch, vocab] -> tokens [batch]: argmax when temperature == 0, else a sample from
    softmax(logits / temperature) restricted to the ``top_k`` most likely tokens (0 = all)."""
    if temperature == 0:
        return first_argmax(logits)
    logits = logits.astype(jnp.float32) / temperature
    if top_k > 0:
        kth_largest = jax.lax.top_k(logits, top_k)[0][:, -1:]
        logits = jnp.where(logits < kth_largest, -jnp.inf, logits)
    return jax.random.categorical(key, logits).astype(jnp.int32)


MIN_LOG_SCALE = -7.0             # PixelCNN++'s floor on log s


def dmol_parameter_count(channels: int, mixtures: int) -> int:
    return mixtures * (1 + 2 * channels + channels * (channels - 1) // 2)


def split_dmol_parameters(params: Array, channels: int, mixtures: int):
    """params [..., dmol_parameter_count] -> (logits [..., K], means, log_scales [..., K, C], coefficients
    [..., K, C (C - 1) / 2] in (-1, 1))."""
    logits = params[..., :mixtures]
    rest = params[..., mixtures:].reshape(*params.shape[:-1], mixtures, -1)
    means, log_scales = rest[..., :channels], rest[..., channels:2 * channels]
    coefficients = jnp.tanh(rest[..., 2 * channels:])
    return logits, means, jnp.maximum(log_scales, MIN_LOG_SCALE), coefficients


def conditional_means(means: Array, coefficients: Array, x: Array) -> Array:
    """Means of each channel given the previous channels' values x [..., C] (PixelCNN++'s linear
    dependencies): m_c = mu_c + sum_{j < c} coefficient_cj x_j. means [..., K, C] -> [..., K, C]."""
    channels = means.shape[-1]
    batch_shape = jnp.broadcast_shapes(means.shape[:-2], x.shape[:-1])
    means = jnp.broadcast_to(means, batch_shape + means.shape[-2:])
    adjusted, index = [means[..., 0]], 0
    for channel in range(1, channels):
        shift = sum(coefficients[..., index + j] * x[..., None, j] for j in range(channel))
        adjusted.append(means[..., channel] + shift)
        index += channel
    return jnp.stack(adjusted, axis=-1)


def log_bin_probability(upper: Array, lower: Array) -> Array:
    """log [sigma(upper) - sigma(lower)] for upper > lower, exact in float32 wherever the bin lies.

    Subtracting the two sigmoids loses every digit when both are near 1 or near 0 (an unlikely
    intensity under a narrow component: the log-probability was off by 5e-3 to 2e-2 nats). Instead
    the difference is factored (PixelCNN++'s log-space evaluation, made exact):

        sigma(u) - sigma(l) = sigma(u) sigma(-l) (1 - e^-(u - l)),

    whose three logarithms, log sigma(u), log sigma(-l) and log(-expm1(-(u - l))), are each accurate,
    so no density fallback is needed. upper, lower [...] -> [...].
    """
    return jax.nn.log_sigmoid(upper) + jax.nn.log_sigmoid(-lower) + jnp.log(-jnp.expm1(lower - upper))


def dmol_log_likelihood(params: Array, values: Array, mixtures: int) -> Array:
    """log p(pixel) in nats, float32 [...], of integer pixels ``values`` [..., C] under ``params``.

    Bins of width 2/255 around x; the first bin extends to -inf and the last to +inf, so the 256
    probabilities of each channel sum to 1. Every bin's log-probability is evaluated in log space
    (``log_bin_probability``), so unlikely intensities keep their precision.
    """
    params = params.astype(jnp.float32)
    channels = values.shape[-1]
    logits, means, log_scales, coefficients = split_dmol_parameters(params, channels, mixtures)
    x = values.astype(jnp.float32) / 127.5 - 1.0
    m = conditional_means(means, coefficients, x)                                 # [..., K, C]
    inverse_scale = jnp.exp(-log_scales)
    # The bin's edges (2 v - 255 +- 1) / 255 - m: one rounding each from exact integers, so a narrow
    # component (1 / s up to e^7) does not magnify the rounding of x = v / 127.5 - 1 as well.
    doubled = 2.0 * values.astype(jnp.float32)[..., None, :] - 255.0
    upper, lower = inverse_scale * ((doubled + 1.0) / 255.0 - m), inverse_scale * ((doubled - 1.0) / 255.0 - m)
    values = values[..., None, :]
    log_channel = jnp.where(values == 0, jax.nn.log_sigmoid(upper),              # the first bin: sigma(upper)
                            jnp.where(values == 255, jax.nn.log_sigmoid(-lower),  # the last: 1 - sigma(lower)
                                      log_bin_probability(upper, lower)))
    return jax.nn.logsumexp(log_channel.sum(-1) + jax.nn.log_softmax(logits, axis=-1), axis=-1)


def dmol_sample(params: Array, key: Array, channels: int, mixtures: int, temperature: float = 1.0) -> Array:
    """Integer pixels [..., C] drawn from the mixture: a component from softmax(logits / T), then each
    channel from its logistic (scale s T) given the channels drawn before it. T = 0: the most likely
    component's means."""
    logits, means, log_scales, coefficients = split_dmol_parameters(params.astype(jnp.float32), channels, mixtures)
    component_key, noise_key = jax.random.split(key)
    if temperature == 0:
        component = jnp.argmax(logits, axis=-1)
    else:
        component = jax.random.categorical(component_key, logits / temperature, axis=-1)

    def pick(x):  # [..., K, n] -> [..., n]
        return jnp.take_along_axis(x, component[..., None, None], axis=-2)[..., 0, :]

    means, scales, coefficients = pick(means), jnp.exp(pick(log_scales)) * temperature, pick(coefficients)
    uniform = jax.random.uniform(noise_key, means.shape, minval=1e-5, maxval=1.0 - 1e-5)
    noise = scales * (jnp.log(uniform) - jnp.log1p(-uniform))
    x, index = [], 0
    for channel in range(channels):
        shift = sum(coefficients[..., index + j] * x[j] for j in range(channel))
        index += channel
        x.append(jnp.clip(means[..., channel] + shift + noise[..., channel], -1.0, 1.0))
    return jnp.round((jnp.stack(x, axis=-1) + 1.0) * 127.5).astype(jnp.int32)


class Head(Protocol):
    """What a model's outputs mean. ``outputs`` are the head's own projection of the final hidden states,
    one vector per position; ``targets`` hold ``values_per_position`` values per position, flattened
    [batch, positions x values_per_position] (text: tokens; images: sub-pixels in raster order)."""

    values_per_position: int
    smooths_labels: bool      # whether train.label_smoothing means anything for it

    def __call__(self, hidden: Array) -> Array:
        """hidden [batch, positions, d_model] -> outputs float32 [batch, positions, outputs per position]."""

    def losses(self, outputs: Array, targets: Array, label_smoothing: float) -> tuple[Array, Array]:
        """(training loss, NLL in nats) per target value, float32, shaped like ``targets``."""

    def predict(self, outputs: Array) -> Array:
        """The most likely target values, shaped like ``targets``."""

    def sample(self, outputs: Array, key: Array, temperature: float, top_k: int) -> Array:
        """outputs [batch, outputs per position] of one decoding step -> one token per row [batch]: the
        position's values packed into one integer (``unpack`` inverts it)."""

    def unpack(self, tokens: Array) -> Array:
        """Decoding tokens [...] -> the values of their positions [..., values_per_position]."""

    def pack(self, values: Array) -> Array:
        """The inverse of ``unpack``: values [..., values_per_position] -> decoding tokens [...]."""


class CategoricalHead(nnx.Module):
    """A softmax over ``classes`` values, one value per position: logits = hidden W + b, or, tied
    (Vaswani et al., Sec. 3.4), hidden times the transposed token embedding (``tied_embedding.logits``)."""

    values_per_position = 1
    smooths_labels = True

    def __init__(self, d_model: int, classes: int, *, tied_embedding=None, dtype, param_dtype, rngs: nnx.Rngs,
                 dot_general=jax.lax.dot_general):
        self.tied_embedding = tied_embedding
        self.projection = (None if tied_embedding is not None else
                           nnx.Linear(d_model, classes, dtype=dtype, param_dtype=param_dtype, dot_general=dot_general,
                                      rngs=rngs))

    @classmethod
    def from_config(cls, model_config, classes: int, *, tied_embedding=None, **dtypes) -> CategoricalHead:
        return cls(model_config.d_model, classes, tied_embedding=tied_embedding, **dtypes)

    @classmethod
    def position_values(cls, model_config) -> int:
        return cls.values_per_position

    def __call__(self, hidden: Array) -> Array:
        project = self.projection if self.tied_embedding is None else self.tied_embedding.logits
        return project(hidden).astype(jnp.float32)

    def losses(self, outputs: Array, targets: Array, label_smoothing: float) -> tuple[Array, Array]:
        return token_losses(outputs, targets, label_smoothing)

    def predict(self, outputs: Array) -> Array:
        return jnp.argmax(outputs, axis=-1)

    def sample(self, outputs: Array, key: Array, temperature: float, top_k: int) -> Array:
        return choose_tokens(outputs, key, temperature, top_k)

    def unpack(self, tokens: Array) -> Array:
        return tokens[..., None]

    def pack(self, values: Array) -> Array:
        return values[..., 0]


class DMOLHead(nnx.Module):
    """A discretised mixture of ``mixtures`` logistics over the ``channels`` values of a pixel (one pixel
    per position; Parmar et al., Sec. 3.3). The NLL of a pixel is spread evenly over its C sub-pixels,
    so sums and bits/dim are exact; it has no classes to smooth labels over. Decoding packs a pixel's
    values into one token v_0 + 256 v_1 + 256^2 v_2; ``top_k`` has no meaning for it and is ignored."""

    smooths_labels = False

    def __init__(self, d_model: int, channels: int, mixtures: int, *, dtype, param_dtype, rngs: nnx.Rngs,
                 dot_general=jax.lax.dot_general):
        self.values_per_position, self.mixtures = channels, mixtures
        self.projection = nnx.Linear(d_model, dmol_parameter_count(channels, mixtures), dtype=dtype,
                                     param_dtype=param_dtype, dot_general=dot_general, rngs=rngs)

    @classmethod
    def from_config(cls, model_config, classes: int, *, tied_embedding=None, **dtypes) -> DMOLHead:
        if classes != INTENSITIES or 'image_shape' not in model_config or tied_embedding is not None:
            raise ConfigError('model.head', "'dmol' predicts the pixels of an image model; use 'categorical'")
        return cls(model_config.d_model, cls.position_values(model_config), model_config.mixtures, **dtypes)

    @staticmethod
    def position_values(model_config) -> int:
        return model_config.image_shape[2]

    def __call__(self, hidden: Array) -> Array:
        return self.projection(hidden).astype(jnp.float32)

    def _pixels(self, values: Array) -> Array:
        """[batch, positions x C] -> [batch, positions, C]."""
        return values.reshape(values.shape[0], -1, self.values_per_position)

    def losses(self, outputs: Array, targets: Array, label_smoothing: float) -> tuple[Array, Array]:
        del label_smoothing   # refused with this head (smooths_labels) by the config's validation
        pixels = self._pixels(targets)
        nll = -dmol_log_likelihood(outputs, pixels, self.mixtures) / self.values_per_position
        nll = jnp.broadcast_to(nll[..., None], pixels.shape).reshape(targets.shape)
        return nll, nll

    def predict(self, outputs: Array) -> Array:
        """The most likely component's means."""
        pixels = dmol_sample(outputs, jax.random.key(0), self.values_per_position, self.mixtures, temperature=0.0)
        return pixels.reshape(outputs.shape[0], -1)

    def sample(self, outputs: Array, key: Array, temperature: float, top_k: int) -> Array:
        del top_k
        return self.pack(dmol_sample(outputs, key, self.values_per_position, self.mixtures, temperature))

    def unpack(self, tokens: Array) -> Array:
        return tokens[..., None] // INTENSITIES ** jnp.arange(self.values_per_position) % INTENSITIES

    def pack(self, values: Array) -> Array:
        return (values * INTENSITIES ** jnp.arange(self.values_per_position)).sum(-1)


HEADS = {'categorical': CategoricalHead, 'dmol': DMOLHead}


def head_class(model_config) -> type:
    """The class of the head ``model_config.head`` names."""
    if model_config.head not in HEADS:
        raise ConfigError('model.head', f'{model_config.head!r} is not one of {list(HEADS)}')
    return HEADS[model_config.head]


def make_head(model_config, classes: int, *, tied_embedding=None, dtype, param_dtype, rngs: nnx.Rngs,
              dot_general=jax.lax.dot_general) -> Head:
    """The head ``model_config.head`` names, over ``classes`` values per position (categorical; its
    logits from ``tied_embedding`` when given) or over the pixels of ``model_config.image_shape`` (DMOL)."""
    return head_class(model_config).from_config(model_config, classes, tied_embedding=tied_embedding, dtype=dtype,
                                                param_dtype=param_dtype, dot_general=dot_general, rngs=rngs)
