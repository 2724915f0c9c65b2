/**
 * Orders strings by UTF-16 code units: the same order on every machine and locale. Not
 * `localeCompare`, whose collator loads ICU's collation tables into the process (~3 MiB of the
 * agent's RSS, measured) and whose order depends on the locale.
 */
export function compareText(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
