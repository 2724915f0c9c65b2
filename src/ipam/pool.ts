import { AddressError, cidrContains, cidrSize, formatAddress, lastAddress, parseCidr, type Address, type Cidr, type Family } from './cidr.js';

/**
 * The assignable part of one pod range. Never handed out: the network address, the first host
 * address (the node's own address in its block: gateway/tunnel endpoint for the backends), and
 * for IPv4 the broadcast address. Pod addresses are /32 and /128, so nothing else is lost.
 */
export class Pool {
  readonly family: Family;
  readonly cidr: Cidr;
  /** First and last assignable addresses, inclusive. */
  readonly first: bigint;
  readonly last: bigint;
  /** The node's reserved address in this block. */
  readonly nodeAddress: bigint;

  constructor(cidr: Cidr) {
    const min = cidr.family === 4 ? 30 : 126;
    if (cidr.prefix > min) {
      throw new AddressError(
        `pod range ${cidr.text} is too small: use a /${min} or larger (${cidr.family === 4 ? 'IPv4' : 'IPv6'})`,
      );
    }
    this.family = cidr.family;
    this.cidr = cidr;
    this.nodeAddress = cidr.network + 1n;
    this.first = cidr.network + 2n;
    this.last = cidr.family === 4 ? lastAddress(cidr) - 1n : lastAddress(cidr);
  }

  get size(): bigint {
    return this.last - this.first + 1n;
  }

  contains(a: Address): boolean {
    return cidrContains(this.cidr, a);
  }

  /** Why `a` cannot be handed out, or undefined when it can. */
  refusal(a: Address): string | undefined {
    if (!this.contains(a)) return `${formatAddress(a.family, a.value)} is outside the pod range ${this.cidr.text}`;
    if (a.value === this.cidr.network) return `${formatAddress(a.family, a.value)} is the network address of ${this.cidr.text}`;
    if (a.value === this.nodeAddress) {
      return `${formatAddress(a.family, a.value)} is reserved for the node (gateway) in ${this.cidr.text}`;
    }
    if (a.value > this.last) return `${formatAddress(a.family, a.value)} is the broadcast address of ${this.cidr.text}`;
    return undefined;
  }

  /**
   * Round-robin: the first free address after `after` (wrapping once), or undefined when the
   * pool is full. `takenInPool` bounds the scan: it ends within takenInPool + 1 steps.
   */
  next(after: bigint | undefined, isTaken: (v: bigint) => boolean, takenInPool: number): bigint | undefined {
    if (BigInt(takenInPool) >= this.size) return undefined;
    let v = after === undefined || after < this.first || after >= this.last ? this.first : after + 1n;
    // Among any takenInPool + 1 consecutive addresses at least one is free.
    for (let i = 0; i <= takenInPool; i++) {
      if (!isTaken(v)) return v;
      v = v >= this.last ? this.first : v + 1n;
    }
    return undefined;
  }
}

export function describeSize(p: Pool): string {
  return p.size > 1_000_000_000n ? `2^${cidrSizeBits(p.cidr)}` : p.size.toString();
}

function cidrSizeBits(c: Cidr): number {
  return cidrSize(c).toString(2).length - 1;
}

/** A pod range's node address: its first host, which a Pool never hands to a pod. */
export function nodeAddressOf(block: string): string {
  const c = parseCidr(block);
  return formatAddress(c.family, c.network + 1n);
}

