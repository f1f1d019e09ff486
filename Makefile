# The two commands a newcomer needs: `make run` and `make test`. Both set themselves up.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin

.PHONY: run test lint setup clean

# (Re)install when pyproject.toml changes; the stamp is the installed console script.
$(BIN)/textback: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $@

setup: $(BIN)/textback

## Run web + worker + sandbox (SQLite and an embedded Redis unless DATABASE_URL / REDIS_URL are set).
run: setup
	$(BIN)/textback run

## Run the test suite (on TEST_DATABASE_URL / REDIS_URL when set, else SQLite and an embedded Redis).
test: setup
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: setup
	$(BIN)/ruff check .

clean:
	rm -rf $(VENV) instance .pytest_cache .ruff_cache *.egg-info
