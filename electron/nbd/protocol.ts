// NBD protocol constants, as given by NetworkBlockDevice/nbd doc/proto.md (values section) and
// QEMU's docs/interop/nbd.txt (qemu:dirty-bitmap contexts). Names match the spec so they can be
// grepped; every number here was copied from the spec, none is guessed.

export const NBDMAGIC = 0x4e42444d41474943n; // 'NBDMAGIC' (INIT_PASSWD)
export const IHAVEOPT = 0x49484156454f5054n; // 'IHAVEOPT', newstyle negotiation and option requests
export const OLDSTYLE_MAGIC = 0x00420281861253n; // cliserv_magic: oldstyle negotiation (unsupported)
export const REPLY_MAGIC_OPT = 0x3e889045565a9n; // option reply magic
export const NBD_REQUEST_MAGIC = 0x25609513;
export const NBD_SIMPLE_REPLY_MAGIC = 0x67446698;
export const NBD_STRUCTURED_REPLY_MAGIC = 0x668e33ef;

// Handshake flags (server, 16 bits) and client flags (32 bits).
export const NBD_FLAG_FIXED_NEWSTYLE = 1 << 0;
export const NBD_FLAG_NO_ZEROES = 1 << 1;
export const NBD_FLAG_C_FIXED_NEWSTYLE = 1 << 0;
export const NBD_FLAG_C_NO_ZEROES = 1 << 1;

// Transmission flags (16 bits).
export const NBD_FLAG_HAS_FLAGS = 1 << 0;
export const NBD_FLAG_READ_ONLY = 1 << 1;
export const NBD_FLAG_SEND_FLUSH = 1 << 2;
export const NBD_FLAG_SEND_FUA = 1 << 3;
export const NBD_FLAG_ROTATIONAL = 1 << 4;
export const NBD_FLAG_SEND_TRIM = 1 << 5;
export const NBD_FLAG_SEND_WRITE_ZEROES = 1 << 6;
export const NBD_FLAG_SEND_DF = 1 << 7;
export const NBD_FLAG_CAN_MULTI_CONN = 1 << 8;

// Options.
export const NBD_OPT_EXPORT_NAME = 1;
export const NBD_OPT_ABORT = 2;
export const NBD_OPT_LIST = 3;
export const NBD_OPT_STARTTLS = 5;
export const NBD_OPT_INFO = 6;
export const NBD_OPT_GO = 7;
export const NBD_OPT_STRUCTURED_REPLY = 8;
export const NBD_OPT_LIST_META_CONTEXT = 9;
export const NBD_OPT_SET_META_CONTEXT = 10;

export const OPTION_NAMES: Record<number, string> = {
  1: 'NBD_OPT_EXPORT_NAME', 2: 'NBD_OPT_ABORT', 3: 'NBD_OPT_LIST', 5: 'NBD_OPT_STARTTLS', 6: 'NBD_OPT_INFO',
  7: 'NBD_OPT_GO', 8: 'NBD_OPT_STRUCTURED_REPLY', 9: 'NBD_OPT_LIST_META_CONTEXT', 10: 'NBD_OPT_SET_META_CONTEXT',
};

// Option reply types. Errors have bit 31 set.
export const NBD_REP_ACK = 1;
export const NBD_REP_SERVER = 2;
export const NBD_REP_INFO = 3;
export const NBD_REP_META_CONTEXT = 4;
export const NBD_REP_FLAG_ERROR = 0x80000000;
export const NBD_REP_ERR_UNSUP = NBD_REP_FLAG_ERROR + 1;
export const NBD_REP_ERR_POLICY = NBD_REP_FLAG_ERROR + 2;
export const NBD_REP_ERR_INVALID = NBD_REP_FLAG_ERROR + 3;
export const NBD_REP_ERR_PLATFORM = NBD_REP_FLAG_ERROR + 4;
export const NBD_REP_ERR_TLS_REQD = NBD_REP_FLAG_ERROR + 5;
export const NBD_REP_ERR_UNKNOWN = NBD_REP_FLAG_ERROR + 6;
export const NBD_REP_ERR_SHUTDOWN = NBD_REP_FLAG_ERROR + 7;
export const NBD_REP_ERR_BLOCK_SIZE_REQD = NBD_REP_FLAG_ERROR + 8;
export const NBD_REP_ERR_TOO_BIG = NBD_REP_FLAG_ERROR + 9;

const REP_ERROR_NAMES: Record<number, string> = {
  1: 'NBD_REP_ERR_UNSUP', 2: 'NBD_REP_ERR_POLICY', 3: 'NBD_REP_ERR_INVALID', 4: 'NBD_REP_ERR_PLATFORM',
  5: 'NBD_REP_ERR_TLS_REQD', 6: 'NBD_REP_ERR_UNKNOWN', 7: 'NBD_REP_ERR_SHUTDOWN', 8: 'NBD_REP_ERR_BLOCK_SIZE_REQD',
  9: 'NBD_REP_ERR_TOO_BIG',
};

export function replyTypeName(type: number): string {
  if (type >= NBD_REP_FLAG_ERROR) return REP_ERROR_NAMES[type - NBD_REP_FLAG_ERROR] ?? `NBD_REP_ERR(2^31+${type - NBD_REP_FLAG_ERROR})`;
  return { 1: 'NBD_REP_ACK', 2: 'NBD_REP_SERVER', 3: 'NBD_REP_INFO', 4: 'NBD_REP_META_CONTEXT' }[type] ?? `reply type ${type}`;
}

export function optionName(option: number): string {
  return OPTION_NAMES[option] ?? `option ${option}`;
}

// NBD_REP_INFO information types.
export const NBD_INFO_EXPORT = 0;
export const NBD_INFO_NAME = 1;
export const NBD_INFO_DESCRIPTION = 2;
export const NBD_INFO_BLOCK_SIZE = 3;

// Commands and command flags.
export const NBD_CMD_READ = 0;
export const NBD_CMD_WRITE = 1;
export const NBD_CMD_DISC = 2;
export const NBD_CMD_FLUSH = 3;
export const NBD_CMD_TRIM = 4;
export const NBD_CMD_CACHE = 5;
export const NBD_CMD_WRITE_ZEROES = 6;
export const NBD_CMD_BLOCK_STATUS = 7;
export const NBD_CMD_FLAG_FUA = 1 << 0;
export const NBD_CMD_FLAG_NO_HOLE = 1 << 1;
export const NBD_CMD_FLAG_DF = 1 << 2;
export const NBD_CMD_FLAG_REQ_ONE = 1 << 3;

export function commandName(type: number): string {
  return ['NBD_CMD_READ', 'NBD_CMD_WRITE', 'NBD_CMD_DISC', 'NBD_CMD_FLUSH', 'NBD_CMD_TRIM', 'NBD_CMD_CACHE', 'NBD_CMD_WRITE_ZEROES', 'NBD_CMD_BLOCK_STATUS'][type] ?? `command ${type}`;
}

// Structured reply flags and chunk types. Error chunks have bit 15 set.
export const NBD_REPLY_FLAG_DONE = 1 << 0;
export const NBD_REPLY_TYPE_NONE = 0;
export const NBD_REPLY_TYPE_OFFSET_DATA = 1;
export const NBD_REPLY_TYPE_OFFSET_HOLE = 2;
export const NBD_REPLY_TYPE_BLOCK_STATUS = 5;
export const NBD_REPLY_TYPE_ERROR_BIT = 1 << 15;
export const NBD_REPLY_TYPE_ERROR = NBD_REPLY_TYPE_ERROR_BIT + 1;
export const NBD_REPLY_TYPE_ERROR_OFFSET = NBD_REPLY_TYPE_ERROR_BIT + 2;

// Error values carried by replies (not errno of this host: the spec's own table).
const ERRNO_NAMES: Record<number, string> = {
  1: 'NBD_EPERM', 5: 'NBD_EIO', 12: 'NBD_ENOMEM', 22: 'NBD_EINVAL', 28: 'NBD_ENOSPC', 75: 'NBD_EOVERFLOW',
  95: 'NBD_ENOTSUP', 108: 'NBD_ESHUTDOWN',
};
export const NBD_EINVAL = 22;
export const NBD_EIO = 5;
export const NBD_ESHUTDOWN = 108;

/** The spec says an unknown error value is to be treated as EINVAL; we keep the number visible. */
export function errnoName(errno: number): string {
  return ERRNO_NAMES[errno] ?? `error ${errno} (unknown, treated as NBD_EINVAL)`;
}

// Metadata contexts.
export const BASE_ALLOCATION = 'base:allocation';
export const NBD_STATE_HOLE = 1 << 0;
export const NBD_STATE_ZERO = 1 << 1;
/** qemu:dirty-bitmap:NAME, bit 0 (docs/interop/nbd.txt). */
export const NBD_STATE_DIRTY = 1 << 0;
export function dirtyBitmapContext(bitmapExportName: string): string {
  return `qemu:dirty-bitmap:${bitmapExportName}`;
}

/** Default cap for one NBD_CMD_READ: the spec's interoperable maximum, 2^25. */
export const DEFAULT_MAX_REQUEST = 32 * 1024 * 1024;
