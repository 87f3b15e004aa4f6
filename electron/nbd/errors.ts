// The NBD client's errors. Each names what went wrong and where (server, export, option, command),
// so a caller can show it as is.

import { errnoName, optionName, replyTypeName } from './protocol';

/** The connection is gone or never came up (refused, closed by the server, timed out). */
export class NbdConnectionError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'NbdConnectionError';
  }
}

/** The server broke the protocol (bad magic, unknown reply, data outside the request...). The
 *  connection was closed: nothing it sent afterwards could be trusted. */
export class NbdProtocolError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'NbdProtocolError';
  }
}

/** The server refused an option during the handshake (NBD_REP_ERR_*). */
export class NbdOptionError extends Error {
  readonly option: number;
  readonly replyType: number;
  /** e.g. "NBD_REP_ERR_UNKNOWN". */
  readonly code: string;
  readonly serverMessage: string;
  constructor(option: number, replyType: number, serverMessage: string, context: string) {
    const code = replyTypeName(replyType);
    super(`${context}: the server refused ${optionName(option)} with ${code}${serverMessage ? ` (${serverMessage})` : ''}`);
    this.name = 'NbdOptionError';
    this.option = option;
    this.replyType = replyType;
    this.code = code;
    this.serverMessage = serverMessage;
  }
}

/** NBD_OPT_GO answered NBD_REP_ERR_UNKNOWN: no export of that name. */
export class NbdExportNotFoundError extends NbdOptionError {
  readonly exportName: string;
  constructor(option: number, replyType: number, serverMessage: string, context: string, exportName: string) {
    super(option, replyType, serverMessage, context);
    this.name = 'NbdExportNotFoundError';
    this.exportName = exportName;
    this.message = `${context}: no export named ${JSON.stringify(exportName)} on this server${serverMessage ? ` (${serverMessage})` : ''}`;
  }
}

/** The server accepted NBD_OPT_SET_META_CONTEXT but did not select every context asked for
 *  (for qemu:dirty-bitmap:NAME: the bitmap is not exported with that name). */
export class NbdMetaContextError extends Error {
  readonly missing: string[];
  constructor(exportName: string, missing: string[], offered: string[]) {
    super(`export ${JSON.stringify(exportName)} does not offer metadata context ${missing.map((m) => JSON.stringify(m)).join(', ')} (selected: ${offered.length ? offered.join(', ') : 'none'})`);
    this.name = 'NbdMetaContextError';
    this.missing = missing;
  }
}

/** A command failed on the server (an error value in a reply). The connection stays usable. */
export class NbdCommandError extends Error {
  readonly errno: number;
  /** e.g. "NBD_EIO". */
  readonly code: string;
  readonly serverMessage: string;
  /** Where the error happened, for NBD_REPLY_TYPE_ERROR_OFFSET. */
  readonly errorOffset?: number;
  constructor(what: string, errno: number, serverMessage: string, errorOffset?: number) {
    const code = errnoName(errno);
    super(`${what} failed: ${code}${errorOffset !== undefined ? ` at offset ${errorOffset}` : ''}${serverMessage ? ` (${serverMessage})` : ''}`);
    this.name = 'NbdCommandError';
    this.errno = errno;
    this.code = code;
    this.serverMessage = serverMessage;
    this.errorOffset = errorOffset;
  }
}
