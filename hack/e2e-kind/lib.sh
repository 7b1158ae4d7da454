# shellcheck shell=bash
# Functions for hack/e2e-kind.sh, in their own file so that tests can run them without Docker
# (test/integration/deploy-e2e-kind.test.ts sources this file).

E2E_TS_NAMESPACE="apptoken-e2e"
E2E_TS_SERVICE="token-service"
# The names the token service's TLS certificate carries: what the operator dials, and the rest of
# the Service's DNS forms.
# shellcheck disable=SC2034 # used by hack/e2e-kind.sh
E2E_TS_HOSTS=(
  "$E2E_TS_SERVICE.$E2E_TS_NAMESPACE.svc"
  "$E2E_TS_SERVICE.$E2E_TS_NAMESPACE.svc.cluster.local"
  "$E2E_TS_SERVICE.$E2E_TS_NAMESPACE"
  "$E2E_TS_SERVICE"
)

e2e_log() { printf '\n==> %s\n' "$*" >&2; }

# Says every missing tool at once, with where to get it; returns 1 if any is missing.
e2e_require_tools() {
  local missing=()
  command -v docker >/dev/null 2>&1 || missing+=("docker (https://docs.docker.com/engine/install/)")
  command -v kind >/dev/null 2>&1 || missing+=("kind (go install sigs.k8s.io/kind@${KIND_VERSION:-v0.30.0}, or https://kind.sigs.k8s.io/docs/user/quick-start/#installation)")
  command -v kubectl >/dev/null 2>&1 || missing+=("kubectl (https://kubernetes.io/docs/tasks/tools/)")
  command -v openssl >/dev/null 2>&1 || missing+=("openssl (apt-get install openssl)")
  command -v base64 >/dev/null 2>&1 || missing+=("base64 (coreutils)")
  if [[ ${#missing[@]} -gt 0 ]]; then
    printf 'make e2e-kind needs, and could not find:\n' >&2
    printf '  - %s\n' "${missing[@]}" >&2
    return 1
  fi
  if ! docker info >/dev/null 2>&1; then
    echo "make e2e-kind needs a running Docker engine: 'docker info' failed (is the daemon up, may you use its socket?)" >&2
    return 1
  fi
}

# e2e_issue_certs DIR HOST...: a throwaway CA (DIR/ca.crt, DIR/ca.key) and a TLS server
# certificate for the hosts (DIR/tls.crt, DIR/tls.key), valid for two days.
e2e_issue_certs() {
  local dir=$1
  shift
  mkdir -p "$dir"
  local san="" h
  for h in "$@"; do san+="${san:+,}DNS:$h"; done
  openssl req -x509 -new -nodes -newkey rsa:2048 -sha256 -days 2 \
    -keyout "$dir/ca.key" -out "$dir/ca.crt" -subj "/CN=apptoken e2e token-service CA" \
    -config <(printf '[req]\ndistinguished_name=dn\n[dn]\n[v3_ca]\nbasicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign,cRLSign\nsubjectKeyIdentifier=hash\n') \
    -extensions v3_ca 2>/dev/null
  openssl req -new -nodes -newkey rsa:2048 -sha256 \
    -keyout "$dir/tls.key" -out "$dir/tls.csr" -subj "/CN=$1" \
    -config <(printf '[req]\ndistinguished_name=dn\n[dn]\n') 2>/dev/null
  openssl x509 -req -sha256 -days 2 -in "$dir/tls.csr" -CA "$dir/ca.crt" -CAkey "$dir/ca.key" \
    -set_serial "0x$(openssl rand -hex 12)" -out "$dir/tls.crt" \
    -extfile <(printf 'basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\nsubjectAltName=%s\nsubjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid\n' "$san") 2>/dev/null
  rm -f "$dir/tls.csr"
  chmod 600 "$dir/ca.key" "$dir/tls.key"
}

# e2e_jwt_payload TOKEN: prints the JWT's payload (JSON). Never prints the token.
e2e_jwt_payload() {
  local part
  part=$(printf '%s' "$1" | cut -d. -f2 | tr '_-' '/+')
  case $((${#part} % 4)) in
    2) part+="==" ;;
    3) part+="=" ;;
  esac
  printf '%s' "$part" | base64 -d
}

# e2e_check_token_secret NAMESPACE SECRET AUDIENCE: the Secret holds a JWT for AUDIENCE, a token
# type, an RFC 3339 expiry in the future, and is owned by its AppTokenRequest. Prints lengths and
# claims, never the token.
e2e_check_token_secret() {
  local ns=$1 name=$2 audience=$3 token payload token_type expires_at owner
  token=$(kubectl -n "$ns" get secret "$name" -o jsonpath='{.data.access_token}' | base64 -d)
  [[ -n $token ]] || { echo "secret $ns/$name has no access_token" >&2; return 1; }
  [[ $(tr -cd . <<<"$token" | wc -c) -eq 2 ]] || { echo "access_token is not a JWT (${#token} bytes)" >&2; return 1; }
  payload=$(e2e_jwt_payload "$token")
  echo "access_token: a JWT of ${#token} bytes, $(grep -Eo '"aud":"[^"]*"' <<<"$payload")" >&2
  grep -Fq "\"aud\":\"$audience\"" <<<"$payload" || { echo "access_token audience is not $audience" >&2; return 1; }
  token_type=$(kubectl -n "$ns" get secret "$name" -o jsonpath='{.data.token_type}' | base64 -d)
  [[ $token_type == Bearer ]] || { echo "token_type is '$token_type', want Bearer" >&2; return 1; }
  expires_at=$(kubectl -n "$ns" get secret "$name" -o jsonpath='{.data.expires_at}' | base64 -d)
  [[ $expires_at =~ ^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:.]+Z$ ]] || { echo "expires_at '$expires_at' is not RFC 3339 UTC" >&2; return 1; }
  [[ $(date -u -d "$expires_at" +%s) -gt $(date -u +%s) ]] || { echo "expires_at $expires_at is in the past" >&2; return 1; }
  owner=$(kubectl -n "$ns" get secret "$name" -o jsonpath='{.metadata.ownerReferences[?(@.controller==true)].kind}')
  [[ $owner == AppTokenRequest ]] || { echo "secret $ns/$name is not controlled by an AppTokenRequest" >&2; return 1; }
  echo "secret $ns/$name: token_type=$token_type expires_at=$expires_at owner=$owner" >&2
}

# e2e_wait_jsonpath TIMEOUT_SECONDS WANT KUBECTL-GET-ARGS...: polls
# `kubectl get ARGS -o jsonpath=...` (the last arg is the jsonpath expression) until it prints WANT.
# Unlike `kubectl wait`, it does not fail when the object or the field does not exist yet.
e2e_wait_jsonpath() {
  local timeout=$1 want=$2 got=""
  shift 2
  local deadline=$((SECONDS + timeout))
  while ((SECONDS < deadline)); do
    got=$(kubectl get "${@:1:$#-1}" -o "jsonpath=${*: -1}" 2>/dev/null || true)
    [[ $got == "$want" ]] && return 0
    sleep 1
  done
  echo "timed out after ${timeout}s waiting for kubectl get ${*:1:$#-1} ${*: -1} to be '$want' (last: '$got')" >&2
  return 1
}

# Everything someone needs to see why a run failed, into DIR (CI uploads it).
e2e_dump_diagnostics() {
  local dir=$1
  mkdir -p "$dir"
  kubectl get all,clusterappregistrations,appregistrations,apptokenrequests,secrets,leases,events -A -o wide >"$dir/objects.txt" 2>&1 || true
  kubectl get clusterappregistrations,appregistrations,apptokenrequests -A -o yaml >"$dir/apptoken.yaml" 2>&1 || true
  kubectl -n apptoken-system describe pods >"$dir/operator-pods.txt" 2>&1 || true
  kubectl -n apptoken-system logs -l app.kubernetes.io/name=apptoken-operator --all-containers --prefix --tail=-1 >"$dir/operator.log" 2>&1 || true
  kubectl -n "$E2E_TS_NAMESPACE" logs -l app.kubernetes.io/name=token-service --tail=-1 >"$dir/token-service.log" 2>&1 || true
  printf 'diagnostics in %s; the operator log ends with:\n' "$dir" >&2
  tail -n 40 "$dir/operator.log" >&2 || true
}
