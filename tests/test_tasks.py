"""The Tasks (transformer_lab/tasks/): every dataset's modality has one, and the callers that used to
decide the kind of run from data fields ask the run's Task instead."""

import ast
import pathlib

import pytest

from helpers import load_config
from transformer_lab import tasks
from transformer_lab.config import ConfigError
from transformer_lab.data.catalog import DATASETS
from transformer_lab.tasks import TASKS
from transformer_lab.training.evaluators import EVALUATORS
from transformer_lab.training.validation import validate

PROJECT = pathlib.Path(__file__).parents[1]
# The fields that tell one kind of run from another: only the Tasks (and the models and pipelines that
# the fields configure) read them.
DATA_FIELDS = {'inputs_feature', 'num_classes', 'downsample', 'modality'}
CALLERS = ['scripts', 'transformer_lab/training', 'transformer_lab/decoding', 'transformer_lab/sweeps',
           'transformer_lab/sampling.py', 'transformer_lab/runs.py', 'transformer_lab/attention_pictures.py',
           'transformer_lab/attention_maps.py', 'transformer_lab/benchmarking.py']


def test_no_caller_reads_the_fields_that_tell_kinds_of_run_apart():
    readers = []
    for caller in CALLERS:
        path = PROJECT / caller
        for source in sorted(path.rglob('*.py')) if path.is_dir() else [path]:
            for node in ast.walk(ast.parse(source.read_text())):
                name = (node.attr if isinstance(node, ast.Attribute) else
                        node.args[0].value if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                        and node.func.attr == 'get' and node.args and isinstance(node.args[0], ast.Constant)
                        else None)
                if name in DATA_FIELDS:
                    readers.append(f'{source.relative_to(PROJECT)}:{node.lineno} {name}')
    assert not readers, readers


def test_every_dataset_has_a_task_whose_evaluators_exist():
    for dataset in DATASETS.values():
        assert dataset.modality in TASKS
    for config_name, conditioning in [('configs/transformer_bible_enes.py:tiny', 'sources'),
                                      ('configs/transformer_lm_kjv.py:tiny', 'none'),
                                      ('configs/image_transformer_fashion_mnist.py:classes,tiny', 'classes'),
                                      ('configs/image_transformer_superres.py:tiny', 'low_resolution'),
                                      ('configs/music_transformer_bach_chorales.py:tiny', 'none'),
                                      ('configs/music_transformer_melody.py:tiny', 'melody')]:
        config = load_config(config_name)
        task = tasks.task_for(config.data.name)
        assert task.conditioning(config) == conditioning, config_name
        assert set(task.evaluators(config)) <= set(EVALUATORS)
        assert set(config.eval.evaluators) <= set(task.evaluators(config)), config_name   # the config's own


def test_a_translation_evaluator_on_a_language_model_names_what_applies():
    config = load_config('configs/transformer_lm_kjv.py:tiny')
    config.eval.evaluators = ('bleu',)
    with pytest.raises(ConfigError, match="eval.evaluators: 'bleu' does not apply to a language model; valid: nll, "
                                          "bits_per_char"):
        validate(config)


def test_a_melody_or_primer_rows_are_refused_by_a_model_that_reads_none():
    from transformer_lab.sampling import Request
    config = load_config('configs/music_transformer_bach_chorales.py:tiny')
    request = Request(rows=1, options={}, stem='unused', melody_file='tune.mid')
    with pytest.raises(ValueError, match='--melody=tune.mid: this run is a music model, which reads no melody'):
        tasks.task_for(config.data.name).check_request(config, request)
    melody = load_config('configs/music_transformer_melody.py:tiny')
    tasks.task_for(melody.data.name).check_request(melody, request)
    rows = Request(rows=1, options={}, stem='unused', primer_rows=14)
    with pytest.raises(ValueError, match="--primer_rows=14 keeps the first rows of an image model's --primer; this "
                                         'run is a music model'):
        tasks.task_for(config.data.name).check_request(config, rows)
    image = load_config('configs/image_transformer_fashion_mnist.py:tiny')
    with pytest.raises(ValueError, match='--primer_rows=14 keeps the first rows of --primer=PICTURE; give one'):
        tasks.task_for(image.data.name).check_request(image, rows)


def test_nll_by_position_from_the_start_of_pieces_is_for_music_models():
    config = load_config('configs/image_transformer_fashion_mnist.py:tiny')
    with pytest.raises(ValueError, match='--length measures NLL by position from the start of each piece, for '
                                         'music models; this run is an image model'):
        tasks.task_for(config.data.name).openings(config, None, 'validation', 2)
