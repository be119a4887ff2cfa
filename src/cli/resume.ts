/**
 * --resume's rule for the commands that resume (train, gan): only the flags the user typed count.
 */
import type { Command } from 'commander';

export /** With --resume, only the flags the user typed count: defaults would look like changed settings. */
function resumeFlags<F extends { resume?: string | undefined }>(flags: F, command: Command): F {
  if (flags.resume === undefined) return flags;
  return Object.fromEntries(
    Object.entries(flags).filter(([k]) => ['cli', 'env'].includes(command.getOptionValueSource(k) ?? '')),
  ) as F;
}
