/**
 * Finds where messages end in a Dask byte stream without looking inside
 * them: a message is 16 + 8n + sum(len_i) bytes,
 * whatever its leading length says. Used on the scheduler's side of a
 * connection, which is trusted and forwarded unchanged, so that an answer
 * the gateway gives in the scheduler's place is never spliced into the
 * middle of a message. Pure arithmetic, no buffering beyond one u64.
 */

const enum State {
  Length,
  Count,
  Lengths,
  Body,
}

export class MessageBoundaries {
  readonly #scratch = Buffer.alloc(8);
  #have = 0;
  #state = State.Length;
  #lengthsLeft = 0;
  #bodyLeft = 0;

  /** At a message boundary (no message begun). */
  get atBoundary(): boolean {
    return this.#state === State.Length && this.#have === 0;
  }

  /**
   * Advances through chunk[from..]; returns the offset just past the first
   * message that ends in it, or -1 when none ends in it (all consumed).
   */
  next(chunk: Buffer, from: number): number {
    let i = from;
    while (i < chunk.length) {
      if (this.#state === State.Body) {
        const take = Math.min(this.#bodyLeft, chunk.length - i);
        this.#bodyLeft -= take;
        i += take;
        if (this.#bodyLeft === 0) {
          this.#state = State.Length;
          return i;
        }
        continue;
      }
      let v: number;
      if (this.#have === 0 && chunk.length - i >= 8) {
        v = chunk.readUInt32LE(i) + chunk.readUInt32LE(i + 4) * 0x100000000;
        i += 8;
      } else {
        const take = Math.min(8 - this.#have, chunk.length - i);
        chunk.copy(this.#scratch, this.#have, i, i + take);
        this.#have += take;
        i += take;
        if (this.#have < 8) continue;
        this.#have = 0;
        v = this.#scratch.readUInt32LE(0) + this.#scratch.readUInt32LE(4) * 0x100000000;
      }
      switch (this.#state) {
        case State.Length:
          this.#state = State.Count;
          break;
        case State.Count:
          this.#lengthsLeft = v;
          this.#bodyLeft = 0;
          this.#state = v === 0 ? State.Length : State.Lengths;
          if (v === 0) return i;
          break;
        case State.Lengths:
          this.#bodyLeft += v;
          if (--this.#lengthsLeft === 0) {
            this.#state = State.Body;
            if (this.#bodyLeft === 0) {
              this.#state = State.Length;
              return i;
            }
          }
          break;
      }
    }
    return -1;
  }
}
