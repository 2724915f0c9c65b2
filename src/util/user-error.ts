/** A mistake in how Weft was called or configured: shown as is, without a stack (exit status 2). */
export class UserError extends Error {
  readonly code = 'ERR_USER';
  constructor(message: string) {
    super(message);
    this.name = 'UserError';
  }
}
