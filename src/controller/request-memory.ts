/**
 * What this process remembers about requests between reconciles: per request a small memo (its
 * cache key, counters, the status it last wrote), which requests share each cache key (to fan a new
 * token out), the expiry of every token it put in a Secret, and the cache holders of deleted
 * requests waiting out their grace period.
 */
import type { AppTokenRequestStatus } from "../api/types.js";
import type { Clock } from "../clock.js";
import type { TokenCache } from "../cache/index.js";
import { cacheKeyHash } from "../cache/index.js";
import type { EventRecorder } from "../kube/events.js";
import { KeyedMinHeap } from "../kube/keyed-heap.js";
import { intern } from "../kube/projections.js";
import type { RawObject } from "../kube/types.js";
import type { StatusMemo } from "./status-writer.js";

/** How long a deleted request's cache key is kept for a recreated request of the same name. */
export const RELEASE_GRACE_MS = 5 * 60_000;

export interface RequestMemo extends StatusMemo {
  uid: string;
  keyId: string | undefined;
  keyHash: string | undefined;
  generation: number | undefined;
  /** The force-refresh value already acted on (also recorded on the Secret). */
  forceHandled: string | undefined;
  /** The force-refresh value waiting to be handled and when this process first saw it. */
  forceSeen: { value: string; at: number } | undefined;
}

export interface RequestMemoryDeps {
  clock: Clock;
  cache: Pick<TokenCache, "release">;
  events: Pick<EventRecorder, "forget">;
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

  constructor(private readonly d: RequestMemoryDeps) {}

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
   * Points request `key` at cache key `keyId`, and returns the key's hash. The previous key, if it
   * changed, is in `memo.keyId` until this returns.
   */
  link(key: string, memo: RequestMemo, keyId: string): string {
    if (memo.keyId === keyId && memo.keyHash !== undefined) return memo.keyHash;
    this.unlink(key, memo.keyId);
    let shared = this.keyUsers.get(keyId);
    if (!shared) {
      shared = { keyId, keyHash: intern(cacheKeyHash(keyId)), users: new Set() };
      this.keyUsers.set(keyId, shared);
    }
    shared.users.add(key);
    memo.keyId = shared.keyId;
    memo.keyHash = shared.keyHash;
    return shared.keyHash;
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
