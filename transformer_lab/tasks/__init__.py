"""One Task per modality (text, images, music), the one place that knows a modality: its input
pipeline, its sampler, how it reads a primer file, how it draws attention, the evaluators that apply,
and what its models are conditioned on (sources, classes, a low-resolution image, a melody).

Callers look a run's Task up by its dataset's modality (``registry.task_for``) and never branch on data
fields; a new modality is one module here and a line in ``TASKS``.
"""

from transformer_lab.tasks.base import Task
from transformer_lab.tasks.images import ImageTask
from transformer_lab.tasks.music import MusicTask
from transformer_lab.tasks.text import TextTask

TASKS: dict[str, Task] = {task.modality: task for task in (TextTask(), ImageTask(), MusicTask())}
