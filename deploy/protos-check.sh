#!/usr/bin/env bash
# Fails when regenerating cdp/v1 from protos/ would change the committed code, and runs
# `buf lint` (STANDARD) and `buf breaking` (FILE rules: additive changes only) on protos/
# with buf from the npm registry when npm is available. `buf breaking` compares against
# protos/ at git ref $PROTOS_BASELINE (default ece6b4a, the v1 protos before issue 11).
set -euo pipefail
cd "$(dirname "$0")/.."
scratch=$(mktemp -d); trap 'rm -rf "$scratch"' EXIT
.venv/bin/python -m grpc_tools.protoc -I protos --python_out="$scratch" \
  --grpc_python_out="$scratch" --pyi_out="$scratch" protos/cdp/v1/*.proto
for f in "$scratch"/cdp/v1/*; do
  if ! cmp -s "$f" "cdp/v1/$(basename "$f")"; then
    echo "protos-check: cdp/v1/$(basename "$f") differs from what protos/ generates; run 'make protos'" >&2
    exit 1
  fi
done
echo "protos-check: generated code matches protos/"
buf_dir=deploy/.buf
if command -v npm >/dev/null; then
  [ -x "$buf_dir/node_modules/.bin/buf" ] || npm install --silent --prefix "$buf_dir" @bufbuild/buf@1.75.0 >/dev/null 2>&1
  (cd protos && "../$buf_dir/node_modules/.bin/buf" lint) && echo "protos-check: buf lint clean"
  baseline=${PROTOS_BASELINE:-ece6b4a}
  mkdir -p "$scratch/baseline"
  git archive "$baseline" protos | tar -x -C "$scratch/baseline"
  (cd protos && "../$buf_dir/node_modules/.bin/buf" breaking --against "$scratch/baseline/protos") \
    && echo "protos-check: buf breaking clean against $baseline"
else
  echo "protos-check: npm not found, buf lint skipped" >&2
fi
