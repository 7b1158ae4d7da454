import { TransientError } from "../../identity/errors.js";
import { KubeApiError } from "../../kube/transport.js";

const MAX_CAUSE_DEPTH = 8;
const MAX_DETAIL_CHARS = 200;

/**
 * A failed call to the Kubernetes API made while resolving a credential, as a TransientError with
 * reason "KubernetesApiError". `what` says which call ("reading Secret payments/app-cred (...)").
 *
 * The message carries the HTTP status and reason of the API's answer and not the Status message,
 * or, for a failure without an answer (reset, timeout), the innermost error's message: none of them
 * can hold a Secret's data or a token, which are only ever in response bodies we do not quote.
 */
export function kubernetesApiError(what: string, err: unknown): TransientError {
  const api = findKubeApiError(err);
  const detail = api
    ? `HTTP ${api.statusCode}${api.reason ? ` ${api.reason}` : ""}`
    : innermostMessage(err).slice(0, MAX_DETAIL_CHARS);
  return new TransientError(`${what}: ${detail}`, {
    reason: "KubernetesApiError",
    httpStatus: api?.statusCode,
    cause: err,
  });
}

export function findKubeApiError(err: unknown): KubeApiError | undefined {
  let e = err;
  for (let depth = 0; depth < MAX_CAUSE_DEPTH && e instanceof Error; depth++) {
    if (e instanceof KubeApiError) return e;
    e = e.cause;
  }
  return undefined;
}

function innermostMessage(err: unknown): string {
  let e = err;
  for (let depth = 0; depth < MAX_CAUSE_DEPTH && e instanceof Error && e.cause instanceof Error; depth++) {
    e = e.cause;
  }
  return e instanceof Error ? e.message : String(e);
}
