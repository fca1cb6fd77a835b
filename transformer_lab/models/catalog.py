"""The model table: every ``model.name`` a config may give, and the checks of the ``model`` section.

A new model is a module plus a line in ``MODELS`` (it offers ``models.Model``'s face).
"""

from __future__ import annotations

from flax import nnx

from transformer_lab.config import one_of, require
from transformer_lab.models.heads import head_class
from transformer_lab.models.image_transformer import ImageTransformer
from transformer_lab.models.stacks import check_stack
from transformer_lab.models.transformer import DecoderOnly, EncoderDecoder

MODELS = {
    'encoder_decoder': EncoderDecoder,
    'decoder_only': DecoderOnly,
    'image_transformer': ImageTransformer,
}


def check_model(config) -> None:
    """The model by name, its own fields, its stacks' and its head's."""
    model = config.model
    one_of('model.name', model.name, MODELS)
    MODELS[model.name].check_config(model)
    check_stack(model)
    require(head_class(model).smooths_labels or not config.train.label_smoothing, 'train.label_smoothing',
            f'must be 0 with model.head={model.head} (it has no classes to smooth over)')


def build_model(model_config, vocab_size: int, *, seed: int) -> nnx.Module:
    return MODELS[model_config.name](model_config, vocab_size, rngs=nnx.Rngs(params=seed))
