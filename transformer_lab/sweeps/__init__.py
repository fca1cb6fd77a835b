"""Hyperparameter sweeps on Optuna: a config file's ``sweep_NAME`` / ``search_NAME`` functions, run by
``scripts/sweep.py`` as ``scripts/train.py`` runs (``spec``: the runs; ``study``: Optuna's storage
and trials; ``worker``: one worker's loop; ``launch``: starting and watching; ``results``: tables,
plots, TensorBoard HParams); and the papers' tables on them, run by ``scripts/reproduce.py``
(``tables``: a table file, its sweep and its results; ``report``: its document; ``lengths``: its runs
past their trained length; ``reproduce``: all of it in turn). See docs/sweeps.md."""
