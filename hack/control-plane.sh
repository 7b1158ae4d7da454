#!/usr/bin/env bash
# Local Kubernetes control plane (real kube-apiserver + etcd + garbage collector) on 127.0.0.1.
#   hack/control-plane.sh up DIR     start in the background; writes DIR/kubeconfig
#   hack/control-plane.sh down DIR   stop and clean up
#   hack/control-plane.sh binaries   only find/build the binaries and print their directory
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
case "${1:-}" in
  binaries) exec bash "$ROOT/hack/binaries.sh" ;;
  up|down)
    [[ $# -eq 2 ]] || { echo "usage: $0 up|down DIR" >&2; exit 2; }
    if [[ "$1" == up ]]; then
      # Build/find first so that a missing-Go message reaches the user as the script printed it.
      bash "$ROOT/hack/binaries.sh" >/dev/null
    fi
    exec node --import tsx "$ROOT/hack/control-plane/cli.ts" "$1" "$2" ;;
  *) echo "usage: $0 up|down DIR | binaries" >&2; exit 2 ;;
esac
