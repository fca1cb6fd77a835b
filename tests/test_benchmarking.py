"""scripts/bench.py's workloads on random tokens: the FLOPs that MFU divides by, and one run end to end."""

import json

import numpy as np
from flax import nnx
from helpers import load_config, run_script

from transformer_lab import attention_memory, benchmarking
from transformer_lab.models.catalog import build_model


def test_keys_per_query_follow_each_cores_memory():
    config = load_config('configs/image_transformer_cifar10.py:2d').model.attention
    assert benchmarking.attention_keys_per_query(config, 3072) == ((8 + 8) * (32 + 2 * 32), False)
    assert benchmarking.attention_keys_per_query(load_config('configs/image_transformer_cifar10.py:1d')
                                                 .model.attention, 3072) == (512, False)
    assert benchmarking.attention_keys_per_query(load_config('configs/music_transformer_maestro.py:relative')
                                                 .model.attention, 2048) == (2048, True)


def test_relative_attention_costs_its_logits_not_its_embedding_table():
    """Against the same model with plain attention: the embedding tables E add no per-token FLOPs,
    Q E^T adds 6 B T K d per layer (forward 2, backward 4)."""
    relative = load_config('configs/music_transformer_maestro.py:relative').model
    plain = relative.copy_and_resolve_references()
    plain.attention = {'type': 'dot_product'}
    counts = {}
    for name, model_config in (('relative', relative), ('plain', plain)):
        _, params = nnx.split(build_model(model_config, 390, seed=0), nnx.Param)
        counts[name] = benchmarking.decoder_train_flops(params, model_config, rows=2, length=256)
    width, layers = relative.attention_dims, relative.num_decoder_layers
    assert counts['relative'] - counts['plain'] == 6 * 2 * 256 * 256 * width * layers


def test_a_workload_is_random_tokens_of_the_configs_vocabulary():
    load = benchmarking.decoder_workload(load_config('configs/music_transformer_maestro.py:relative'), batch=3)
    assert load.vocab_size == 390 and load.tokens_per_step == 3 * 2048
    tokens = np.stack([batch['targets'] for batch in load.batches])
    assert tokens.shape == (2, 3, 2048) and tokens.min() >= 2 and tokens.max() < 390


def test_bench_writes_one_json_line_per_variant_timed_in_turn(tmp_path):
    out = tmp_path / 'results.jsonl'
    result = run_script('bench.py', '--model=music_transformer', '--length=32', '--batch=1', '--steps=1',
                        '--warmup=1', '--variant=arg=baseline', '--variant=model.num_decoder_layers=1',
                        '--interleave', f'--out={out}')
    assert result.returncode == 0, result.stderr[-2000:]
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert [line['variant'] for line in lines] == ['arg=baseline', 'model.num_decoder_layers=1']
    for line in lines:
        assert line['tokens_per_step'] == 32 and line['tokens_per_s'] > 0 and 0 < line['mfu'] < 1
        assert line['compile_s'] > 0 and line['peak_memory_mib'] > 0 and line['compiled_temporaries_mib'] > 0
    assert lines[1]['flops_step'] < lines[0]['flops_step']     # one layer of six
    assert lines[0]['speedup_vs_first_variant'] == 1.0 and lines[1]['speedup_vs_first_variant'] > 0


def test_dot_operand_types_reads_a_compiled_programs_dots():
    import jax
    import jax.numpy as jnp

    def two_products(a, b):
        return jnp.dot(a, b, preferred_element_type=jnp.float32), jnp.dot(a.astype(jnp.float32), b.astype(jnp.float32))
    x = jnp.ones((16, 16), jnp.bfloat16)
    counts = benchmarking.dot_operand_types(jax.jit(two_products).lower(x, x).compile().as_text())
    assert sum(counts.values()) == 2 and counts.get('f32 x f32 -> f32', 0) >= 1, counts


def test_profile_top_ops_names_the_programs_operations(tmp_path):
    import jax
    import jax.numpy as jnp
    x = jnp.ones((256, 256))
    product = jax.jit(lambda a: jnp.tanh(a @ a) @ a)
    jax.block_until_ready(product(x))
    ops = benchmarking.profile_top_ops(lambda: jax.block_until_ready(product(x)), str(tmp_path), calls=2)
    assert ops and all(milliseconds >= 0 and count >= 1 for _, milliseconds, count in ops)
    assert not any(name.startswith(('$', 'ThunkExecutor')) for name, _, _ in ops)
    assert list(tmp_path.rglob('*.trace.json.gz'))


def test_table_1_rows_order_the_relative_forms_by_memory():
    """Huang et al.'s Table 1 at L = 256, compiled: Shaw et al.'s gather above skewing above blockwise
    skewing, by the paper's formula and by XLA's compiled memory, and the gather compiles to at least the
    [L, L, D_h] tensor the formula counts."""
    forms = [form for form in attention_memory.FORMS if form.formula]
    rows = attention_memory.memory_rows([256], forms, forward=False)
    assert [row.form.name for row in rows] == [attention_memory.SHAW, attention_memory.SKEWING,
                                               attention_memory.BLOCKWISE]
    assert rows[0].formula_bytes == (4 * 256 * 256 * 64, 4 * 256 * 256)
    formula = [sum(row.formula_bytes) for row in rows]
    compiled = [row.train_bytes for row in rows]
    assert formula[0] > formula[1] > formula[2] and compiled[0] > compiled[1] > compiled[2], (formula, compiled)
    assert compiled[0] > 8 * formula[0] and all(row.forward_bytes is None for row in rows)


def test_longest_length_within_bisects_to_a_multiple_of_64():
    lengths = []

    def squared(length):
        lengths.append(length)
        return length ** 2
    assert attention_memory.longest_length_within(1000 ** 2, squared, fits=64) == 960
    assert attention_memory.longest_length_within(5000 ** 2, squared, fits=650, exceeds=8192) == 4992
    assert all(length % 64 == 0 for length in lengths)
