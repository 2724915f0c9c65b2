/**
 * CNI error codes and the one error type the protocol layer raises.
 * Codes 1–99 are the spec's; 100+ are Weft's own, so a runtime log names the real cause
 * instead of the reference plugins' catch-all 999.
 */
export const ErrorCode = {
  IncompatibleVersion: 1,
  UnsupportedField: 2,
  UnknownContainer: 3,
  InvalidEnvironment: 4,
  IoFailure: 5,
  DecodingFailure: 6,
  InvalidNetworkConfig: 7,
  /** libcni's ErrInvalidNetNS (not in the spec text, but runtimes know it). */
  InvalidNetns: 8,
  TryAgainLater: 11,
  NotAvailable: 50,
  NotAvailableLimitedConnectivity: 51,
  // Weft's own codes.
  AddressesExhausted: 101,
  AddressUnavailable: 102,
  InterfaceConflict: 103,
  KernelFailure: 104,
  AttachmentNotFound: 105,
  CheckFailed: 106,
  AttachmentConflict: 107,
  Internal: 999,
} as const;

export type ErrorCodeValue = (typeof ErrorCode)[keyof typeof ErrorCode];

/** The error object of the spec, as printed on stdout. */
export interface CniErrorObject {
  cniVersion?: string;
  code: number;
  msg: string;
  details?: string;
}

export class CniError extends Error {
  readonly code: number;
  readonly details: string | undefined;

  constructor(code: number, msg: string, details?: string, options?: { cause?: unknown }) {
    super(msg, options);
    this.name = 'CniError';
    this.code = code;
    this.details = details;
  }

  toObject(cniVersion?: string): CniErrorObject {
    // Key order as the spec lists them: cniVersion, code, msg, details.
    const obj: CniErrorObject = cniVersion !== undefined ? { cniVersion, code: this.code, msg: this.message } : { code: this.code, msg: this.message };
    if (this.details !== undefined && this.details !== '') obj.details = this.details;
    return obj;
  }
}

export function isCniError(err: unknown): err is CniError {
  return err instanceof CniError;
}

/** Any error becomes a CniError; a CniError passes through unchanged (never wrapped twice). */
export function asCniError(err: unknown): CniError {
  if (err instanceof CniError) return err;
  const msg = err instanceof Error ? err.message : String(err);
  return new CniError(ErrorCode.Internal, msg, undefined, { cause: err });
}

/** Reads an error object from untyped JSON (a plugin's stdout, an agent reply). */
export function parseErrorObject(value: unknown): CniErrorObject | undefined {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return undefined;
  const rec = value as Record<string, unknown>;
  if (typeof rec['code'] !== 'number' || typeof rec['msg'] !== 'string') return undefined;
  const out: CniErrorObject = { code: rec['code'], msg: rec['msg'] };
  if (typeof rec['details'] === 'string') out.details = rec['details'];
  if (typeof rec['cniVersion'] === 'string') out.cniVersion = rec['cniVersion'];
  return out;
}
