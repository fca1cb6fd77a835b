"""One Task per modality (text, images, music), the one place that knows a modality: its input
pipeline, its sampler, how it reads a primer file, how it draws attention, the evaluators that apply,
and what its models are conditioned on (sources, classes, a low-resolution image, a melody).

Callers look a run's Task up by its dataset's modality (``task_for``) and build its pipeline
(``build_pipeline``), never branching on data fields; a new modality is one module here and a line in
``TASKS``.
"""

from transformer_lab.data.catalog import dataset_named
from transformer_lab.tasks.base import Task
from transformer_lab.tasks.images import ImageTask
from transformer_lab.tasks.music import MusicTask
from transformer_lab.tasks.text import TextTask

TASKS: dict[str, Task] = {task.modality: task for task in (TextTask(), ImageTask(), MusicTask())}

# Tokenizers that need nothing but their name (not sentencepiece, which is trained on a dataset).
FIXED_TOKENIZERS = {name: tokenizer for task in TASKS.values()
                    for name, tokenizer in task.pipeline.TOKENIZERS.items() if tokenizer is not None}


def task_for(data_name: str) -> Task:
    """The Task of the modality of the dataset ``data.name`` names (transformer_lab/tasks/)."""
    return TASKS[dataset_named(data_name).modality]


def build_pipeline(data_config, *, tokenizer=None):
    dataset = dataset_named(data_config.name)
    return TASKS[dataset.modality].pipeline(data_config, dataset, tokenizer=tokenizer)
