"""The device check (transformer_lab/device_check.py, scripts/check_device.py) on a CPU: every attention check
passes and cuDNN is reported as skipped, not checked; a wrong or a raising implementation is reported as
failing; training with blockwise attention follows XLA's; the script prints a line per check and exits 0."""

import pytest

from helpers import run_script
from transformer_lab import device_check
from transformer_lab.attention import core

CUDNN_SKIPPED = ("SKIP attention cudnn: cuDNN's fused attention needs a GPU; this device's backend is cpu, "
                 "where model.attention_implementation='cudnn' runs XLA's attention")


# A mask, relative embeddings shared by the heads, a local core: the paths the other cases share (all of them run
# in scripts/check_device.py; blockwise against XLA case by case: test_blockwise_attention.py).
CASES = ['dot_product_padded', 'relative_zero_shared', 'local_2d']


@pytest.fixture(scope='module')
def attention_results():
    return list(device_check.attention_checks(CASES))


def test_every_attention_check_passes_on_a_cpu(attention_results):
    checked = [result for result in attention_results if result.status != 'SKIP']
    assert {(result.subject, result.implementation, result.dtype) for result in checked} == {
        (case, implementation, dtype) for case in CASES
        for implementation in ('xla', 'blockwise') for dtype in device_check.ATTENTION_DTYPES[implementation]}
    assert all(result.status == 'PASS' for result in checked), '\n'.join(result.line() for result in checked)
    relative = [result for result in checked if result.subject.startswith('relative')]
    assert relative and all('grad relative.table' in result.errors for result in relative)


def test_cudnn_is_reported_as_skipped_on_a_cpu(attention_results):
    assert device_check.available_implementations() == ('xla', 'blockwise')
    assert [result.line() for result in attention_results if result.status == 'SKIP'] == [CUDNN_SKIPPED]


def test_a_wrong_implementation_is_reported_as_failing(monkeypatch):
    # Blockwise attention 0.1% too large, gradients with it: outside float32's tolerance, inside bfloat16's.
    blockwise = core.blockwise_attention
    monkeypatch.setattr(core, 'blockwise_attention', lambda *args, **kwargs: blockwise(*args, **kwargs) * 1.001)
    results = {result.dtype: result for result in device_check.attention_checks(['dot_product_causal'], ['blockwise'])}
    assert results['float32'].status == 'FAIL' and results['bfloat16'].status == 'PASS'
    assert results['float32'].line().startswith('FAIL attention dot_product_causal blockwise float32: output ')


def test_an_implementation_that_raises_fails_its_check_and_the_others_run(monkeypatch):
    def unsupported(*args, **kwargs):
        raise NotImplementedError('no kernel for these shapes\n(detail)')
    monkeypatch.setattr(core, 'blockwise_attention', unsupported)
    results = list(device_check.attention_checks(['dot_product_causal'], ['blockwise', 'xla']))
    assert [result.line() for result in results[:2]] == [
        f'FAIL attention dot_product_causal blockwise {dtype}: raised NotImplementedError: no kernel for these shapes'
        for dtype in ('float32', 'bfloat16')]
    assert results[2].line().startswith('PASS attention dot_product_causal xla bfloat16: ')


def test_training_with_blockwise_attention_follows_xla():
    (result,) = device_check.training_checks(['image_transformer'], ['blockwise'])
    assert result.status == 'PASS', result.line()
    assert result.line().startswith('PASS training image_transformer blockwise float32: loss ')
    assert '20 steps' in result.detail


def test_the_script_prints_a_line_per_check_and_exits_0():
    run = run_script('check_device.py', '--notraining', '--case=dot_product_causal')
    assert run.returncode == 0, run.stderr[-3000:]
    lines = run.stdout.splitlines()
    assert lines[0].startswith('device: cpu (JAX backend cpu')
    assert lines[1] == CUDNN_SKIPPED
    assert [line.split(':')[0] for line in lines[2:-1]] == [
        'PASS attention dot_product_causal xla bfloat16', 'PASS attention dot_product_causal blockwise float32',
        'PASS attention dot_product_causal blockwise bfloat16']
    assert lines[-1] == '3 passed, 0 failed, 1 skipped'
