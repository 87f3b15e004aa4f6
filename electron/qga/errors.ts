// The guest agent's errors: each names the socket and what the admin can do.

/** No agent socket, or nothing listens on it. */
export class AgentUnavailableError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'AgentUnavailableError';
  }
}

/** The agent did not answer in time (for guest-sync-delimited: no agent runs in the guest). */
export class AgentTimeoutError extends Error {
  constructor(readonly command: string, readonly timeoutMs: number, readonly socket: string, hint = '') {
    super(`the guest agent at ${socket} did not answer ${command} within ${timeoutMs} ms${hint}`);
    this.name = 'AgentTimeoutError';
  }
}

/** The agent answered with an error. */
export class AgentCommandError extends Error {
  constructor(readonly command: string, readonly errorClass: string, readonly desc: string) {
    super(`${command}: the guest agent says: ${desc}`);
    this.name = 'AgentCommandError';
  }
}

/** The agent broke the protocol (a reply that is not JSON, or too long); the connection is closed. */
export class AgentProtocolError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'AgentProtocolError';
  }
}

/** The connection went away while a command waited. */
export class AgentConnectionError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'AgentConnectionError';
  }
}
