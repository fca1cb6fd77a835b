"""The discretised mixture of logistics against a direct float64 evaluation of logistic CDF
differences; normalisation over all intensities; sampling frequencies."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from transformer_lab.models.heads import dmol_log_likelihood, dmol_parameter_count, dmol_sample

RNG = np.random.default_rng(0)


def random_params(count, channels, mixtures, scale=0.5):
    return jnp.asarray(RNG.normal(size=(count, dmol_parameter_count(channels, mixtures))) * scale, jnp.float32)


def reference_log_likelihood(params, pixel, channels, mixtures):
    """float64, one pixel, straight from the definition: sum_k pi_k prod_c [CDF(upper) - CDF(lower)]."""
    params = np.asarray(params, np.float64)
    logits = params[:mixtures]
    rest = params[mixtures:].reshape(mixtures, -1)
    means, log_scales = rest[:, :channels], np.maximum(rest[:, channels:2 * channels], -7.0)
    coefficients = np.tanh(rest[:, 2 * channels:])
    x = np.asarray(pixel, np.float64) / 127.5 - 1.0
    weights = np.exp(logits - logits.max())
    weights /= weights.sum()
    sigmoid = lambda z: 1.0 / (1.0 + np.exp(-z))  # noqa: E731
    total = 0.0
    for k in range(mixtures):
        probability, index = weights[k], 0
        for c in range(channels):
            mean = means[k, c] + sum(coefficients[k, index + j] * x[j] for j in range(c))
            index += c
            scale = np.exp(log_scales[k, c])
            upper = 1.0 if pixel[c] == 255 else sigmoid((x[c] - mean + 1 / 255) / scale)
            lower = 0.0 if pixel[c] == 0 else sigmoid((x[c] - mean - 1 / 255) / scale)
            probability *= upper - lower
        total += probability
    return math.log(total)


@pytest.mark.parametrize('channels,mixtures', [(1, 3), (3, 10)])
def test_log_likelihood_matches_the_logistic_cdf_differences(channels, mixtures):
    assert dmol_parameter_count(3, 10) == 100   # the paper's 100 numbers per RGB pixel
    params = random_params(20, channels, mixtures)
    pixels = RNG.integers(0, 256, (20, channels))
    pixels[:3] = [0] * channels, [255] * channels, [0, 255, 128][:channels]   # the edge bins
    ours = np.asarray(dmol_log_likelihood(params, jnp.asarray(pixels), mixtures))
    expected = [reference_log_likelihood(p, pixel, channels, mixtures) for p, pixel in zip(params, pixels)]
    np.testing.assert_allclose(ours, expected, rtol=1e-4, atol=1e-4)


def reference_grey_log_probabilities(means, log_scales, logits):
    """float64 log p(v) for v = 0..255 of a grey mixture, from differences of log CDFs (of log survival
    functions above the mean, where both CDFs round to 1): an evaluation independent of the model's."""
    x = np.arange(256, dtype=np.float64)[:, None] / 127.5 - 1.0                       # [256, 1]
    inverse_scale = np.exp(-np.maximum(np.asarray(log_scales, np.float64), -7.0))
    upper = np.where(x == 1.0, np.inf, (x - means + 1 / 255) * inverse_scale)          # [256, K]
    lower = np.where(x == -1.0, -np.inf, (x - means - 1 / 255) * inverse_scale)
    log_cdf = lambda z: -np.logaddexp(0.0, -z)  # noqa: E731   log sigma(z)
    with np.errstate(divide='ignore'):
        below = log_cdf(upper) + np.log1p(-np.exp(log_cdf(lower) - log_cdf(upper)))
        above = log_cdf(-lower) + np.log1p(-np.exp(log_cdf(-upper) - log_cdf(-lower)))
    log_bin = np.where(lower > 0, above, below)
    log_weights = logits - np.logaddexp.reduce(logits)
    return np.logaddexp.reduce(log_bin + log_weights, axis=-1)


@pytest.mark.parametrize('log_scales', [[-7.0, -7.0, -7.0], [-5.0, -4.0, -6.5], [-7.0, -2.0, 1.0]])
def test_every_grey_intensity_keeps_its_log_probability_under_narrow_components(log_scales):
    """Unlikely intensities under narrow components (logistic CDFs both near 0 or 1) to 1e-4 nats,
    where subtracting float32 sigmoids was off by 5e-3 to 2e-2."""
    means, logits = np.array([-0.6, 0.1, 0.73]), np.array([0.3, -0.2, 0.5])
    params = np.concatenate([logits, np.stack([means, log_scales], -1).reshape(-1)])   # K logits, then (m, s) per K
    params = params.astype(np.float32).astype(np.float64)     # the very parameters the model evaluates
    ours = np.asarray(dmol_log_likelihood(jnp.asarray(params, jnp.float32)[None], jnp.arange(256)[:, None], 3))
    expected = reference_grey_log_probabilities(params[3::2], params[4::2], params[:3])
    assert np.isfinite(ours).all()
    np.testing.assert_allclose(ours, expected, rtol=0, atol=1e-4)


def test_the_256_probabilities_of_a_grey_pixel_sum_to_one():
    params = random_params(8, 1, 5)
    values = jnp.arange(256)[:, None, None]                                   # [256, 1, C=1]
    probabilities = jnp.exp(dmol_log_likelihood(params[None], values, 5))     # [256, 8]
    np.testing.assert_allclose(np.asarray(probabilities.sum(0)), 1.0, atol=1e-4)


@pytest.mark.slow
def test_the_256_cubed_probabilities_of_an_rgb_pixel_sum_to_one():
    params = random_params(1, 3, 3)[0]
    green, blue = np.meshgrid(np.arange(256), np.arange(256), indexing='ij')

    @jax.jit
    def total_for_red(red):
        pixels = jnp.stack([jnp.full(green.size, red), green.reshape(-1), blue.reshape(-1)], axis=-1)
        return jnp.exp(dmol_log_likelihood(params[None], pixels, 3)).sum()

    total = sum(float(total_for_red(red)) for red in range(256))
    assert total == pytest.approx(1.0, abs=1e-3)


def test_samples_follow_the_distribution():
    params = random_params(1, 1, 2, scale=1.0)[0]
    values = jnp.arange(256)[:, None]
    probabilities = np.asarray(jnp.exp(dmol_log_likelihood(params[None], values, 2)))
    samples = np.asarray(dmol_sample(jnp.broadcast_to(params, (20000, params.shape[0])), jax.random.key(0), 1, 2))
    histogram = np.bincount(samples[:, 0], minlength=256) / len(samples)
    # Coarse bins of 16 intensities: each holds >> 100 samples, so 3 binomial sigmas is < 0.02.
    np.testing.assert_allclose(histogram.reshape(16, 16).sum(1), probabilities.reshape(16, 16).sum(1), atol=0.02)
    assert samples.min() >= 0 and samples.max() <= 255
