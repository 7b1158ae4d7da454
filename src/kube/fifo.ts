/**
 * The work queue's ready lists, one per priority. An entry carries the ticket (`seq`) its key was
 * queued with, so that a key upgraded to high priority or queued again leaves its old entry behind
 * to be skipped when it comes up, instead of being searched for and removed.
 */
export interface FifoEntry {
  key: string;
  seq: number;
}

/** Array-backed FIFO with a moving head: O(1) amortised, no per-pop array shift. */
export class Fifo {
  private items: FifoEntry[] = [];
  private head = 0;
  push(e: FifoEntry): void {
    this.items.push(e);
  }
  shift(): FifoEntry | undefined {
    if (this.head >= this.items.length) return undefined;
    const e = this.items[this.head++];
    if (this.head > 1024 && this.head * 2 > this.items.length) {
      this.items = this.items.slice(this.head);
      this.head = 0;
    }
    return e;
  }
  clear(): void {
    this.items = [];
    this.head = 0;
  }
}
