/**
 * Time-ordered tasks on the sandbox clock: a binary heap keyed by (time, insertion order), so a fleet of
 * scenario agents with thousands of pending actions fires each one in O(log n) and `advance()` stays
 * deterministic for a seed.
 */
interface Task {
  at: number;
  seq: number;
  run: (now: number) => void;
  owner: string;
}

const before = (a: Task, b: Task) => a.at < b.at || (a.at === b.at && a.seq < b.seq);

export class Scheduler {
  private heap: Task[] = [];
  private seq = 0;

  at(at: number, owner: string, run: (now: number) => void): void {
    this.heap.push({ at, seq: this.seq++, run, owner });
    this.up(this.heap.length - 1);
  }

  /** Drops every pending task of `owner` (a stopped scenario). */
  cancelOwner(owner: string): void {
    this.heap = this.heap.filter((t) => t.owner !== owner);
    for (let i = (this.heap.length >> 1) - 1; i >= 0; i--) this.down(i);
  }

  get pending(): number {
    return this.heap.length;
  }

  /**
   * Fires every task due by `until`, in time order (insertion order among equal times), moving the clock
   * to each task's time first. Tasks a firing task adds are fired too when they fall due by `until`.
   */
  runUntil(until: number, setTime: (t: number) => void): number {
    let fired = 0;
    while (this.heap.length && (this.heap[0] as Task).at <= until) {
      const task = this.pop();
      setTime(task.at);
      task.run(task.at);
      fired++;
    }
    return fired;
  }

  private pop(): Task {
    const top = this.heap[0] as Task;
    const last = this.heap.pop() as Task;
    if (this.heap.length) {
      this.heap[0] = last;
      this.down(0);
    }
    return top;
  }

  private up(i: number): void {
    const h = this.heap;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (!before(h[i] as Task, h[parent] as Task)) return;
      [h[i], h[parent]] = [h[parent] as Task, h[i] as Task];
      i = parent;
    }
  }

  private down(i: number): void {
    const h = this.heap;
    for (;;) {
      const l = 2 * i + 1;
      const r = l + 1;
      let least = i;
      if (l < h.length && before(h[l] as Task, h[least] as Task)) least = l;
      if (r < h.length && before(h[r] as Task, h[least] as Task)) least = r;
      if (least === i) return;
      [h[i], h[least]] = [h[least] as Task, h[i] as Task];
      i = least;
    }
  }
}
