# The quick start: `make run` trains the default config, `make test` runs the tests.
# Each sets itself up first (Debian data packages, virtual environment, packages, datasets).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
WORKDIR ?= workdirs/bible_enes
CONFIG ?= configs/transformer_bible_enes.py
# XLA's CPU runtime allocates a step's temporaries anew at every step and the kernel hands them back in 4 KiB
# pages each time; glibc's transparent huge pages for large blocks make that far fewer faults: a faster CPU
# step at the same peak memory (docs/benchmarks.md).
# Export it for the scripts run directly too; a GLIBC_TUNABLES of your own takes its place.
export GLIBC_TUNABLES ?= glibc.malloc.hugetlb=1
# postgresql: the sweep tests start a server of their own (tests/test_sweeps.py); fluidsynth and its General MIDI
# soundfont: music samples as WAV beside their MIDI (data/rendering.py)
DEBIAN_PACKAGES := sword-text-kjv sword-text-sparv dataset-fashion-mnist postgresql fluidsynth fluid-soundfont-gm

.PHONY: run test damaged workers smoke setup debian data lock clean

run: setup data
	$(BIN)/python scripts/train.py --config=$(CONFIG) --workdir=$(WORKDIR)

test: setup data
	$(BIN)/python -m pytest -n 2 --dist loadfile tests

# Each file of a tiny run's directory damaged in turn under the commands that read it (tests/test_damaged_runs.py):
# one error line or a warning, never a traceback. About 25 short commands, so after the suite, not in it.
damaged: setup data
	$(BIN)/python -m pytest -n 2 -m damaged tests/test_damaged_runs.py

# A sweep's workers as separate processes and machines (tests/test_sweeps.py): two workers sharing a study, a
# killed worker's run handed over (SQLite and PostgreSQL), two machines on one PostgreSQL. Each starts several
# training processes, so after the suite, not in it.
workers: setup data
	$(BIN)/python -m pytest -n 2 -m workers tests/test_sweeps.py

# Every paper-scale row of the four paper tables trained 2 steps on batches of 2 rows and evaluated once, the
# papers' datasets replaced by random stand-ins in their layouts (scripts/reproduce.py --smoke): proof that each
# row runs end to end before accelerator time goes into it. Anew each time, in workdirs/smoke.
TABLES := music_transformer_jsb music_transformer_piano image_transformer transformer_variations
smoke: setup data
	rm -rf workdirs/smoke
	for table in $(TABLES); do \
	  $(BIN)/python scripts/reproduce.py --table=$$table --scale=paper --smoke --workers=2 \
	    --workdir=workdirs/smoke/$$table || exit 1; \
	done

setup: debian $(VENV)/.installed

debian:
	@missing=$$(for p in $(DEBIAN_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
	  else echo "Please install the Debian packages: sudo apt-get install $$missing"; exit 1; fi; \
	fi

# The exact versions of requirements.lock (what the tables of docs/results/ were made with), then the project.
$(VENV)/.installed: pyproject.toml requirements.lock
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -r requirements.lock
	$(BIN)/pip install -q --no-deps -e .
	touch $@

# Refresh requirements.lock: the newest versions that pyproject.toml allows, for Python 3.11 and later on any
# platform (uv's universal resolution, as few versions per package as possible).
lock: $(VENV)/.installed
	$(BIN)/pip install -q uv
	$(BIN)/uv pip compile pyproject.toml --extra test --universal --fork-strategy fewest --python-version 3.11 \
	  --upgrade --quiet -o requirements.lock

data: setup
	$(BIN)/python scripts/prepare_data.py --dataset=bible_translation --dataset=kjv_text --dataset=fashion_mnist_offline \
	  --dataset=bach_chorales --dataset=music21_performances

clean:
	rm -rf $(VENV) workdirs
