"""The grain pipeline on the prepared real data: packing, LM windows, evaluation coverage, sharding."""

import itertools

import numpy as np
import pytest

from helpers import load_config
from transformer_lab import tasks
from transformer_lab.data.source import DatasetNotPreparedError
from transformer_lab.data.tokenizers import EOS_ID, ByteTokenizer


@pytest.fixture(scope='module')
def translation():
    return tasks.build_pipeline(load_config('configs/transformer_bible_enes.py:tiny').data)


def test_packed_batches_have_fixed_shapes_and_consistent_segments(translation):
    batch = next(iter(translation.train_batches(4, seed=0)))
    assert set(batch) == {'inputs', 'targets', 'inputs_segment_ids', 'targets_segment_ids',
                          'inputs_positions', 'targets_positions'}
    assert all(v.shape == (4, 32) and v.dtype == np.int32 for v in batch.values())
    for side in ('inputs', 'targets'):
        tokens, segments, positions = batch[side], batch[f'{side}_segment_ids'], batch[f'{side}_positions']
        np.testing.assert_array_equal(tokens > 0, segments > 0)  # padding exactly where segment 0
        for row in range(4):
            for segment in set(segments[row]) - {0}:
                where = segments[row] == segment
                np.testing.assert_array_equal(positions[row][where], np.arange(where.sum()))
                assert tokens[row][where][-1] == EOS_ID
    assert batch['inputs_segment_ids'].max(1).tolist() == batch['targets_segment_ids'].max(1).tolist()


def test_shuffle_is_seeded_and_hosts_read_disjoint_examples(translation):
    first = lambda **kw: next(iter(translation.train_batches(4, **kw)))['targets']
    np.testing.assert_array_equal(first(seed=1), first(seed=1))
    assert not np.array_equal(first(seed=1), first(seed=2))
    host0, host1 = first(seed=1, shard_index=0, shard_count=2), first(seed=1, shard_index=1, shard_count=2)
    assert not np.array_equal(host0, host1)


def test_eval_batches_cover_every_example_once(translation):
    batches = list(translation.eval_batches('validation', 8))
    rows = np.concatenate([b['targets'] for b in batches])
    real = rows[(rows > 0).any(1)]
    assert len(real) == len(translation.source('validation')) and len(rows) % 8 == 0
    first = translation.token_ids("validation")["targets"][0]
    np.testing.assert_array_equal(rows[0][:len(first)], first)


def test_language_model_windows_are_the_contiguous_text():
    config = load_config('configs/transformer_lm_kjv.py:tiny').data
    pipeline = tasks.build_pipeline(config)
    assert isinstance(pipeline.tokenizer, ByteTokenizer)
    windows = [b['targets'] for b in itertools.islice(pipeline.eval_batches('validation', 4), 3)]
    text = ''.join(pipeline.tokenizer.decode(row) for batch in windows for row in batch)
    source = pipeline.source('validation')
    expected = ''.join(s['text'].decode() + '\n' for s in (source[i] for i in range(10)))
    assert text == expected[:len(text)] and len(text) == 3 * 4 * 32


def test_missing_dataset_names_the_command_that_prepares_it(tmp_path):
    config = load_config('configs/transformer_bible_enes.py:tiny').data
    config.data_dir = str(tmp_path)
    with pytest.raises(DatasetNotPreparedError, match='scripts/prepare_data.py --dataset=bible_translation'):
        tasks.build_pipeline(config)
