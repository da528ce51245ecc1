# Developer entry points. `make test` is what CI runs (.ci/run) and what the README says.
.PHONY: setup demo test check protos protos-check bench lint typecheck layers

setup:
	bash deploy/setup.sh

demo: setup
	.venv/bin/cdp demo

test:
	bash deploy/test.sh

# Static checks and the generated-code drift check.
check: lint typecheck layers protos-check

lint:
	.venv/bin/ruff check cdp sim bench tests
	.venv/bin/ruff format --check cdp sim bench tests

typecheck:
	.venv/bin/mypy

# Layer rules and zero import cycles: contracts in pyproject.toml [tool.importlinter].
layers:
	.venv/bin/lint-imports

protos:
	.venv/bin/python -m grpc_tools.protoc -I protos --python_out=. --grpc_python_out=. \
		--pyi_out=. protos/cdp/v1/*.proto

# Regenerates into a scratch dir and fails if anything differs from the committed code.
protos-check:
	bash deploy/protos-check.sh

bench:
	.venv/bin/python -m bench
