#!/usr/bin/env bash
# make e2e-kind: the operator end to end on a real cluster, for people and CI with Docker.
#
#   builds the image (Dockerfile) and the e2e token-service image (its token-service target),
#   creates a kind cluster, loads both, runs the local token service in the cluster behind
#   https://token-service.apptoken-e2e.svc (TLS from a throwaway CA), deploys deploy/ (CRDs, RBAC,
#   2 replicas with leader election) trusting that CA and allowed to send credentials to it
#   (--allowed-authority-hosts), applies deploy/samples/cluster (a ClusterAppRegistration, its
#   client secret in apptoken-system, a request) pointed at the token service, with the request in
#   a namespace the registration's namespaceSelector selects, waits for Ready, checks the Secret
#   holds a JWT for https://graph.microsoft.com, checks that the same request from a namespace the
#   selector does not select is refused (NamespaceNotAllowed) with no Secret, checks that deleting
#   the request deletes its Secret, and deletes the cluster whatever happened.
#
# Needs docker (with a running engine), kind, kubectl, openssl. Environment:
#   KIND_CLUSTER_NAME   cluster name (default apptoken-e2e); an existing cluster of that name is an error
#   KIND_NODE_IMAGE     node image (default: kind's own)
#   E2E_KEEP_CLUSTER=1  keep the cluster afterwards (delete it with: kind delete cluster --name NAME)
#   E2E_ARTIFACTS_DIR   where diagnostics go on failure (default .cache/e2e-kind)
#   E2E_TIMEOUT         seconds to wait for each rollout and for Ready (default 180)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
E2E="$ROOT/hack/e2e-kind"
# shellcheck source=hack/e2e-kind/lib.sh
source "$E2E/lib.sh"

CLUSTER=${KIND_CLUSTER_NAME:-apptoken-e2e}
IMAGE=ghcr.io/apptoken/apptoken-operator:dev
TS_IMAGE=apptoken-token-service:e2e
ARTIFACTS=${E2E_ARTIFACTS_DIR:-$ROOT/.cache/e2e-kind}
TIMEOUT=${E2E_TIMEOUT:-180}
# What hack/e2e-kind/manifests/sample (deploy/samples/cluster) and .../refused create.
SAMPLE_REGISTRATION=tenant-tokens
SAMPLE_NS=e2e-demo
SAMPLE_REQUEST=graph-tenant-tokens
SAMPLE_SECRET=graph-tenant-token
REFUSED_NS=e2e-unselected
AUDIENCE=https://graph.microsoft.com

e2e_require_tools || exit 1
if kind get clusters 2>/dev/null | grep -qx "$CLUSTER"; then
  echo "a kind cluster named $CLUSTER exists already; delete it (kind delete cluster --name $CLUSTER) or set KIND_CLUSTER_NAME" >&2
  exit 1
fi
CRDS=()
for crd in "$ROOT"/crds/*.yaml; do
  if ! cmp -s "$crd" "$ROOT/deploy/base/crd/$(basename "$crd")"; then
    echo "deploy/base/crd/ is out of date: cp crds/*.yaml deploy/base/crd/ (make sync-crd)" >&2
    exit 1
  fi
  # crds/apptoken.io_apptokenrequests.yaml defines apptokenrequests.apptoken.io.
  name=$(basename "$crd" .yaml)
  CRDS+=("${name#*_}.${name%%_*}")
done

WORK=$(mktemp -d)
# Our own kubeconfig: the user's ~/.kube/config is never touched.
export KUBECONFIG="$WORK/kubeconfig"
created=0
cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  if [[ $rc -ne 0 && $created -eq 1 ]]; then
    e2e_log "FAILED (exit $rc): collecting diagnostics"
    e2e_dump_diagnostics "$ARTIFACTS"
    kind export logs "$ARTIFACTS/kind" --name "$CLUSTER" >/dev/null 2>&1 || true
  fi
  if [[ $created -eq 1 ]]; then
    if [[ ${E2E_KEEP_CLUSTER:-0} == 1 ]]; then
      e2e_log "keeping cluster $CLUSTER (KUBECONFIG=$KUBECONFIG); delete it with: kind delete cluster --name $CLUSTER"
      cp "$KUBECONFIG" "$ARTIFACTS.kubeconfig" 2>/dev/null || true
    else
      e2e_log "deleting cluster $CLUSTER"
      kind delete cluster --name "$CLUSTER" >/dev/null 2>&1 || true
    fi
  fi
  rm -rf "$WORK"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

e2e_log "building $IMAGE and $TS_IMAGE"
revision=$(git -C "$ROOT" rev-parse HEAD 2>/dev/null || echo unknown)
docker build -t "$IMAGE" \
  --build-arg "REVISION=$revision" --build-arg "CREATED=$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$ROOT"
docker build --target token-service -t "$TS_IMAGE" "$ROOT"

e2e_log "creating kind cluster $CLUSTER"
created=1
kind create cluster --name "$CLUSTER" --kubeconfig "$KUBECONFIG" --wait 120s ${KIND_NODE_IMAGE:+--image "$KIND_NODE_IMAGE"}
kind load docker-image --name "$CLUSTER" "$IMAGE" "$TS_IMAGE"

e2e_log "token service at https://$E2E_TS_SERVICE.$E2E_TS_NAMESPACE.svc"
e2e_issue_certs "$WORK/pki" "${E2E_TS_HOSTS[@]}"
kubectl apply -f "$E2E/manifests/token-service/namespace.yaml"
kubectl -n "$E2E_TS_NAMESPACE" create secret tls token-service-tls \
  --cert="$WORK/pki/tls.crt" --key="$WORK/pki/tls.key" --dry-run=client -o yaml | kubectl apply -f -
kubectl apply -k "$E2E/manifests/token-service"
kubectl -n "$E2E_TS_NAMESPACE" rollout status deployment/token-service --timeout="${TIMEOUT}s"

e2e_log "deploying the operator (kubectl apply -k deploy, plus the token service's CA and host)"
kubectl apply -f "$ROOT/deploy/base/namespace.yaml"
kubectl -n apptoken-system create configmap token-service-ca \
  --from-file=ca.pem="$WORK/pki/ca.crt" --dry-run=client -o yaml | kubectl apply -f -
kubectl apply -k "$E2E/manifests/operator"
for crd in "${CRDS[@]}"; do
  e2e_wait_jsonpath 60 True crd "$crd" '{.status.conditions[?(@.type=="Established")].status}'
done
kubectl -n apptoken-system rollout status deployment/apptoken-operator --timeout="${TIMEOUT}s"

e2e_log "applying deploy/samples/cluster (authorityHost -> the token service; the request in $SAMPLE_NS)"
kubectl apply -k "$E2E/manifests/sample"
ready='{.status.conditions[?(@.type=="Ready")].status}'
conditions='{range .status.conditions[*]}{.type}={.status} {.reason}: {.message}{"\n"}{end}'
if ! e2e_wait_jsonpath "$TIMEOUT" True clusterappregistration "$SAMPLE_REGISTRATION" "$ready"; then
  kubectl get clusterappregistration "$SAMPLE_REGISTRATION" -o jsonpath="$conditions" >&2 || true
  exit 1
fi
if ! e2e_wait_jsonpath "$TIMEOUT" True -n "$SAMPLE_NS" apptokenrequest "$SAMPLE_REQUEST" "$ready"; then
  kubectl -n "$SAMPLE_NS" get apptokenrequest "$SAMPLE_REQUEST" -o jsonpath="$conditions" >&2 || true
  exit 1
fi
# The registration counts the request that names it (the Requests column).
e2e_wait_jsonpath 60 1 clusterappregistration "$SAMPLE_REGISTRATION" '{.status.requests}'
kubectl get clusterappregistrations,apptokenrequests -A

e2e_log "checking the Secret"
e2e_check_token_secret "$SAMPLE_NS" "$SAMPLE_SECRET" "$AUDIENCE"
holder=$(kubectl -n apptoken-system get lease apptoken-operator -o jsonpath='{.spec.holderIdentity}')
[[ -n $holder ]] || { echo "no replica holds the leader Lease apptoken-system/apptoken-operator" >&2; exit 1; }
echo "leader: $holder" >&2

e2e_log "the same request from $REFUSED_NS, which the namespaceSelector does not select, is refused"
kubectl apply -k "$E2E/manifests/refused"
if ! e2e_wait_jsonpath "$TIMEOUT" NamespaceNotAllowed -n "$REFUSED_NS" apptokenrequest "$SAMPLE_REQUEST" \
  '{.status.conditions[?(@.type=="Ready")].reason}'; then
  kubectl -n "$REFUSED_NS" get apptokenrequest "$SAMPLE_REQUEST" -o jsonpath="$conditions" >&2 || true
  exit 1
fi
kubectl -n "$REFUSED_NS" get apptokenrequest "$SAMPLE_REQUEST" -o jsonpath="$conditions" >&2
if kubectl -n "$REFUSED_NS" get secret "$SAMPLE_SECRET" >/dev/null 2>&1; then
  echo "a Secret $REFUSED_NS/$SAMPLE_SECRET was written for a refused request" >&2
  exit 1
fi

e2e_log "deleting the request deletes its Secret (ownerReference + garbage collector)"
kubectl -n "$SAMPLE_NS" delete apptokenrequest "$SAMPLE_REQUEST" --wait=true
e2e_wait_jsonpath 60 "" -n "$SAMPLE_NS" secret "$SAMPLE_SECRET" '{.metadata.name}'

e2e_log "PASS"
