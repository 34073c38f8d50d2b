# `make demo` and `make test` work on a fresh machine with Python 3.11: they
# create .venv when it is missing, install the pinned package, then run.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
PYTEST_ARGS ?= -n 2 --dist loadfile --durations=20

DEMO_DIR ?= runs/demo
STUDY_DIR ?= runs/study

.PHONY: install test demo reproduce smoke clean

install: $(STAMP)

$(STAMP): setup.py constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --upgrade pip
	$(PY) -m pip install -c constraints.txt -e ".[test]"
	touch $(STAMP)

test: $(STAMP)
	$(PY) -m pytest tests $(PYTEST_ARGS)

# The main job: a short comparison study on the built-in corpus (Mono, JointAll,
# +LS, +Meta LS on en and ur), its table and interference report, then the +Meta LS
# model exported and queried through the server; then the transfer protocol on the
# built-in pretrained encoder (4-bit multilingual-e5-small): LS layers learned per
# language by MLM, an English head, zero-shot with each language's own LS layers,
# beside the frozen-encoder probe; its table and verdict (f). Reruns skip finished runs.
demo: $(STAMP)
	$(PY) -m trainers.experiments --experiment=study_demo --output_dir=$(DEMO_DIR)
	$(PY) -m serving.demo $(DEMO_DIR)/runs/joint_all_meta_ls/seed0 --export_base=$(DEMO_DIR)/exports \
		--text "praise be to [MASK] , the lord of the worlds" --language en
	$(PY) -m trainers.experiments --experiment=study_pretrained_demo --output_dir=$(DEMO_DIR)/pretrained

# The paper's comparison, study_small: 7 languages, 3 seeds, two runs at a time (its time on
# 2 cores: python -m trainers.experiments --list_experiments; figures: docs/results.md).
reproduce: $(STAMP)
	$(PY) -m trainers.experiments --experiment=study_small --workers=2 --output_dir=$(STUDY_DIR)

smoke: $(STAMP)
	$(PY) -m tf_metaling.smoke

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
