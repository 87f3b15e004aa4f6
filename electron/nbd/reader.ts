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

  /** No more bytes will come: pending and future reads fail with `reason`. */
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
      buffer: () => this.spare.pop() ?? Buffer.allocUnsafe(READ_BUFFER),
      callback: (n, b) => {
        if (n >= KEEP_READ_MIN) this.push(b.subarray(0, n), b);
        else {
          this.push(Buffer.from(b.subarray(0, n)));
          this.recycle(b);
        }
        return this.available < HIGH_WATER;
      },
    };
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

  private async waitForData(): Promise<void> {
    if (this.available > 0) return;
    if (this.endReason) throw this.endReason;
    await new Promise<void>((resolve) => (this.waiter = resolve));
    if (this.available === 0 && this.endReason) throw this.endReason;
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
    let done = 0;
    while (done < n) {
      await this.waitForData();
      done += this.take(target, pos + done, n - done);
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
