/** Weft's version, as package.json says it (a unit test holds the two equal): build info, metrics. */
export const WEFT_VERSION = '0.1.0';
