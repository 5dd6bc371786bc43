# `make demo` and `make test` each set up .venv from this repo's own files, then run.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp

.PHONY: demo test venv clean

venv: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[export,dev,ethos]'
	touch $(STAMP)

# distill -> export --int8 -> benchmark -> firmware (TFLM C++ on the host) -> gate: what a user runs, on the
# embedded synthetic corpus.
demo: $(STAMP)
	$(VENV)/bin/edgekd distill --out runs/demo
	$(VENV)/bin/edgekd export runs/demo/student --int8 --out models/demo-student --force
	$(VENV)/bin/edgekd bench models/demo-student --repeat 50
	$(VENV)/bin/edgekd firmware models/demo-student --target host
	$(VENV)/bin/edgekd gate models/budgets/wearable-firmware.toml models/demo-student \
		--junit runs/demo/gate.xml --markdown runs/demo/gate.md

test: $(STAMP)
	$(PY) -m pytest -q

clean:
	rm -rf $(VENV) runs build *.egg-info
