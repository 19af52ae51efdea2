// One pass at a time, and the last request always seen: a call during a pass makes one more
// pass after it, and every caller meanwhile shares that run's promise. For work that brings
// something to the state wanted now (the event loop's priority, the keys from the store).

export class Coalescer {
  readonly #pass: () => Promise<void>;
  #running: Promise<void> | undefined;
  #again = false;

  constructor(pass: () => Promise<void>) {
    this.#pass = pass;
  }

  /** The run in progress, if any. */
  get running(): Promise<void> | undefined {
    return this.#running;
  }

  run(): Promise<void> {
    if (this.#running !== undefined) {
      this.#again = true;
      return this.#running;
    }
    this.#running = (async () => {
      do {
        this.#again = false;
        await this.#pass();
      } while (this.#again);
    })().finally(() => { this.#running = undefined; });
    return this.#running;
  }
}
