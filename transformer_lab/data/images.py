"""Images for the Image Transformer: the grain pipeline over TFDS image datasets and its tokenizer.

Every batch is a dict of int32 numpy arrays with fixed shapes:

    targets         [rows, height * width * channels]  intensities 0..255 in raster order (row, column, channel)
    target_weights  [rows, height * width * channels]  1 for real images, 0 for the rows padding the last eval batch
    label           [rows]                              the class, for class-conditional models
    inputs          [rows, (height / f) (width / f) channels]   super-resolution (data.downsample = f > 1):
                                                        the image averaged over f x f blocks, raster order

Batches stay in raster order: the model puts them in its generation order (block-raster for local 2D
attention, see attention/local.py) and returns logits in raster order again, so data, loss and
evaluation never depend on the attention variant.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator

import grain
import numpy as np

from transformer_lab.config import ConfigError
from transformer_lab.data.batching import Batches, Order
from transformer_lab.data.source import Dataset, TfdsPipeline, pad_to


class PixelTokenizer:
    """Images: a token is an intensity 0..255 of one colour channel of one pixel (no text to encode)."""

    vocab_size = 256


class ImagePipeline(TfdsPipeline):
    """Batches of one image dataset as configured by the ``data`` section (``targets_feature`` is the
    image feature, e.g. 'image'; ``data.image_shape`` must match it)."""

    TOKENIZERS = {'pixels': PixelTokenizer}

    def __init__(self, data_config, dataset: Dataset, *, tokenizer=None):
        super().__init__(data_config, dataset)
        self.tokenizer = tokenizer or PixelTokenizer()
        stored = tuple(self.builder.info.features[data_config.targets_feature].shape)
        if stored != tuple(data_config.image_shape):
            hint = (f' (configs/image_transformer_folder.py:name={dataset.config_name},size={stored[0]},'
                    f'channels={stored[2]}, or prepare it again with --image_size and --channels and --overwrite)'
                    if dataset.user_files else '')
            raise ConfigError('data.image_shape', f'{tuple(data_config.image_shape)} but {dataset.name} '
                                                  f'stores images of shape {stored}{hint}')

    @property
    def num_classes(self) -> int:
        """The number of classes of the dataset's ``label`` feature (0 without one)."""
        features = self.builder.info.features
        return features['label'].num_classes if 'label' in features.keys() else 0

    def _rows(self, split: str, rows: int) -> ImageRows:
        return ImageRows(self.source(split), self.config.targets_feature, rows, self.config.downsample)

    def train_batches(self, rows: int, *, seed: int, shard_index: int = 0,
                      shard_count: int = 1) -> grain.IterDataset:
        """An endless stream of batches of ``rows`` images (this host's share), reshuffled every epoch;
        host ``shard_index`` reads every ``shard_count``-th image of the shuffled order."""
        assemble = self._rows(self.config.train_split, rows)
        return Batches(Order.shuffled(np.arange(len(assemble.source)), seed=seed, shard_index=shard_index,
                                      shard_count=shard_count), assemble)

    def eval_batches(self, split: str, rows: int, *, max_examples: int = -1, shard_index: int = 0,
                     shard_count: int = 1) -> Iterator[dict]:
        """Every image of ``split`` (or its first ``max_examples``) once, in order; host ``shard_index``
        takes every ``shard_count``-th. The last batch is padded with rows of weight 0."""
        assemble = self._rows(split, rows)
        order = Order.evaluation(len(assemble.source), max_examples=max_examples, shard_index=shard_index,
                                 shard_count=shard_count)
        yield from Batches(order, assemble)


@dataclasses.dataclass
class ImageRows:
    """Batches of images (an ``assemble`` of data/batching.py): the records of a batch read in one call
    and converted together; a batch that the end of a once-through order leaves short is padded with
    rows of weight 0."""
    source: object     # the split's random-access TFDS source
    feature: str
    rows: int
    downsample: int = 1

    def __call__(self, order: Order, cursor):
        position, _ = cursor
        indices = order.take(position, self.rows)
        if not len(indices):
            return None
        records = self.source.__getitems__(indices.tolist())
        images = np.stack([np.asarray(record[self.feature]) for record in records])
        count = len(records)
        batch = {'targets': images.reshape(count, -1), 'target_weights': np.ones((count, images[0].size)),
                 'label': np.asarray([record.get('label', 0) for record in records])}
        if self.downsample > 1:
            batch['inputs'] = downsample(images, self.downsample).reshape(count, -1)
        batch = {name: pad_to(value, self.rows, axis=0) for name, value in batch.items()}
        return batch, (position + count, 0)


def downsample(images: np.ndarray, factor: int) -> np.ndarray:
    """[..., H, W, C] -> [..., H / factor, W / factor, C]: the rounded mean of each factor x factor block
    (the low-resolution input of super-resolution)."""
    *batch, height, width, channels = images.shape
    if height % factor or width % factor:
        raise ConfigError('data.downsample', f'{factor} does not divide the {height}x{width} images')
    blocks = images.reshape(*batch, height // factor, factor, width // factor, factor, channels)
    return np.round(blocks.mean(axis=(-4, -2))).astype(images.dtype)
