// What a VM is and which disks it has, from QMP alone: identity (query-name / query-uuid), disks
// (query-block), their bitmaps (query-named-block-nodes, which also lists anonymous bitmaps and
// the `inconsistent` flag) and, for VMs built from bare blockdev nodes, the graph roots.

import type { BitmapInfo, DiskInfo, VmIdentity, VmInfo } from '../../../shared/domain';

/** The part of QmpClient discovery needs (lets unit tests replay recorded replies). */
export interface QmpExecutor {
  execute<T = unknown>(command: string, args?: Record<string, unknown>): Promise<T>;
}

const ZERO_UUID = '00000000-0000-0000-0000-000000000000';
const KiB = 1024;

/** Raw shapes of the QMP replies we read (only the fields we use). */
export interface QmpBitmap {
  name?: string;
  recording: boolean;
  persistent: boolean;
  busy: boolean;
  inconsistent?: boolean;
  count: number;
  granularity: number;
}
export interface QmpImageInfo {
  filename: string;
  format: string;
  'virtual-size': number;
  'cluster-size'?: number;
  'format-specific'?: { type: string; data?: { compat?: string } };
}
export interface QmpBlockDeviceInfo {
  'node-name': string;
  drv: string;
  ro: boolean;
  file: string;
  image: QmpImageInfo;
  'dirty-bitmaps'?: QmpBitmap[];
}
export interface QmpBlockInfo {
  device: string;
  qdev?: string;
  removable: boolean;
  inserted?: QmpBlockDeviceInfo;
}
export interface QmpBlockGraph {
  nodes: { id: number; type: string; name: string }[];
  edges: { parent: number; child: number; name: string }[];
}

export interface DiscoveryReplies {
  name?: { name?: string };
  uuid?: { UUID?: string };
  status?: { status?: string };
  version?: { qemu: { major: number; minor: number; micro: number } };
  block: QmpBlockInfo[];
  namedNodes: QmpBlockDeviceInfo[];
  /** x-debug-query-block-graph; optional (it is an unstable command). */
  graph?: QmpBlockGraph;
}

/** Identity from query-name / query-uuid; the all-zero uuid means "none". */
export function identityFrom(replies: Pick<DiscoveryReplies, 'name' | 'uuid'>, endpoint: string): VmIdentity {
  const name = replies.name?.name || undefined;
  const rawUuid = replies.uuid?.UUID?.toLowerCase();
  const uuid = rawUuid && rawUuid !== ZERO_UUID ? rawUuid : undefined;
  return { id: uuid ?? name ?? endpoint, name, uuid, endpoint };
}

/**
 * The guest device id from query-block's `qdev`: "/machine/peripheral/vda/virtio-backend" → "vda",
 * "/machine/peripheral/ide0" → "ide0", a bare id ("ide0", as QEMU 7.2 reports ide-hd) → itself,
 * "/machine/peripheral-anon/..." → undefined.
 */
export function deviceIdFromQdev(qdev: string | undefined): string | undefined {
  if (!qdev) return undefined;
  if (!qdev.startsWith('/')) return qdev;
  const m = /^\/machine\/peripheral\/([^/]+)/.exec(qdev);
  return m ? m[1] : undefined;
}

/** QEMU's default bitmap granularity: the cluster size clamped to [4 KiB, 64 KiB]; 64 KiB without one. */
export function defaultGranularity(clusterSize: number | undefined): number {
  if (!clusterSize || clusterSize <= 0) return 64 * KiB;
  return Math.min(64 * KiB, Math.max(4 * KiB, clusterSize));
}

/** Why an image cannot hold persistent bitmaps, or undefined when it can. */
export function bitmapIncapableReason(node: QmpBlockDeviceInfo): string | undefined {
  const format = node.drv;
  if (format === 'qcow2') {
    const compat = node.image['format-specific']?.data?.compat;
    if (compat === '0.10') return 'qcow2 v2 (compat 0.10) cannot store persistent bitmaps';
    if (node.ro) return 'read-only';
    return undefined;
  }
  return `${format} images cannot store persistent bitmaps`;
}

function toBitmap(b: QmpBitmap): BitmapInfo {
  const out: BitmapInfo = {
    recording: b.recording,
    persistent: b.persistent,
    busy: b.busy,
    inconsistent: Boolean(b.inconsistent),
    count: b.count,
    granularity: b.granularity,
  };
  if (b.name !== undefined) out.name = b.name;
  return out;
}

function diskFrom(node: QmpBlockDeviceInfo, names: { name: string; device?: string; qdevPath?: string; drive?: string }, bitmaps: QmpBitmap[]): DiskInfo {
  const reason = bitmapIncapableReason(node);
  const disk: DiskInfo = {
    name: names.name,
    nodeName: node['node-name'],
    format: node.drv,
    virtualSize: node.image['virtual-size'],
    imageFile: node.image.filename || node.file,
    granularity: defaultGranularity(node.image['cluster-size']),
    bitmapCapable: reason === undefined,
    readOnly: node.ro,
    bitmaps: bitmaps.map(toBitmap),
  };
  if (names.device) disk.device = names.device;
  if (names.qdevPath) disk.qdevPath = names.qdevPath;
  if (names.drive) disk.drive = names.drive;
  if (node.image['cluster-size']) disk.clusterSize = node.image['cluster-size'];
  if (reason) disk.bitmapIncapableReason = reason;
  return disk;
}

/**
 * Graph roots that are not attached to anything (blockdev-add'ed nodes of a device-less VM).
 * Nodes named "tidemark-*" are ours (backup targets, fleecing) and never disks.
 */
function orphanRoots(graph: QmpBlockGraph | undefined, attached: Set<string>): string[] {
  if (!graph) return [];
  const withParent = new Set(graph.edges.map((e) => e.child));
  return graph.nodes
    .filter((n) => n.type === 'block-driver' && !withParent.has(n.id) && !attached.has(n.name) && !n.name.startsWith('tidemark-'))
    .map((n) => n.name);
}

/** Filter drivers that sit above a disk's format node (copy-before-write during a backup job,
 *  throttle groups, ...), with the edge that leads down to the filtered node. */
const FILTERS: Record<string, string> = {
  'copy-before-write': 'file', throttle: 'file', compress: 'file', preallocate: 'file', 'copy-on-read': 'file', blklogwrites: 'file', blkdebug: 'image',
};

/** The node where checkpoint bitmaps live: below any filters on top of `nodeName`. */
function formatNodeBelow(nodeName: string, nodes: Map<string, QmpBlockDeviceInfo>, graph: QmpBlockGraph | undefined): string {
  let name = nodeName;
  for (let depth = 0; depth < 8; depth++) {
    const edgeName = FILTERS[nodes.get(name)?.drv ?? ''];
    if (!edgeName || !graph) return name;
    const id = graph.nodes.find((n) => n.type === 'block-driver' && n.name === name)?.id;
    const edge = graph.edges.find((e) => e.parent === id && e.name === edgeName);
    const child = edge && graph.nodes.find((n) => n.id === edge.child)?.name;
    if (!child) return name;
    name = child;
  }
  return name;
}

/** Pure mapping from recorded QMP replies to VmInfo. */
export function vmInfoFrom(replies: DiscoveryReplies, endpoint: string): VmInfo {
  const identity = identityFrom(replies, endpoint);
  const nodes = new Map(replies.namedNodes.map((n) => [n['node-name'], n]));
  const bitmapsOf = (n: QmpBlockDeviceInfo) => nodes.get(n['node-name'])?.['dirty-bitmaps'] ?? n['dirty-bitmaps'] ?? [];
  const disks: DiskInfo[] = [];
  const attached = new Set<string>();
  for (const b of replies.block) {
    if (!b.inserted) continue; // an empty drive (CD-ROM without a medium)
    const top = b.inserted['node-name'];
    const formatNode = formatNodeBelow(top, nodes, replies.graph);
    attached.add(top);
    attached.add(formatNode);
    const device = deviceIdFromQdev(b.qdev);
    const drive = b.device || undefined;
    const name = device ?? drive ?? formatNode;
    const node = nodes.get(formatNode) ?? b.inserted;
    disks.push(diskFrom(node, { name, device, qdevPath: b.qdev || undefined, drive }, bitmapsOf(node)));
  }
  for (const nodeName of orphanRoots(replies.graph, attached)) {
    const n = nodes.get(nodeName);
    if (n) disks.push(diskFrom(n, { name: nodeName }, bitmapsOf(n)));
  }
  // Names must be unique: a device id that equals another disk's node name gets its node name appended.
  const seen = new Set<string>();
  for (const d of disks) {
    if (seen.has(d.name)) d.name = `${d.name}@${d.nodeName}`;
    seen.add(d.name);
  }
  const v = replies.version?.qemu;
  return {
    ...identity,
    status: replies.status?.status ?? 'unknown',
    qemuVersion: v ? `${v.major}.${v.minor}.${v.micro}` : 'unknown',
    disks,
  };
}

/** The replies that cannot change while one QMP connection lasts: it reaches one QEMU process, whose -name, -uuid and version are fixed. */
type ConstantReplies = Pick<DiscoveryReplies, 'name' | 'uuid' | 'version'>;
const constantsOf = new WeakMap<QmpExecutor, ConstantReplies>();

/**
 * Queries the VM behind `client` (reached at `endpoint`) and maps it to VmInfo. A later discovery on the
 * same connection asks only what can change: QEMU 7.2 reads a QMP command one byte per turn of its loop
 * (~10 µs a byte here, bench/qmp-bytes.ts), so each command left out saves its bytes and its round.
 */
export async function discoverVm(client: QmpExecutor, endpoint: string): Promise<VmInfo> {
  const known = constantsOf.get(client);
  const [name, uuid, version, status, block, namedNodes, graph] = await Promise.all([
    known ? known.name : client.execute<{ name?: string }>('query-name'),
    known ? known.uuid : client.execute<{ UUID?: string }>('query-uuid'),
    known ? known.version : client.execute<{ qemu: { major: number; minor: number; micro: number } }>('query-version'),
    client.execute<{ status?: string }>('query-status'),
    client.execute<QmpBlockInfo[]>('query-block'),
    client.execute<QmpBlockDeviceInfo[]>('query-named-block-nodes', { flat: true }),
    client.execute<QmpBlockGraph>('x-debug-query-block-graph').catch(() => undefined),
  ]);
  const vm = vmInfoFrom({
    name, uuid, status, version,
    block: listReply<QmpBlockInfo>(block, 'query-block'),
    namedNodes: listReply<QmpBlockDeviceInfo>(namedNodes, 'query-named-block-nodes'),
    graph: isGraph(graph) ? graph : undefined,
  }, endpoint);
  if (!known) constantsOf.set(client, { name, uuid, version });
  return vm;
}

/** A reply that must be a list: any other shape (a broken or impostor peer) is a clear error, not a TypeError later. */
function listReply<T>(value: unknown, command: string): T[] {
  if (!Array.isArray(value)) throw new Error(`QMP ${command} replied ${value === null ? 'null' : typeof value} where a list was expected`);
  return value as T[];
}

/** The unstable x-debug-query-block-graph is only used when it has the expected shape. */
function isGraph(g: unknown): g is QmpBlockGraph {
  return typeof g === 'object' && g !== null && Array.isArray((g as QmpBlockGraph).nodes) && Array.isArray((g as QmpBlockGraph).edges);
}

/**
 * Live bitmaps of known disks with one query-named-block-nodes (cheap enough to poll): `nodes`
 * maps each disk's name to its format node, as the last discovery found them.
 */
export async function readLiveBitmaps(client: QmpExecutor, nodes: ReadonlyMap<string, string>): Promise<{ disk: string; bitmaps: BitmapInfo[] }[]> {
  const named = await client.execute<Pick<QmpBlockDeviceInfo, 'node-name' | 'dirty-bitmaps'>[]>('query-named-block-nodes', { flat: true });
  const byNode = new Map(named.map((n) => [n['node-name'], n]));
  return [...nodes].map(([disk, node]) => ({ disk, bitmaps: (byNode.get(node)?.['dirty-bitmaps'] ?? []).map(toBitmap) }));
}
