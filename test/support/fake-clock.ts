import type { Clock } from "../../src/clock.js";

/** A clock that moves only when a test says so. */
export class FakeClock implements Clock {
  constructor(private current = Date.parse("2026-11-24T11:00:00Z")) {}
  now(): number {
    return this.current;
  }
  advance(ms: number): void {
    this.current += ms;
  }
  set(ms: number): void {
    this.current = ms;
  }
}
