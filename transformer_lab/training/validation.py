"""``validate(config)``: the owner of each config section checks it, before anything touches the disk.

Validation sits above every table it asks (models, datasets and their Tasks, training's sections,
sampling), so that none of them imports upward.
"""

from __future__ import annotations

from transformer_lab import tasks
from transformer_lab.models.catalog import check_model
from transformer_lab.sampling import check_sample
from transformer_lab.training.checkpoints import check_checkpoint
from transformer_lab.training.evaluators import check_eval
from transformer_lab.training.optim import check_train
from transformer_lab.training.parallel import check_parallel


def validate(config) -> None:
    """Asks the owner of each config section to check it, before anything touches the disk: the first
    problem raises config.ConfigError naming the field and what would be valid."""
    check_model(config)
    tasks.task_for(config.data.name).check_config(config)
    check_train(config.train)
    check_eval(config)
    check_checkpoint(config.checkpoint)
    check_parallel(config.parallel)
    check_sample(config.sample)
