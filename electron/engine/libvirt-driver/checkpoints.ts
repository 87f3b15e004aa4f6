// CheckpointOps through libvirt only (virsh checkpoint-*; never QMP behind libvirt's back): each
// operation reads what it needs, plans (plan.ts, pure), makes ONE libvirt call, and reads the result
// back from libvirt, which keeps the metadata. Sizes are libvirt's own (checkpoint-dumpxml --size),
// computed when asked. Quiesce freezes the guest's filesystems through libvirt's guest-agent calls
// (domfsfreeze/domfsthaw) around the create, because libvirt's QEMU driver refuses the checkpoint
// API's own quiesce flag; the thaw runs on every path.

import type { ChangesSince, Checkpoint, CreateCheckpointOptions, DeleteMode, DeleteResult, ListFilter } from '../../../shared/domain';
import type { LibvirtConnection } from '../../libvirt/connection';
import { checkpointXml, createCheckpoint, currentCheckpoint, deleteCheckpoint, getCheckpoint, listCheckpoints, redefineCheckpoint } from '../../libvirt/checkpoints';
import { describeDomain, domainArg } from '../../libvirt/domains';
import { LibvirtError } from '../../libvirt/errors';
import { opt } from '../../libvirt/virsh-protocol';
import { frozen } from './freeze';
import { listCheckpoints as filterCheckpoints } from '../checkpoints/query';
import type { CheckpointOps } from '../driver';
import { deleteFlags, planCreate, planDelete, toCheckpoint } from './plan';

/** The domain the operations act on: its connection (connected on demand) and names. */
export interface DomainTarget {
  conn(): Promise<LibvirtConnection>;
  uuid: string;
  /** The domain's name, for messages. */
  name(): string;
  /** Runs `fn` alone among this process's changes to the domain's checkpoints (backups take the same lock). */
  exclusive<T>(fn: () => Promise<T>): Promise<T>;
}

/** Bytes of a disk as libvirt reports it (`domblkinfo`, Capacity), or undefined when it cannot tell. */
export async function capacity(conn: LibvirtConnection, uuid: string, disk: string): Promise<number | undefined> {
  try {
    const out = await conn.command(['domblkinfo', domainArg(uuid), opt('device', disk)]);
    const m = /^Capacity:\s+(\d+)$/m.exec(out);
    return m ? Number(m[1]) : undefined;
  } catch {
    return undefined;
  }
}

export class LibvirtCheckpoints implements CheckpointOps {
  constructor(private readonly t: DomainTarget) {}

  private async all(options: { size?: boolean } = {}): Promise<Map<string, Checkpoint>> {
    const conn = await this.t.conn();
    return new Map((await listCheckpoints(conn, this.t.uuid, options)).map((c) => [c.name, toCheckpoint(c)]));
  }

  async list(filter?: ListFilter): Promise<Checkpoint[]> {
    return filterCheckpoints(await this.all(), filter ?? {});
  }

  async get(name: string, options: { size?: boolean } = {}): Promise<Checkpoint> {
    const conn = await this.t.conn();
    try {
      return toCheckpoint(await getCheckpoint(conn, this.t.uuid, name, options));
    } catch (e) {
      if (e instanceof LibvirtError && e.kind === 'no-checkpoint') throw new LibvirtError(e.command, `${e.message} (domain ${this.t.name()})`, 'no-checkpoint');
      throw e;
    }
  }

  async current(): Promise<Checkpoint | undefined> {
    const conn = await this.t.conn();
    const c = await currentCheckpoint(conn, this.t.uuid);
    return c.name === undefined ? undefined : this.get(c.name);
  }

  async parent(name: string): Promise<Checkpoint | undefined> {
    const p = (await this.get(name)).parent;
    return p === undefined ? undefined : this.get(p);
  }

  create(options: CreateCheckpointOptions): Promise<Checkpoint> {
    return this.t.exclusive(() => this.createNow(options));
  }

  private async createNow(options: CreateCheckpointOptions): Promise<Checkpoint> {
    const conn = await this.t.conn();
    const dom = await describeDomain(conn, this.t.uuid);
    const existing = new Set((await listCheckpoints(conn, this.t.uuid)).map((c) => c.name));
    const plan = planCreate({ options, disks: dom.disks, existing, nowMs: Date.now(), domain: dom.name });
    const create = () => createCheckpoint(conn, this.t.uuid, plan.spec);
    if (plan.quiesce) await frozen(conn, { uuid: this.t.uuid, name: dom.name }, `checkpoint ${plan.spec.name}`, create);
    else await create();
    return this.get(plan.spec.name);
  }

  delete(name: string, mode: DeleteMode): Promise<DeleteResult> {
    return this.t.exclusive(() => this.deleteNow(name, mode));
  }

  private async deleteNow(name: string, mode: DeleteMode): Promise<DeleteResult> {
    const flags = deleteFlags(mode);
    const conn = await this.t.conn();
    const all = await this.all();
    if (!all.has(name)) await this.get(name); // libvirt's own error, naming the checkpoint and the domain
    const result = planDelete(all, name, mode);
    await deleteCheckpoint(conn, this.t.uuid, name, flags);
    return result;
  }

  async changesSince(name: string): Promise<ChangesSince> {
    const conn = await this.t.conn();
    const cp = await this.get(name, { size: true });
    const disks: ChangesSince['disks'] = [];
    for (const d of cp.disks.filter((x) => x.checkpoint === 'bitmap')) {
      const size = d.size;
      disks.push({
        disk: d.name,
        bytes: size ?? 0,
        // libvirt's bitmaps use QEMU's default granularity; libvirt does not report it.
        granularity: 65536,
        virtualSize: (await capacity(conn, this.t.uuid, d.name)) ?? 0,
        usable: size !== undefined,
        ...(size === undefined ? { reason: `libvirt gave no size for ${d.name}: its bitmap is missing or inconsistent` } : {}),
      });
    }
    return { checkpoint: name, disks };
  }

  async dumpXml(name: string, options: { size?: boolean; noDomain?: boolean } = {}): Promise<string> {
    return checkpointXml(await this.t.conn(), this.t.uuid, name, options);
  }

  async createFromXml(xml: string, options: { validate?: boolean } = {}): Promise<Checkpoint> {
    if (options.validate) throw new Error('--redefine-validate goes with --redefine only');
    const name = await this.t.exclusive(async () => createCheckpoint(await this.t.conn(), this.t.uuid, xml));
    return this.get(name);
  }

  async redefine(xml: string, options: { validate?: boolean } = {}): Promise<Checkpoint> {
    const name = await this.t.exclusive(async () => redefineCheckpoint(await this.t.conn(), this.t.uuid, xml, options));
    return this.get(name);
  }
}
