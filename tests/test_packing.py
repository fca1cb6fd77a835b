"""Batches made a batch at a time with numpy (data/batching.py, data/packing.py, data/token_store.py)
against grain's own per-example transformations on the same examples, and their order and resume."""

import pickle

import grain
import grain.experimental
import numpy as np
import pytest

from transformer_lab.data import token_store
from transformer_lab.data.batching import Batches, Order
from transformer_lab.data.packing import PackedRows, Windows
from transformer_lab.data.token_store import Ragged

RNG = np.random.default_rng(0)


def random_examples(count, longest=30):
    """Translation-like pairs of random ids 2..99 ending in EOS (1), lengths 1..longest."""
    def one():
        return np.append(RNG.integers(2, 100, RNG.integers(0, longest)), 1).astype(np.int32)
    return [{'inputs': one(), 'targets': one()} for _ in range(count)]


def stores(examples):
    return {name: Ragged.from_sequences([e[name] for e in examples]) for name in examples[0]}


def take(batches, count):
    iterator = iter(batches)
    return [next(iterator) for _ in range(count)]


def assert_batches_equal(ours, theirs):
    for mine, reference in zip(ours, theirs, strict=True):
        assert sorted(mine) == sorted(reference)
        for name in mine:
            np.testing.assert_array_equal(mine[name], reference[name], err_msg=name)


@pytest.mark.parametrize('rows', [1, 6])
def test_packed_rows_are_grains_first_fit_packing(rows):
    examples = random_examples(400)
    reference = grain.experimental.FirstFitPackIterDataset(
        grain.MapDataset.source(examples).to_iter_dataset(), length_struct={'inputs': 40, 'targets': 40},
        num_packing_bins=rows, shuffle_bins=False).batch(rows)
    ours = Batches(Order.in_order(np.arange(len(examples))), PackedRows(stores(examples), rows, 40, pack=True))
    assert_batches_equal(take(ours, 8), take(reference, 8))


def test_padded_rows_and_truncation_are_one_example_a_row():
    examples = random_examples(30, longest=50)
    batches = list(Batches(Order.in_order(np.arange(30)), PackedRows(stores(examples), 8, 20, pack=False, truncate=True)))
    assert len(batches) == 4 and set(batches[0]) == {'inputs', 'targets'}
    rows = np.concatenate([b['targets'] for b in batches])
    for row, example in zip(rows, examples):
        expected = example['targets'][:20]
        np.testing.assert_array_equal(row, np.pad(expected, (0, 20 - len(expected))))
    assert not rows[30:].any()   # the last batch padded with empty rows


@pytest.mark.parametrize('rows,length', [(4, 16), (3, 7)])
def test_windows_are_grains_concat_then_split(rows, length):
    texts = [{'targets': RNG.integers(2, 100, RNG.integers(1, 40)).astype(np.int32)} for _ in range(200)]
    reference = grain.experimental.ConcatThenSplitIterDataset(
        grain.MapDataset.source(texts).to_iter_dataset(), length_struct={'targets': length}).batch(rows)
    ours = Batches(Order.in_order(np.arange(len(texts))), Windows(stores(texts), rows, length))
    # grain adds segment ids and positions, which language-model windows leave out (attention runs on)
    assert_batches_equal(take(ours, 12), [{'targets': b['targets']} for b in take(reference, 12)])


def test_windows_cover_the_stream_once_and_pad_the_end():
    texts = [{'targets': RNG.integers(2, 100, RNG.integers(1, 40)).astype(np.int32)} for _ in range(50)]
    batches = list(Batches(Order.in_order(np.arange(50)), Windows(stores(texts), 4, 16)))
    stream = np.concatenate([b['targets'].reshape(-1) for b in batches])
    expected = np.concatenate([t['targets'] for t in texts])
    np.testing.assert_array_equal(stream[:len(expected)], expected)
    assert not stream[len(expected):].any() and len(stream) - len(expected) < 4 * 16


def test_order_is_a_new_permutation_every_epoch_shared_out_between_hosts_and_workers():
    order = Order.shuffled(np.arange(10, 20), seed=3)
    epochs = order.take(0, 30).reshape(3, 10)
    assert all(sorted(epoch) == list(range(10, 20)) for epoch in epochs)
    assert len({tuple(epoch) for epoch in epochs}) == 3
    hosts = [Order.shuffled(np.arange(10, 20), seed=3, shard_index=i, shard_count=2) for i in range(2)]
    np.testing.assert_array_equal(hosts[1].take(0, 15), order.take(0, 30)[1::2])
    worker = hosts[1].sliced(slice(1, None, 3))   # worker 1 of 3 on host 1
    np.testing.assert_array_equal(worker.take(2, 4), order.take(0, 200)[1::2][1::3][2:6])
    np.testing.assert_array_equal(Order.in_order(np.arange(7), shard_index=1, shard_count=2).take(0, 10), [1, 3, 5])


def test_a_restored_iterator_continues_exactly():
    examples = random_examples(300)
    for assemble in (PackedRows(stores(examples), 5, 40, pack=True), Windows(stores(examples), 3, 16)):
        batches = Batches(Order.shuffled(np.arange(300), seed=1), assemble)
        iterator = iter(batches)
        take(iterator, 7)
        state = iterator.get_state()
        expected = take(iterator, 60)   # across epochs
        resumed = iter(batches)
        resumed.set_state(state)
        assert_batches_equal(take(resumed, 60), expected)


def test_kept_stores_are_built_once_and_pickle_as_their_folder(tmp_path):
    calls = []

    def build():
        calls.append(1)
        return stores(random_examples(20))

    first = token_store.kept(str(tmp_path / 'ids'), build)
    again = token_store.kept(str(tmp_path / 'ids'), build)
    assert len(calls) == 1 and sorted(first) == ['inputs', 'targets']
    np.testing.assert_array_equal(again['targets'][3], first['targets'][3])
    assert first['targets'].values.dtype == np.uint16 and isinstance(first['targets'].values, np.memmap)
    copy = pickle.loads(pickle.dumps(first['targets']))
    assert len(pickle.dumps(first['targets'])) < 500   # the folder's name, not the ids
    np.testing.assert_array_equal(copy.gather(np.array([4, 2]), np.array([1, 0]), np.array([2, 1])),
                                  np.concatenate([first['targets'][4][1:3], first['targets'][2][:1]]))


def test_a_store_whose_folder_cannot_be_written_is_kept_in_the_users_cache(tmp_path, monkeypatch):
    monkeypatch.setenv('HOME', str(tmp_path / 'home'))
    shared = tmp_path / 'shared_data' / 'ids'
    real_mkdtemp = token_store.tempfile.mkdtemp

    def read_only(prefix, dir):   # the shared data dir refuses writes, as a read-only mount would
        if str(dir).startswith(str(tmp_path / 'shared_data')):
            raise PermissionError(13, 'Permission denied', dir)
        return real_mkdtemp(prefix=prefix, dir=dir)

    monkeypatch.setattr(token_store.tempfile, 'mkdtemp', read_only)
    calls = []
    kept = token_store.kept(str(shared), lambda: calls.append(1) or stores(random_examples(5)))
    again = token_store.kept(str(shared), lambda: calls.append(1) or stores(random_examples(5)))
    assert len(calls) == 1 and not shared.exists()
    assert str(tmp_path / 'home' / '.cache' / 'transformer_lab') in again['targets']._path[0]
    np.testing.assert_array_equal(kept['inputs'][2], again['inputs'][2])
