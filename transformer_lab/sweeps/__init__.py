"""Hyperparameter sweeps on Optuna: a config file's ``sweep_NAME`` / ``search_NAME`` functions, run by
``scripts/sweep.py`` as ``scripts/train.py`` runs (``spec``: the runs; ``study``: Optuna's storage
and trials; ``worker``: one worker's loop; ``launch``: starting and watching; ``results``: tables,
plots, TensorBoard HParams). See docs/sweeps.md."""
