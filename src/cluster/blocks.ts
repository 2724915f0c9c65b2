import { AddressError, bitsOf, formatAddress, type Cidr } from '../ipam/cidr.js';

/**
 * Splitting the cluster's pod range into per-node blocks (pure).
 */
export function blockCount(cluster: Cidr, prefix: number): bigint {
  return 1n << BigInt(prefix - cluster.prefix);
}

export function validateBlockSize(cluster: Cidr, prefix: number): void {
  const min = cluster.family === 4 ? 30 : 126;
  if (!Number.isInteger(prefix) || prefix < cluster.prefix || prefix > min) {
    throw new AddressError(`block size /${prefix} does not fit the cluster range ${cluster.text}: use /${cluster.prefix} to /${min}`);
  }
}

/** The i-th block of size /prefix inside the cluster range. */
export function blockAt(cluster: Cidr, prefix: number, i: bigint): Cidr {
  const size = 1n << BigInt(bitsOf(cluster.family) - prefix);
  const network = cluster.network + i * size;
  return { family: cluster.family, network, prefix, text: `${formatAddress(cluster.family, network)}/${prefix}` };
}

/** Blocks in address order. */
export function* candidateBlocks(cluster: Cidr, prefix: number): Generator<Cidr> {
  validateBlockSize(cluster, prefix);
  const n = blockCount(cluster, prefix);
  for (let i = 0n; i < n; i++) yield blockAt(cluster, prefix, i);
}

