# gran: two commands on a fresh machine.
#   make demo   trains GRAN on the built-in MNIST digits and writes pictures to out/
#   make test   runs every test
# Each installs what it needs: libtorch 2.11.0 from PyPI into a project-local .venv.

TORCH_VERSION := 2.11.0
PYTHON        ?= python3
VENV          := $(CURDIR)/.venv
TORCH_STAMP   := $(VENV)/.torch-$(TORCH_VERSION)
CARGO         ?= cargo
OUT           ?= out

# Where pip put libtorch (include/ and lib/); evaluated after the venv exists.
LIBTORCH = $(shell $(VENV)/bin/python -c 'import os, torch; print(os.path.dirname(torch.__file__))')
CARGO_ENV = LIBTORCH=$(LIBTORCH) LIBTORCH_CXX11_ABI=1

.PHONY: all setup build demo test test-rust clean

all: build

setup: $(TORCH_STAMP)

$(TORCH_STAMP):
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check torch==$(TORCH_VERSION)
	touch $@

build: $(TORCH_STAMP)
	$(CARGO_ENV) $(CARGO) build --release --lib --examples

demo: build
	mkdir -p $(OUT)
	$(CARGO_ENV) $(CARGO) run --release --example demo -- --data data/mnist10k --out $(OUT)

test: test-rust

test-rust: $(TORCH_STAMP)
	$(CARGO_ENV) $(CARGO) test --release

clean:
	$(CARGO) clean
	rm -rf $(OUT)
