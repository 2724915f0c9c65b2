import { nftApply, nftDeleteTable, nftListTable } from '../kernel/nft.js';
import { fullScript, type NftTable } from '../nftables/ruleset.js';
import { nftCidr, nftComment } from '../nftables/tokens.js';

/**
 * Masquerade for traffic from pods to anything outside the cluster's pod ranges; never between
 * pods (the destination is inside the range) — in Weft's own nftables table. Each rule carries a
 * comment naming what it is for, which is how drift is noticed.
 */
export const MASQ_TABLE = 'weft_masq';

function ruleComment(cidr: string): string {
  return `weft: masquerade pods of ${cidr} leaving the cluster`;
}

/** The whole table (pure); written with the ruleset's full script, which replaces it. */
export function masqueradeTable(clusterCidrs: string[]): NftTable {
  const rules = clusterCidrs.map((c) => {
    const fam = c.includes(':') ? 'ip6' : 'ip';
    return `${fam} saddr ${nftCidr(c)} ${fam} daddr != ${nftCidr(c)} masquerade ${nftComment(ruleComment(c))}`;
  });
  return {
    family: 'inet',
    name: MASQ_TABLE,
    sets: [],
    chains: [{ name: 'postrouting', base: 'type nat hook postrouting priority srcnat; policy accept;', rules }],
  };
}

/** The rule comments in the live table, or undefined when there is no table. */
function comments(json: unknown[]): string[] {
  const out: string[] = [];
  for (const item of json) {
    const rule = (item as { rule?: { comment?: string } }).rule;
    if (rule?.comment) out.push(rule.comment);
  }
  return out;
}

export class Masquerade {
  constructor(private readonly clusterCidrs: string[]) {}

  /** Applies the table when it is missing or differs; returns whether it changed anything. */
  async reconcile(): Promise<boolean> {
    const live = await nftListTable('inet', MASQ_TABLE);
    const want = this.clusterCidrs.map(ruleComment).sort();
    if (live && JSON.stringify(comments(live).sort()) === JSON.stringify(want)) return false;
    await nftApply(fullScript(masqueradeTable(this.clusterCidrs)));
    return true;
  }

  async teardown(): Promise<void> {
    await nftDeleteTable('inet', MASQ_TABLE);
  }
}
