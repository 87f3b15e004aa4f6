// An exact-length byte reader over a stream: the NBD client parses the server's bytes with
// `await reader.read(n)`. Large payloads are copied straight into their destination as they
// arrive (readInto), and the stream is paused while too much is buffered, so memory stays bounded
// whatever the server sends. On a plain socket the bytes arrive through `socketReadOptions` (net's
// `onread`) into buffers this reader reuses: Node would allocate a fresh 64 KiB buffer per read, and
// reading 64 MiB of 256 KiB replies then spent about a third of its time in the garbage collector.

import type { Duplex } from 'node:stream';

const HIGH_WATER = 8 * 1024 * 1024;
/** One socket read's buffer: a few replies' worth; kept for reuse once every byte of it was taken. */
const READ_BUFFER = 512 * 1024;
const KEPT_READ_BUFFERS = 8;
/**
 * A read smaller than this is copied out and its buffer reused at once, so a server that sends a
 * byte at a time cannot make the reader hold a 512 KiB buffer per byte: what is held stays within
 * 4× the bytes buffered, which HIGH_WATER bounds.
 */
const KEEP_READ_MIN = READ_BUFFER / 4;
/**
 * A read waiting for at least this many more bytes, with nothing buffered beyond them, has the socket
 * read the rest straight into its destination: one copy (the kernel's) instead of two (bench/README.md,
 * "Phase 7"). Smaller reads (headers) go through the reused buffers, so they cost no syscall each.
 */
const DIRECT_MIN = 64 * 1024;

/** The read that waits for bytes, as the socket's buffer choice sees it. */
interface WaitingRead {
  target: Buffer;
  /** Where in `target` the awaited bytes start, and how many are awaited. */
  start: number;
  left: number;
  /** Of those, the first `taken` came from buffered chunks (taken so far). */
  taken: number;
  /** Once the socket was given target[start + directFrom, start + left): the bytes it put there. */
  directFrom?: number;
  got: number;
}

export class ByteReader {
  private chunks: Buffer[] = [];
  /** For each chunk, the reusable read buffer it lies in (undefined: a buffer the stream gave). */
  private owners: (Buffer | undefined)[] = [];
  private readonly spare: Buffer[] = [];
  private head = 0; // bytes already consumed from chunks[0]
  private available = 0;
  private waiter: (() => void) | undefined;
  private endReason: Error | undefined;
  private stream: Duplex | undefined;
  private readonly onData = (b: Buffer) => this.push(b);
  private waiting: WaitingRead | undefined;
  /** The part of a waiting read's target last given to the socket to read into. */
  private handed: Buffer | undefined;

  /** Starts reading from `stream` (detaching from a previous one: used by STARTTLS). */
  attach(stream: Duplex): void {
    this.detach();
    this.stream = stream;
    stream.on('data', this.onData);
    if (this.available < HIGH_WATER) stream.resume();
  }

  detach(): void {
    this.stream?.off('data', this.onData);
    this.stream = undefined;
  }

  get buffered(): number {
    return this.available;
  }

  /**
   * No more bytes will come: pending and future reads fail with `reason`. The socket must be destroyed
   * with it (NbdConnection.destroy does both): net still holds the last buffer it was given, which may
   * be part of a waiting read's destination.
   */
  end(reason: Error): void {
    if (!this.endReason) this.endReason = reason;
    this.wake();
  }

  /**
   * For `net.connect({ onread })`: Node asks `buffer()` for a buffer before each read and hands it
   * to `callback` with the bytes read (it never writes into it again), so the bytes stay in place
   * until taken and the buffer then goes back to the spares. Returning false pauses the socket.
   */
  socketReadOptions(): { buffer: () => Buffer; callback: (n: number, b: Buffer) => boolean } {
    return {
      buffer: () => this.directRegion() ?? this.spare.pop() ?? Buffer.allocUnsafe(READ_BUFFER),
      callback: (n, b) => {
        if (b === this.handed) {
          this.handed = undefined;
          if (this.waiting) this.waiting.got += n;
          this.wake();
          return true;
        }
        if (n >= KEEP_READ_MIN) this.push(b.subarray(0, n), b);
        else {
          this.push(Buffer.from(b.subarray(0, n)));
          this.recycle(b);
        }
        return this.available < HIGH_WATER;
      },
    };
  }

  /**
   * Where the socket's next read goes when a large read waits: the rest of its target, after the bytes
   * buffered for it (all buffered bytes are that read's: it waited with none). Undefined: a reused buffer.
   */
  private directRegion(): Buffer | undefined {
    const w = this.waiting;
    if (!w) return undefined;
    if (w.directFrom === undefined) {
      const from = w.taken + this.available;
      if (w.left - from < DIRECT_MIN) return undefined;
      w.directFrom = from;
    }
    const at = w.directFrom + w.got;
    if (at >= w.left) return undefined;
    this.handed = w.target.subarray(w.start + at, w.start + w.left);
    return this.handed;
  }

  private push(b: Buffer, owner?: Buffer): void {
    if (b.length === 0) return;
    this.chunks.push(b);
    this.owners.push(owner);
    this.available += b.length;
    if (this.available >= HIGH_WATER) this.stream?.pause();
    this.wake();
  }

  private wake(): void {
    const w = this.waiter;
    this.waiter = undefined;
    w?.();
  }

  /** Copies up to `n` buffered bytes into target at pos; returns how many. */
  private take(target: Buffer, pos: number, n: number): number {
    let done = 0;
    while (done < n && this.chunks.length > 0) {
      const first = this.chunks[0]!;
      const len = Math.min(first.length - this.head, n - done);
      first.copy(target, pos + done, this.head, this.head + len);
      done += len;
      this.head += len;
      if (this.head === first.length) {
        this.chunks.shift();
        const owner = this.owners.shift();
        if (owner) this.recycle(owner);
        this.head = 0;
      }
    }
    this.available -= done;
    if (this.available < HIGH_WATER / 2 && this.stream?.isPaused()) this.stream.resume();
    return done;
  }

  private recycle(b: Buffer): void {
    if (this.spare.length < KEPT_READ_BUFFERS) this.spare.push(b);
  }

  /** Reads exactly `n` bytes into `target` at `pos`, as they arrive. */
  async readInto(target: Buffer, pos: number, n: number): Promise<void> {
    const done = this.take(target, pos, n);
    if (done === n) return;
    if (this.waiting) throw new Error('ByteReader: one read at a time');
    // Nothing is buffered now: the next bytes are this read's, and the socket may put the rest in place.
    const w: WaitingRead = { target, start: pos + done, left: n - done, taken: 0, got: 0 };
    this.waiting = w;
    try {
      for (;;) {
        // Buffered bytes first: any that came before the direct region belong before it.
        const upTo = w.directFrom ?? w.left;
        if (w.taken < upTo) w.taken += this.take(target, w.start + w.taken, upTo - w.taken);
        if (w.taken === upTo && (w.directFrom === undefined || w.directFrom + w.got === w.left)) break;
        // Everything buffered for this read is taken: after the end, nothing more comes.
        if (this.endReason) throw this.endReason;
        await new Promise<void>((resolve) => (this.waiter = resolve));
      }
    } finally {
      this.waiting = undefined;
      this.handed = undefined;
    }
  }

  /** Reads exactly `n` bytes. */
  async read(n: number): Promise<Buffer> {
    const out = Buffer.allocUnsafe(n);
    await this.readInto(out, 0, n);
    return out;
  }

  /** Discards exactly `n` bytes. */
  async skip(n: number): Promise<void> {
    const scratch = Buffer.allocUnsafe(Math.min(n, 64 * 1024));
    let left = n;
    while (left > 0) {
      const step = Math.min(left, scratch.length);
      await this.readInto(scratch, 0, step);
      left -= step;
    }
  }
}
