// A layer's facts as QEMU reports them while it still has the layer open: its virtual size, and the
// source's compat and cluster size, which recordLayer would otherwise ask two qemu-img processes for.
// Push reads them before its targets close; pull, whose layer Tidemark writes itself, reads the
// source's and takes the size from the layer's header as written.

import type { QmpClient } from '../../qmp/client';
import type { LayerFacts } from '../backup/record';

export interface QmpImageNode {
  'node-name': string;
  image: { 'virtual-size': number; 'cluster-size'?: number; 'format-specific'?: { data?: { compat?: string } } };
}

/**
 * From one `query-named-block-nodes`: an open layer's virtual size and its source's compat and cluster
 * size (what recordLayer would otherwise ask qemu-img). `what` names the layer if it is not open.
 */
export function layerFactsOf(nodes: QmpImageNode[], layerNode: string, sourceNode: string, what: string): LayerFacts {
  const layer = nodes.find((n) => n['node-name'] === layerNode);
  if (!layer) throw new Error(`${what} is no longer open in QEMU`);
  return { virtualSize: layer.image['virtual-size'], ...sourceFactsOf(nodes, sourceNode) };
}

function sourceFactsOf(nodes: QmpImageNode[], sourceNode: string): Omit<LayerFacts, 'virtualSize'> {
  const src = nodes.find((n) => n['node-name'] === sourceNode)?.image;
  const compat = src?.['format-specific']?.data?.compat;
  const cluster = src?.['cluster-size'];
  return { ...(compat ? { sourceCompat: compat } : {}), ...(cluster ? { sourceClusterSize: cluster } : {}) };
}

/** A layer Tidemark wrote itself (pull: engine/pull/qcow2-layer.ts): its size as read back from its header, the source's facts from QEMU. */
export async function readWrittenLayerFacts(client: QmpClient, virtualSize: number, sourceNode: string): Promise<LayerFacts> {
  const nodes = await client.execute<QmpImageNode[]>('query-named-block-nodes', { flat: true });
  return { virtualSize, ...sourceFactsOf(nodes, sourceNode) };
}

/** The open layer's facts (layerFactsOf), as QEMU reports them now (one query). */
export async function readLayerFacts(client: QmpClient, layerNode: string, sourceNode: string): Promise<LayerFacts> {
  const nodes = await client.execute<QmpImageNode[]>('query-named-block-nodes', { flat: true });
  return layerFactsOf(nodes, layerNode, sourceNode, `the new layer (${layerNode})`);
}
