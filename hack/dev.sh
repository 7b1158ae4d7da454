#!/usr/bin/env bash
# make dev: the local control plane, the local token service, the operator and two sample
# AppTokenRequests, with no cluster and no Azure tenant. Ctrl-C stops everything.
#   DEV_ONCE=1                  exit 0 once the samples are Ready (non-zero with the operator's logs if not)
#   DEV_DIR=DIR                 state and logs (default .cache/dev)
#   DEV_READY_TIMEOUT_SECONDS   default 90
#   APPTOKEN_DEV_OPERATOR_CMD   how to start the operator (default: node --import tsx src/main.ts)
# Details: hack/dev/dev.ts.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

# The Node.js major the project runs and tests on: PATH's when it is that major, else fetched once
# into the project's cache by hack/node.sh (which says what to do when it cannot).
NODE_BIN="$(bash hack/node.sh)"
export PATH="$NODE_BIN:$PATH"
if [[ ! -d node_modules ]]; then
  echo "[dev] installing npm dependencies (npm ci)" >&2
  npm ci --no-fund --no-audit >&2
fi
# The control-plane binaries: found or built once (prints what to do when neither is possible).
bash "$ROOT/hack/binaries.sh" >/dev/null

exec node --import tsx "$ROOT/hack/dev/dev.ts"
