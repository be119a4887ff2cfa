/**
 * How the command line ends: a user's mistake (InputError, a bad flag) prints one line and exits 2;
 * anything else prints its message and exits 1, with the stack trace only when SNNL_DEBUG is set.
 */
import { CommanderError } from 'commander';
import { InputError } from '../errors.js';

export const EXIT_USAGE = 2;
export const EXIT_FAILURE = 1;

/**
 * The flag of each argument lower layers name in their errors (they know no flags): `model` is
 * `--model`, `batchSize` is `--batch-size`.
 */
const FLAGS: Record<string, string> = Object.fromEntries(
  [
    'model',
    'dataset',
    'dataDir',
    'layers',
    'out',
    'backend',
    'batchSize',
    'trainSubset',
    'testSubset',
    'layerWeights',
    'temperature',
    'distance',
    'preset',
    'factor',
    'epochs',
    'seed',
    'blockSize',
    'optimizeTemperature',
    'k',
    'calibration',
    'outliers',
    'eps',
    'pValues',
    'gradientSample',
    'pgdSteps',
    'knnK',
    'replicates',
  ].map((name) => [name, '--' + name.replace(/[A-Z]/g, (c) => '-' + c.toLowerCase())]),
);

/** The error as the command line shows it: an argument's name replaced by its flag. */
export function asFlagError(error: InputError): InputError {
  const flag = FLAGS[error.subject];
  return flag === undefined
    ? error
    : new InputError(
        flag,
        error.detail.replace(/\b(batchSize|trainSubset)\b/g, (n) => FLAGS[n]!),
      );
}

export function exitCodeFor(error: unknown): number {
  if (error instanceof CommanderError) {
    if (
      error.code === 'commander.helpDisplayed' ||
      error.code === 'commander.version' ||
      error.code === 'commander.help'
    ) {
      return 0;
    }
    return EXIT_USAGE;
  }
  return error instanceof InputError ? EXIT_USAGE : EXIT_FAILURE;
}

/** Prints what went wrong (commander has already printed its own errors) and returns the exit code. */
export function report(error: unknown, write: (line: string) => void = (l) => process.stderr.write(l + '\n')): number {
  const code = exitCodeFor(error);
  if (error instanceof CommanderError) return code;
  if (error instanceof InputError) {
    write(`snnl: ${asFlagError(error).message}`);
  } else {
    const message = error instanceof Error ? error.message : String(error);
    write(`snnl: failed: ${message}`);
    if (process.env['SNNL_DEBUG'] && error instanceof Error && error.stack) write(error.stack);
    else write('(set SNNL_DEBUG=1 for the stack trace)');
  }
  return code;
}
