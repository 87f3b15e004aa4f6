// The libvirt client layer: one import for the libvirt driver. See DEVELOPERS.md, "Talking to libvirt".
export * from './uri';
export * from './errors';
export { LibvirtConnection, type LibvirtConnectionOptions, type CommandOptions } from './connection';
export * from './domain-xml';
export * from './checkpoint-xml';
export * from './backup-xml';
export * from './job-info';
export * from './domains';
export * from './checkpoints';
export * from './backups';
export * from './ssh-forward';
