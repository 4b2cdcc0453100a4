# Quick start:  make demo   (install, generate dKanizsa, train the quickstart preset, segment, print ARI)
#               make test   (install, build the docs with mkdocs --strict, run the test suite)
# TORCH picks the PyTorch build: the default is the CPU wheel this project is tested with; on a CUDA machine use
# e.g.  make install TORCH="torch --index-url https://download.pytorch.org/whl/cu126"
PYTHON ?= python3
TORCH ?= torch==2.13.0
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEMO_DATA := data
RUN := outputs/demo/$(shell date +%Y-%m-%d_%H-%M-%S)

.PHONY: install demo test docs lint clean-venv

install: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet "$(TORCH)"
	$(BIN)/python -m pip install --quiet -e ".[dev,diffusers]"
	touch $(STAMP)

demo: $(STAMP)
	test -f $(DEMO_DATA)/dKanizsa/manifest.json || $(BIN)/python -m data_gen dataset=kanizsa \
		paths.data_dir=$(DEMO_DATA) n_train=3000 n_valid=300 n_test=100 hydra.run.dir=$(RUN)/generate
	$(BIN)/python run_train.py experiment=quickstart paths.data_dir=$(DEMO_DATA) hydra.run.dir=$(RUN)/train
	$(BIN)/python run_segment.py run_dir=$(RUN)/train paths.data_dir=$(DEMO_DATA) \
		noise.std=0.001 noise.perturb_num=40 clustering=ward hydra.run.dir=$(RUN)/segment

test: $(STAMP) docs
	WANDB_MODE=offline $(BIN)/python -m pytest -q

# The documentation site, into site/ (ignored); --strict turns a broken link or reference into a failure.
docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --site-dir site

lint: $(STAMP)
	$(BIN)/ruff check . && $(BIN)/ruff format --check .

clean-venv:
	rm -rf $(VENV)
