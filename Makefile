# Two commands on a fresh machine: `make test` and `make demo`. Each sets up .venv itself.
PYTHON ?= python3
VENV := .venv
BIN := $(CURDIR)/$(VENV)/bin
# CPU build from the local wheel cache first: a bare `torch` requirement would pull a multi-GB CUDA build.
TORCH_SPEC ?= torch==2.13.0
CORES ?= 2
# People's masks (segmenter: mediapipe): 0.10.21 is the last release whose wheel bundles its models. Without its
# declared dependencies, which would downgrade numpy and protobuf (pyproject's `video` extra has what it imports).
MEDIAPIPE_SPEC ?= mediapipe==0.10.21
# From the npm registry into .venv/node, never fetched at run time: the results page's 3D viewer
# (inlined into report.html), and for the tests the Khronos glTF validator and a Chromium driver.
NODE := $(VENV)/node
NODE_PACKAGES := @google/model-viewer@4.4.0 gltf-validator@2.0.0-dev.3.10 playwright-core@1.64.1
export PATH := $(BIN):$(PATH)

.PHONY: setup test demo readme-figure clean

setup: $(VENV)/.installed $(NODE)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet "$(TORCH_SPEC)"
	$(BIN)/python -m pip install --quiet -e ".[dev,people,video]"
	$(BIN)/python -m pip install --quiet --no-deps $(MEDIAPIPE_SPEC)
	touch $@

$(NODE)/.installed: Makefile
	@if command -v npm >/dev/null; then \
		npm install --silent --no-audit --no-fund --prefix $(NODE) $(NODE_PACKAGES) && touch $@; \
	else echo "npm not found: report.html will link the glb instead of showing it; the glb and page browser tests skip"; fi

# -rs lists every skipped test with its reason and --durations names the slowest, so a CI log shows that the
# real-Slurm and browser tests ran rather than skipped.
test: setup
	$(BIN)/python -m pytest -q -rs --durations=10

demo: setup
	$(BIN)/snakemake --cores $(CORES)
	@echo "Results: open $(CURDIR)/results/demo-quad/report.html (videos, 3D model, metrics, curves)."
	@echo "Beside it: reference-0.mp4, turntable.mp4, export/0/ (meshes, motion.json, animated.glb), eval/metrics.json, train/; data in $(CURDIR)/data/."

# The README's picture, made by the project's own commands.
readme-figure: setup
	$(BIN)/snakemake --cores $(CORES) data/demo-quad/manifest.json
	$(BIN)/lab4d preview --manifest data/demo-quad/manifest.json --strip --frames 6 --width 900 --out docs/images/demo-quad-strip.png

clean:
	rm -rf results logs .snakemake
