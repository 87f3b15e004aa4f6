// What a CLI command runs with: the service (created on first use, in on-demand mode on the demo
// VM's secondary socket), the VM to act on, and output. Commands reach the engine only through
// dispatch() on the contract, like every other caller. The service's modules (engines, QMP) are
// loaded by load() before a command that needs them runs: help and usage errors never pay for them.

import * as path from 'node:path';
import { dispatch, type Args, type InvokeChannel, type Result } from '../../shared/contract';
import { resolveStateDir } from '../engine/statedir';
import { parseEndpoint } from '../qmp/endpoint';
import type { Service, ServiceOptions } from '../host/service';
import type { GlobalOptions } from './global-options';

type ServiceModule = typeof import('../host/service');
type LabModule = typeof import('../engine/lab/labvm');

export interface CliIo {
  stdout(text: string): void;
  stderr(text: string): void;
  /** True when stderr is a terminal (progress display). */
  isTTY: boolean;
  env: NodeJS.ProcessEnv;
  /** The folder relative paths in arguments are taken from (default: this process's). */
  cwd?: string;
  /** Calls `handler` on Ctrl-C until the returned function is called (default: this process's SIGINT). */
  onInterrupt?(handler: () => void): () => void;
}

/**
 * Where a context gets its service from: by default it creates one and closes it at the end; a
 * resident host (host-server.ts) lends one it keeps open between commands (its QMP and libvirt
 * connections stay warm), with the very options the command would have created it with.
 */
export interface ServiceSource {
  /** The service for `options`; release() hands it back when the command ends. */
  acquire(options: ServiceOptions): ServiceLease;
}

/** runCli's shape: runs one command line, resolves to its exit status (RUN_LOCALLY: see host-protocol.ts). */
export type CliRunner = (argv: string[], io: CliIo, host?: { source: ServiceSource }) => Promise<number>;

export interface ServiceLease {
  service: Service;
  release(): void;
}

export class CliContext {
  readonly stateDir: string;
  private serviceValue: Service | undefined;
  private lease: ServiceLease | undefined;
  private serviceModule: ServiceModule | undefined;
  private labModule: LabModule | undefined;
  /** The VM id of --domain at the --connect libvirt URI, once resolve() found it. */
  private libvirtVm: string | undefined;

  /**
   * `source`: a resident host's services (else the context makes its own); `runner`: runCli itself,
   * passed in so that `tidemark host` can run command lines without the commands importing main.ts.
   */
  constructor(readonly io: CliIo, readonly global: GlobalOptions, private readonly source?: ServiceSource, readonly runner?: CliRunner) {
    this.stateDir = resolveStateDir(global.stateDir, io.env, this.cwd);
  }

  /** The caller's folder. */
  get cwd(): string {
    return this.io.cwd ?? process.cwd();
  }

  /** `p` as an absolute path, relative to the caller's folder (never the process's: a resident host runs commands for callers anywhere). */
  path(p: string): string {
    return path.resolve(this.cwd, p);
  }

  /** Runs `handler` on Ctrl-C until the returned function is called. */
  onInterrupt(handler: () => void): () => void {
    if (this.io.onInterrupt) return this.io.onInterrupt(handler);
    process.on('SIGINT', handler);
    return () => void process.removeListener('SIGINT', handler);
  }

  get labDir(): string {
    return path.join(this.stateDir, 'lab');
  }

  /** Loads the service's modules; `service`, `call` and `vmId` need it. */
  async load(): Promise<void> {
    this.serviceModule ??= await import('../host/service');
    this.labModule ??= await import('../engine/lab/labvm');
    if (this.source && !this.lease) this.lease = this.source.acquire(this.serviceOptions());
  }

  private get mod(): ServiceModule {
    if (!this.serviceModule) throw new Error('internal error: the command ran without CliContext.load()');
    return this.serviceModule;
  }

  /** The CLI's service: connects VMs on demand, the demo VM on its secondary socket. */
  private serviceOptions(): ServiceOptions {
    return {
      stateDir: this.stateDir,
      connectMode: 'on-demand',
      demoSocket: 'secondary',
      transientEndpoints: this.global.connect !== undefined ? [this.connect!] : [],
    };
  }

  get service(): Service {
    if (this.lease) return this.lease.service;
    this.serviceValue ??= this.mod.createService(this.serviceOptions());
    return this.serviceValue;
  }

  /** --connect, with a relative socket path made absolute from the caller's folder. */
  get connect(): string | undefined {
    const c = this.global.connect;
    if (c === undefined || this.libvirt) return c;
    const ep = parseEndpoint(c);
    return ep.kind === 'unix' && !path.isAbsolute(ep.path) ? `unix:${this.path(ep.path)}` : c;
  }

  /** Calls one contract channel through dispatch (argument validation included). */
  call<C extends InvokeChannel>(channel: C, ...args: Args<C>): Promise<Result<C>> {
    return dispatch(this.service.handlers, channel, args) as Promise<Result<C>>;
  }

  /** True when --connect names a libvirt URI (qemu:///system, qemu+ssh://…). */
  get libvirt(): boolean {
    return this.global.connect !== undefined && this.mod.looksLikeLibvirtUri(this.global.connect);
  }

  /** The demo VM's id (the lab commands act on it). */
  get demoVmId(): string {
    return this.mod.DEMO_VM_ID;
  }

  /** The registry id of the --connect libvirt URI. */
  libvirtConnectionId(): string {
    return this.mod.libvirtConnectionId(this.global.connect!);
  }

  /**
   * For a libvirt --connect: connects, lists the domains and finds --domain (by name or UUID).
   * Errors name the URI or the domain. Without --domain nothing is looked up (list needs none).
   */
  async resolve(): Promise<void> {
    if (!this.libvirt) {
      if (this.global.domain !== undefined) throw new Error(`--domain ${this.global.domain} names a libvirt domain: pass --connect with a libvirt URI (e.g. qemu:///system) too`);
      return;
    }
    const rows = await this.call('vm:list');
    const domain = this.global.domain;
    if (domain === undefined) return;
    const conn = this.libvirtConnectionId();
    const key = domain.trim().toLowerCase();
    const mine = rows.filter((r) => r.connectionId === conn && r.id !== conn);
    const found = mine.find((r) => r.id.slice(r.id.lastIndexOf('#') + 1) === key) ?? mine.find((r) => r.label === domain);
    if (!found) throw new Error(`domain ${JSON.stringify(domain)} not found at ${this.global.connect!.trim()} (see: tidemark --connect ${this.global.connect!.trim()} list --all)`);
    this.libvirtVm = found.id;
  }

  /**
   * The VM to act on: --domain at a libvirt --connect, --connect's endpoint, else the demo VM when it runs. `recorded`: a read-only
   * command, which can show a stopped demo VM's recorded metadata (once it has been started).
   */
  vmId(opts: { recorded?: boolean } = {}): string {
    if (this.libvirt) {
      if (this.libvirtVm === undefined) throw new Error(`--connect ${this.global.connect!.trim()} is a libvirt connection: name the domain with --domain NAME|UUID`);
      return this.libvirtVm;
    }
    if (this.connect !== undefined) return this.mod.endpointId(this.connect);
    const lab = this.labModule!.labStatus(this.labDir);
    if (!lab.running && !(opts.recorded && lab.uuid !== '')) throw new Error('no VM: pass --connect or run tidemark lab start');
    return this.mod.DEMO_VM_ID;
  }

  /** After a read: the VM's name when the service answered from recorded metadata (it is not running). */
  async recordedName(vmId: string): Promise<string | undefined> {
    const vm = (await this.call('vm:list')).find((v) => v.id === vmId);
    if (!vm || vm.connection === 'connected') return undefined;
    return vm.kind === 'demo' ? this.labModule!.labStatus(this.labDir).name : vm.label;
  }

  /** Says on stderr that what follows is recorded metadata (when `recorded` names the stopped VM). */
  noteRecorded(recorded: string | undefined): void {
    if (recorded !== undefined) this.io.stderr(`VM ${recorded} is not running; showing recorded metadata\n`);
  }

  out(text: string): void {
    this.io.stdout(text);
  }

  /** virsh ends every command's output with one more newline; so do we (text mode only). */
  virshOut(text: string): void {
    this.io.stdout(`${text}\n`);
  }

  json(value: unknown): void {
    this.io.stdout(`${JSON.stringify(value, null, 2)}\n`);
  }

  /** Closes the service this context created (a lent one stays with its host). */
  async close(): Promise<void> {
    if (this.lease) this.lease.release();
    this.lease = undefined;
    await this.serviceValue?.close();
  }
}
