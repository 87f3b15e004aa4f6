// File-system errors in the words an admin needs: what is wrong and that it is theirs to fix.

/** Plain words for the file-system errors an admin can fix (full disk, read-only mount, permissions). */
export function describeFsError(e: unknown): string {
  const err = e as NodeJS.ErrnoException;
  const plain: Record<string, string> = {
    ENOSPC: 'no space left on the device',
    EDQUOT: 'disk quota exceeded',
    EFBIG: 'the file size limit was reached',
    EROFS: 'the file system is read-only',
    EACCES: 'permission denied',
    EPERM: 'operation not permitted',
    ENOTDIR: 'a path component is not a directory',
    EISDIR: 'a directory is in the way',
  };
  return err?.code && plain[err.code] ? `${plain[err.code]} (${err.code})` : String(err?.message ?? e);
}
