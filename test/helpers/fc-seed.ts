import fc from 'fast-check';

/**
 * Preloaded into every test process by scripts/run-tests.mjs (node --import): fast-check's
 * seed for the run, so a property test draws the same cases in every process of one run, CI
 * draws the same ones in every run, and any failure replays with WEFT_FC_SEED=<seed>.
 */
const seed = Number(process.env['WEFT_FC_SEED']);
if (Number.isSafeInteger(seed)) fc.configureGlobal({ seed });
