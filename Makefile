# The two commands of the README's quick start: `make demo` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
# The torch pair that works on the project's machines; elsewhere set TORCH_SPEC to your own.
TORCH_SPEC ?= torch==2.14.1 torchvision==0.29.1
PYTEST_ARGS ?=

.PHONY: install system-deps test test-all demo clean

install: $(VENV)/.installed

system-deps:
	bash scripts/system-deps.sh

$(VENV)/.installed: pyproject.toml
	bash scripts/system-deps.sh
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q $(TORCH_SPEC)
	$(BIN)/python -m pip install -q -e ".[test]"
	touch $@

## Default suite (slow tests excluded), what CI runs.
test: install
	$(BIN)/python -m pytest -m "not slow" $(PYTEST_ARGS)

## Everything, slow tests included.
test-all: install
	$(BIN)/python -m pytest $(PYTEST_ARGS)

## The bundled example through the whole pipeline, with an overlay video.
demo: install
	$(BIN)/maed demo examples/vtest.mp4 --render --output examples/vtest_maed

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info
