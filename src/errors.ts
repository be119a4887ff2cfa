/**
 * Errors a user can fix: bad arguments, bad files, impossible option combinations.
 * The command line prints their message alone (no stack trace) and exits with code 2.
 */
export class InputError extends Error {
  override readonly name = 'InputError';
  /** The argument, option or file the problem is about, as the user named it. */
  readonly subject: string;

  constructor(subject: string, message: string) {
    super(`${subject}: ${message}`);
    this.subject = subject;
  }
}

/** Throws an InputError about `subject` unless `condition` holds. */
export function require(condition: boolean, subject: string, message: () => string): asserts condition {
  if (!condition) throw new InputError(subject, message());
}
