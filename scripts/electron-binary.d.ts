/** Finds an Electron executable without require('electron'); `path` is undefined when there is none, and `reason` says why. */
export function findElectronBinary(env?: NodeJS.ProcessEnv, projectRoot?: string): { path?: string; reason: string };
