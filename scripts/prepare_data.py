"""Prepares TFDS datasets as array_record (no TensorFlow), once; training reads them with grain.

    python scripts/prepare_data.py --dataset=bible_translation --dataset=kjv_text [--data_dir=DIR]
    python scripts/prepare_data.py --dataset=wmt14_ende --manual_dir=~/wmt14

Your own files, one dataset per --name (a config reads it as data.name='BUILDER/NAME'):

    python scripts/prepare_data.py --dataset=midi_folder --manual_dir=~/my_midi --name=piano
    python scripts/prepare_data.py --dataset=image_folder --manual_dir=~/pictures --name=faces --image_size=32
    python scripts/prepare_data.py --dataset=parallel_text --manual_dir=~/en_fr --source_lang=en --target_lang=fr
    python scripts/prepare_data.py --dataset=text_file --manual_dir=~/novel.txt --name=novel

A prepared dataset is kept: preparing it again says so, and warns if its files or options changed
since; --overwrite prepares it again from the files (transformer_lab/data/prepare.py).
"""

from absl import flags

from transformer_lab import cli
from transformer_lab.data import prepare
from transformer_lab.data.catalog import DATASETS, USER_DATASET_NAME
from transformer_lab.data.source import resolve_data_dir

FLAGS = flags.FLAGS
flags.DEFINE_multi_enum('dataset', None, sorted(DATASETS), 'Datasets to prepare.')
flags.DEFINE_string('data_dir', '', 'TFDS data dir (default: $TFDS_DATA_DIR or ~/tensorflow_datasets).')
flags.DEFINE_string('manual_dir', None, 'The files to prepare from: your own folder (midi_folder, image_folder, '
                                        'parallel_text, text_file) or a downloaded dataset (wmt14_ende, maestro).')
flags.DEFINE_string('name', None, 'Your own dataset: its name, so several live side by side in one data dir '
                                  "(default 'default'); a config reads it as data.name='BUILDER/NAME'.")
flags.DEFINE_bool('overwrite', False, 'Prepare again even if prepared (e.g. after the files changed).')
flags.DEFINE_integer('image_size', None, 'image_folder: images become SIZE x SIZE (default 32).')
flags.DEFINE_integer('channels', None, 'image_folder: 3 (RGB, the default) or 1 (greyscale).')
flags.DEFINE_string('background', None, 'image_folder: the colour behind transparent pixels (default white).')
flags.DEFINE_string('source_lang', None, "parallel_text: the source files' suffix and feature (default source).")
flags.DEFINE_string('target_lang', None, "parallel_text: the target files' suffix and feature (default target).")
flags.mark_flag_as_required('dataset')
OPTION_FLAGS = ('image_size', 'channels', 'background', 'source_lang', 'target_lang')
SHOWN_SKIPPED = 10


def options_for(name: str) -> dict:
    """The builder options given on the command line, refused for a dataset that has no such option."""
    import importlib

    import tensorflow_datasets as tfds
    importlib.import_module(DATASETS[name].builder_module)
    accepted = getattr(tfds.builder_cls(name), 'OPTIONS', ())
    given = {option: FLAGS[option].value for option in OPTION_FLAGS if FLAGS[option].value is not None}
    for option in given:
        if option not in accepted:
            cli.fail(f'--{option} is not an option of --dataset={name}; its options: '
                                 f'{", ".join(f"--{o}" for o in accepted) or "none"}')
    return given


def main(argv):
    del argv
    data_dir = resolve_data_dir(FLAGS.data_dir)
    for name in FLAGS.dataset:
        dataset = DATASETS[name]
        if FLAGS.name is not None:
            if not dataset.user_files:
                cli.fail(f'--name is for datasets of your own files '
                                     f'({", ".join(n for n, d in DATASETS.items() if d.user_files)}), not {name}')
            if not USER_DATASET_NAME.fullmatch(FLAGS.name):
                cli.fail(f'--name={FLAGS.name!r}: valid: letters, digits, _ . - (it becomes a folder name)')
            dataset = dataset.named(FLAGS.name)
        elif dataset.user_files:
            dataset = dataset.named('')
        done = prepare.prepare(dataset, data_dir, manual_dir=FLAGS.manual_dir, overwrite=FLAGS.overwrite,
                               options=options_for(name))
        counts = ', '.join(f'{split} {count}' for split, count in done.splits.items())
        print(f'{dataset.name}: {"prepared" if done.prepared else "already prepared"} in {done.path}: {counts}')
        if len(done.classes) > 1:
            print(f'{dataset.name}: {len(done.classes)} classes (for a class-conditional model, model.num_classes='
                  f'{len(done.classes)}): {", ".join(done.classes)}')
        if done.skipped:
            print(f'{dataset.name}: skipped {len(done.skipped)} unusable (all listed in '
                  f'{done.path}/{prepare.SKIPPED_LIST}):')
            for path, reason in done.skipped[:SHOWN_SKIPPED]:
                print(f'  {path}: {reason}')
        if done.prepared and dataset.user_files and not done.splits.get('validation'):
            print(f'{dataset.name}: no validation split (the hash split gave it nothing, or every file is named '
                  f'train); put files to evaluate on in a folder named validation/ (or name them dev.* / validation.*)')


if __name__ == '__main__':
    cli.run(main)
