#!/usr/bin/env bash
# Build (if needed) and run the vcsim-cdp simulator; all arguments are passed through.
# Prints one line "VCSIM_URL=https://USER:PASS@127.0.0.1:PORT/sdk" when ready and
# serves until SIGINT/SIGTERM.  Example:
#   deploy/vcsim/start.sh -cluster 1 -host 2 -ds 1 -portgroups DR-Prod,DR-Test-Isolated
set -euo pipefail
bin="$("$(dirname "${BASH_SOURCE[0]}")/build.sh" | tail -n 1)"
exec "$bin" "$@"
