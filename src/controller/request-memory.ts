/**
 * What this process remembers about requests between reconciles: per request a small memo (its
 * cache key, counters, the status it last wrote), which requests share each cache key (to fan a new
 * token out), the expiry of every token it put in a Secret, and the cache holders of deleted
 * requests waiting out their grace period.
 */
import type { AppTokenRequest, AppTokenRequestStatus } from "../api/types.js";
import type { Clock } from "../clock.js";
import type { CacheKeyParts, TokenCache } from "../cache/index.js";
import { cacheKeyHash, cacheKeyId } from "../cache/index.js";
import type { EventRecorder } from "../kube/events.js";
import { KeyedMinHeap } from "../kube/keyed-heap.js";
import { intern } from "../kube/projections.js";
import type { RawObject } from "../kube/types.js";
import type { UsableRegistration } from "./registrations/directory.js";
import type { StatusMemo } from "./status-writer.js";

/** How long a deleted request's cache key is kept for a recreated request of the same name. */
export const RELEASE_GRACE_MS = 5 * 60_000;

/**
 * What a request's cache key is made of, as a reconcile that passed every check holds it (the
 * reconciler's snapshot, registration and resolved credential).
 */
export interface KeySource {
  snap: { req: Pick<AppTokenRequest, "metadata" | "spec"> };
  registration: Pick<UsableRegistration, "spec">;
  credential: { endpoint: URL; credential: { fingerprint: string } };
}

export interface RequestMemo extends StatusMemo {
  uid: string;
  /** The request's cache key and its hash, valid while the three `keyBuiltFor*` below still hold. */
  keyId: string | undefined;
  keyHash: string | undefined;
  /** The spec generation the key was built for (the tenant and scope come from the spec). */
  keyBuiltForGeneration: number | undefined;
  /**
   * The registration's parsed spec the key was built from (client id, cloud, authority host): a new
   * object with every version of the registration, so an identity check is a version check.
   */
  keyBuiltForRegistration: object | undefined;
  /** The credential fingerprint the key was built with: a rotation changes it. */
  keyBuiltForFingerprint: string | undefined;
  /** The generation the last acquire was for (a new one retries a failed key at once). */
  generation: number | undefined;
  /** The force-refresh value already acted on (also recorded on the Secret). */
  forceHandled: string | undefined;
  /** The force-refresh value waiting to be handled and when this process first saw it. */
  forceSeen: { value: string; at: number } | undefined;
}

/** A memo that holds its request's cache key. */
export type KeyedMemo = RequestMemo & { keyId: string; keyHash: string };

export interface RequestMemoryDeps {
  clock: Clock;
  cache: Pick<TokenCache, "release">;
  events: Pick<EventRecorder, "forget">;
  /** Builds a key id from its parts; cacheKeyId unless a test counts the calls. */
  cacheKeyId?: (parts: CacheKeyParts) => string;
}

/** The cache key's parts as a request, its registration and its credential give them. */
export function cacheKeyParts(src: KeySource): CacheKeyParts {
  const { endpoint, credential } = src.credential;
  return {
    authorityHost: endpoint.origin + endpoint.pathname,
    tenantId: src.snap.req.spec.tenantId,
    clientId: src.registration.spec.clientId,
    scope: src.snap.req.spec.scope,
    credentialFingerprint: credential.fingerprint,
  };
}

export class RequestMemory {
  private readonly memos = new Map<string, RequestMemo>();
  /**
   * keyId -> request keys using it; also the one copy of the key's id and hash that every
   * request's memo points to (a per-request copy of both is ~250 bytes, ×10^5).
   */
  private readonly keyUsers = new Map<string, { keyId: string; keyHash: string; users: Set<string> }>();
  /** request key -> expiry of the token in its Secret: O(1) soonest-expiry at scrape time. */
  private readonly expiries = new KeyedMinHeap<undefined>();
  /** request key -> when its cache holder may be released (see forget). */
  private readonly pendingRelease = new Map<string, number>();

  private readonly buildKeyId: (parts: CacheKeyParts) => string;

  constructor(private readonly d: RequestMemoryDeps) {
    this.buildKeyId = d.cacheKeyId ?? cacheKeyId;
  }

  get(key: string): RequestMemo | undefined {
    return this.memos.get(key);
  }

  /** The memo of request `obj`, started over when the name now belongs to a new object. */
  memoFor(key: string, obj: RawObject): RequestMemo {
    const uid = obj.metadata.uid ?? "";
    let memo = this.memos.get(key);
    if (memo && memo.uid !== uid) {
      // Deleted and recreated under the same name (a GitOps replace): counters and status start
      // over, but the cache key is not released: its token is as good for the new request.
      this.drop(key, memo);
      memo = undefined;
    }
    if (!memo) {
      this.pendingRelease.delete(key);
      const status = (obj as { status?: AppTokenRequestStatus }).status;
      memo = {
        uid,
        keyId: undefined,
        keyHash: undefined,
        keyBuiltForGeneration: undefined,
        keyBuiltForRegistration: undefined,
        keyBuiltForFingerprint: undefined,
        generation: undefined,
        hits: status?.cache?.hits ?? 0,
        misses: status?.cache?.misses ?? 0,
        lastStatus: undefined,
        writtenRv: undefined,
        forceHandled: undefined,
        forceSeen: undefined,
      };
      this.memos.set(key, memo);
    }
    return memo;
  }

  /**
   * The memo of request `key`, holding the request's cache key. The key (a string of ~200
   * characters, and its sha256 when new) is built only when the spec generation, the registration's
   * version or the credential's fingerprint changed since it last was: those are all it is made of,
   * so a reconcile that finds them as they were pays three comparisons. The key id the memo held
   * before the call is the previous one, for a caller that hands a rotated key's token over.
   */
  keyFor(key: string, memo: RequestMemo, src: KeySource): KeyedMemo {
    const generation = src.snap.req.metadata.generation;
    const registration = src.registration.spec;
    const fingerprint = src.credential.credential.fingerprint;
    if (
      memo.keyId === undefined ||
      generation === undefined ||
      memo.keyBuiltForGeneration !== generation ||
      memo.keyBuiltForRegistration !== registration ||
      memo.keyBuiltForFingerprint !== fingerprint
    ) {
      this.link(key, memo, this.buildKeyId(cacheKeyParts(src)));
      memo.keyBuiltForGeneration = generation;
      memo.keyBuiltForRegistration = registration;
      memo.keyBuiltForFingerprint = fingerprint;
    }
    // link always sets both, and a memo's key is never unset while it is in use.
    return memo as KeyedMemo;
  }

  /** Points request `key` at cache key `keyId`: one shared copy of the id and its hash. */
  private link(key: string, memo: RequestMemo, keyId: string): void {
    if (memo.keyId === keyId && memo.keyHash !== undefined) return;
    this.unlink(key, memo.keyId);
    let shared = this.keyUsers.get(keyId);
    if (!shared) {
      shared = { keyId, keyHash: intern(cacheKeyHash(keyId)), users: new Set() };
      this.keyUsers.set(keyId, shared);
    }
    shared.users.add(key);
    memo.keyId = shared.keyId;
    memo.keyHash = shared.keyHash;
  }

  /** The other requests on `keyId`. */
  *othersOn(keyId: string, except: string): Iterable<string> {
    const shared = this.keyUsers.get(keyId);
    if (!shared) return;
    for (const k of shared.users) if (k !== except) yield k;
  }

  tokenExpires(key: string, at: number): void {
    this.expiries.set(key, at, undefined);
  }

  /** Earliest expiry among the tokens this process put in Secrets (for the soonest-expiry gauge). */
  soonestExpiry(): number | undefined {
    return this.expiries.peek()?.due;
  }

  /** The request is gone: let go of its memory now and of its cache key after a grace period. */
  forget(key: string): void {
    const memo = this.memos.get(key);
    if (memo) this.drop(key, memo);
    this.expiries.delete(key);
    // Released after a grace period: a request deleted and recreated under the same name (a GitOps
    // replace) finds its token still cached instead of calling the token service again.
    this.pendingRelease.set(key, this.d.clock.now() + RELEASE_GRACE_MS);
  }

  /** Lets the cache drop keys of requests deleted more than the grace period ago. */
  releaseForgotten(): number {
    const now = this.d.clock.now();
    let n = 0;
    for (const [key, at] of this.pendingRelease) {
      if (at > now) continue;
      this.pendingRelease.delete(key);
      if (!this.memos.has(key)) {
        this.d.cache.release(key);
        n++;
      }
    }
    return n;
  }

  private drop(key: string, memo: RequestMemo): void {
    this.unlink(key, memo.keyId);
    this.d.events.forget(memo.uid);
    this.memos.delete(key);
  }

  private unlink(key: string, keyId: string | undefined): void {
    if (keyId === undefined) return;
    const shared = this.keyUsers.get(keyId);
    shared?.users.delete(key);
    if (shared && shared.users.size === 0) this.keyUsers.delete(keyId);
  }
}
