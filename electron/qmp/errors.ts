// The QMP error hierarchy: every failure a caller can see is one of these, with a message
// that names what went wrong.

export class QmpError extends Error {
  /** QMP's error class (e.g. "GenericError", "DeviceNotFound"). */
  readonly errorClass: string;
  readonly desc: string;
  readonly command: string;
  constructor(command: string, errorClass: string, desc: string) {
    super(`${command}: ${desc}`);
    this.name = 'QmpError';
    this.command = command;
    this.errorClass = errorClass;
    this.desc = desc;
  }
}

/** The connection is gone (closed, refused, dropped, or never established). */
export class QmpConnectionError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'QmpConnectionError';
  }
}

/** A command got no reply in time. The connection stays usable; a late reply is dropped. */
export class QmpTimeoutError extends Error {
  readonly command: string;
  readonly timeoutMs: number;
  constructor(command: string, timeoutMs: number) {
    super(`${command}: no reply from QEMU within ${timeoutMs} ms`);
    this.name = 'QmpTimeoutError';
    this.command = command;
    this.timeoutMs = timeoutMs;
  }
}

/** The peer broke the protocol (invalid JSON, oversized message, wrong greeting). The connection is closed. */
export class QmpProtocolError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'QmpProtocolError';
  }
}
