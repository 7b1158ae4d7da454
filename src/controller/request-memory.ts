/**
 * What this process remembers about requests between reconciles: per request a small memo (its
 * cache key, counters, the status it last wrote), the expiry of every token it put in a Secret, and
 * the deleted requests waiting out their grace period before the cache lets go of their keys. Which
 * requests hold which cache key is the cache's to know (`TokenCache.hold`): this keeps no copy.
 */
import type { AppTokenRequest, AppTokenRequestStatus } from "../api/types.js";
import type { Clock } from "../clock.js";
import type { CacheKeyParts, HeldKey, TokenCache } from "../cache/index.js";
import { cacheKeyId } from "../cache/index.js";
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
  /**
   * The request's cache key, its hash and the cache's handle on it, valid while the three
   * `keyBuiltFor*` below still hold and the cache has not evicted the key.
   */
  keyId: string | undefined;
  keyHash: string | undefined;
  held: HeldKey | undefined;
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
  /** Forgotten or replaced: an object that still points at this memo must look again. */
  dropped: boolean;
}

/** A memo that holds its request's cache key. */
export type KeyedMemo = RequestMemo & { keyId: string; keyHash: string; held: HeldKey };

export interface RequestMemoryDeps {
  clock: Clock;
  cache: Pick<TokenCache, "hold" | "holdersOf" | "release">;
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
   * The memo of each request object the informer holds: a reconcile of an unchanged request (every
   * cache hit) finds its memo by the object's identity, without hashing and comparing its key.
   */
  private readonly byObject = new WeakMap<RawObject, RequestMemo>();
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
    const known = this.byObject.get(obj);
    if (known !== undefined && !known.dropped) return known;
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
      // The fields every reconcile reads come first: V8 lays them out in this order, so the hit
      // path touches one cache line of the memo.
      memo = {
        uid,
        keyBuiltForGeneration: undefined,
        keyBuiltForRegistration: undefined,
        keyBuiltForFingerprint: undefined,
        held: undefined,
        keyId: undefined,
        keyHash: undefined,
        generation: undefined,
        hits: status?.cache?.hits ?? 0,
        misses: status?.cache?.misses ?? 0,
        lastStatus: undefined,
        writtenRv: undefined,
        forceHandled: undefined,
        forceSeen: undefined,
        dropped: false,
      };
      this.memos.set(key, memo);
    }
    this.byObject.set(obj, memo);
    return memo;
  }

  /**
   * The memo of request `key`, holding the request's cache key. The key (a string of ~200
   * characters, and its sha256 when new) is built only when the spec generation, the registration's
   * version or the credential's fingerprint changed since it last was (those are all it is made of),
   * or when the cache evicted it (idle): a reconcile that finds them as they were pays four
   * comparisons, and acquires through the handle with no lookup. A key that changed is held
   * in the cache for request `key` (letting go of the previous one), after `handOver(previous,
   * next)`, for a caller that hands a rotated key's token over while the previous key is still held.
   */
  keyFor(
    key: string,
    memo: RequestMemo,
    src: KeySource,
    handOver?: (previous: string, next: string) => void,
  ): KeyedMemo {
    const generation = src.snap.req.metadata.generation;
    const registration = src.registration.spec;
    const fingerprint = src.credential.credential.fingerprint;
    // The object the key was last found valid for would spare reading the metadata, but keeping it
    // would keep the informer's previous copy of every request alive (our own status write replaces
    // it): a generation is compared instead.
    if (
      memo.held === undefined ||
      memo.held.evicted ||
      generation === undefined ||
      memo.keyBuiltForGeneration !== generation ||
      memo.keyBuiltForRegistration !== registration ||
      memo.keyBuiltForFingerprint !== fingerprint
    ) {
      const next = this.buildKeyId(cacheKeyParts(src));
      if (memo.keyId !== undefined && memo.keyId !== next) handOver?.(memo.keyId, next);
      const held = this.d.cache.hold(key, next);
      memo.held = held.held;
      memo.keyId = held.keyId;
      memo.keyHash = intern(held.keyHash);
      memo.keyBuiltForGeneration = generation;
      memo.keyBuiltForRegistration = registration;
      memo.keyBuiltForFingerprint = fingerprint;
    }
    // All three are set above, and a memo's key is never unset while it is in use.
    return memo as KeyedMemo;
  }

  /**
   * The other requests on `keyId`, as the cache knows its holders, but for deleted ones still held
   * through their grace period.
   */
  *othersOn(keyId: string, except: string): Iterable<string> {
    for (const k of this.d.cache.holdersOf(keyId)) if (k !== except && this.memos.has(k)) yield k;
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
    // replace) finds its token still cached instead of calling the token service again. The grace
    // runs from the first time the request was found gone.
    if (!this.pendingRelease.has(key)) this.pendingRelease.set(key, this.d.clock.now() + RELEASE_GRACE_MS);
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
    memo.dropped = true;
    this.d.events.forget(memo.uid);
    this.memos.delete(key);
  }
}
