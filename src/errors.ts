/**
 * Errors a user can fix: bad arguments, bad files, impossible option combinations.
 * The command line prints their message alone (no stack trace) and exits with code 2.
 */
export class InputError extends Error {
  override readonly name = 'InputError';
  /** The argument, option or file the problem is about, as the user named it. */
  readonly subject: string;
  /** What is wrong with it, without the subject. */
  readonly detail: string;

  constructor(subject: string, detail: string) {
    super(`${subject}: ${detail}`);
    this.subject = subject;
    this.detail = detail;
  }
}

/** Throws an InputError about `subject` unless `condition` holds. */
export function require(condition: boolean, subject: string, message: () => string): asserts condition {
  if (!condition) throw new InputError(subject, message());
}

/** `value` when it is one of `allowed`; else an InputError about `subject` listing them. */
export function checkOneOf<T extends string>(value: unknown, allowed: readonly T[], subject: string): T {
  if (typeof value === 'string' && (allowed as readonly string[]).includes(value)) return value as T;
  throw new InputError(subject, `unknown value ${JSON.stringify(value)}; expected one of ${allowed.join(', ')}`);
}
