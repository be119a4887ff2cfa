#!/usr/bin/env node
/**
 * The `snnl` command line.
 */
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Command, Option } from 'commander';
import { resumeFlags } from './resume.js';
import { BACKENDS } from '../engine/backend.js';
import { DISTANCES } from '../loss/distance.js';
import { PRESETS } from '../loss/presets.js';
import { report } from './errors.js';
import { formatMeasurement, measure, type MeasureFlags } from './measure.js';
import { datasetStatus, formatStatus, verifyAll } from './datasets.js';
import { defaultDataDir, PIXEL_SCALES } from '../data/datasets.js';
import { MODEL_NAMES } from '../models/models.js';
import { P_VALUE_FORMS } from '../analysis/dknn.js';
import {
  evaluateCommand,
  exportCommand,
  formatEvaluation,
  formatExport,
  formatTrainResult,
  trainCommand,
} from './train.js';
import { quickstartCommand, reportCommand, reproduceCommand, toyCommand } from './experiment.js';
import { dknnCommand, dknnOptions, formatDknn, type DknnFlags } from './dknn.js';
import { dknnFeaturesCommand, formatFeatureDknn } from './dknn-features.js';
import { formatGan, ganCommand, ganSummaryCommand, type GanFlags } from './gan.js';
import { buildGanReport } from '../report/gan.js';
import { readGanConfig } from '../experiments/gan.js';
import { useBackend } from '../engine/backend.js';
import { registerSummaryCommands } from './summaries.js';

const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };

/** --backend, on every command that computes (`snnl datasets` only reads files). */
const backendOption = (fallback?: string) => {
  const option = new Option('--backend <name>', 'compute backend').choices([...BACKENDS]).env('SNNL_BACKEND');
  return fallback === undefined ? option : option.default(fallback);
};

/** Deep k-NN's p-value form and feature preprocessing, shared by `dknn` and `dknn-features`. */
const pValuesOption = () =>
  new Option('--p-values <form>', "'standard', or 'reference' (drops calibration scores of 0, as the reference code)")
    .choices([...P_VALUE_FORMS])
    .default('standard');
const normalizeOption = () =>
  new Option('--no-normalize', 'search raw features (default: unit length, then centred, as the reference code)');
const pruneOption = () =>
  new Option(
    '--no-prune',
    'compute every distance (default on native: wide layers use the pruned search, which finds the same neighbours)',
  );

/** Runs the package's own build script (npm does not run a dependency's install scripts by default). */
function buildNative(): number {
  const script = fileURLToPath(new URL('../../scripts/build-native.mjs', import.meta.url));
  return spawnSync(process.execPath, [script], { stdio: 'inherit' }).status ?? 1;
}

export function buildProgram(): Command {
  const program = new Command();
  program
    .name('snnl')
    .description('The Soft Nearest Neighbor Loss: measure and train class entanglement in representations')
    .version(pkg.version)
    .exitOverride()
    .showHelpAfterError('(run with --help for usage)');

  program
    .command('measure')
    .description('measure the SNNL (entanglement) of embeddings with their class labels')
    .argument('<embeddings>', 'embeddings, one row per example: .npy (float32/float64, any rank), .csv or .json')
    .argument('<labels>', 'integer class labels, one per example: .npy (any int width), .csv or .json')
    .addOption(new Option('--distance <name>', "pairwise distance (default: the preset's)").choices([...DISTANCES]))
    .addOption(
      new Option('--preset <name>', 'formula of a known implementation').choices([...PRESETS]).default('stable'),
    )
    .option('--temperature <T>', "temperature above 0, or 'optimal' for the one that minimizes the loss", '1')
    .option('--block-size <rows>', 'compute in blocks of this many rows (memory grows with rows x block)')
    .option('--no-retrieval', 'leave out precision@1 and MAP@R (retrieval metrics by the same distance)')
    .addOption(backendOption())
    .option('--json', 'print the result as JSON')
    .exitOverride()
    .action(async (embeddings: string, labels: string, flags: MeasureFlags) => {
      const result = await measure(embeddings, labels, flags);
      process.stdout.write((flags.json ? JSON.stringify(result, null, 2) : formatMeasurement(result)) + '\n');
    });

  program
    .command('train')
    .description('train a network with SNNL on every hidden layer: total = primary loss + factor x sum of SNNL')
    .option('--dataset <name>', 'data set (see snnl datasets)')
    .addOption(
      new Option(
        '--pixels <scale>',
        "'normalized' (the data set's mean and std) or 'unit' (pixels in [0, 1], as the paper's code feeds them)",
      )
        .choices([...PIXEL_SCALES])
        .default('normalized'),
    )
    .addOption(new Option('--model <name>', 'network').choices([...MODEL_NAMES]))
    .option('--factor <a>', 'SNNL factor a (negative entangles the classes; 0 trains without SNNL)', '0')
    .option(
      '--temperature <T>',
      "a number above 0, 'annealed' (or 0: 1/(1+epoch)^0.55), or 'optimal' (default 100; entangling with no --preset: 1, relative)",
    )
    .option('--optimize-temperature', "start at --temperature and take the paper code's one step per batch on it")
    .option('--relative-temperature', "--temperature in units of each batch's mean squared distance, per layer")
    .addOption(new Option('--distance <name>', "pairwise distance (default: the preset's)").choices([...DISTANCES]))
    .addOption(new Option('--preset <name>', 'SNNL formula').choices([...PRESETS]))
    .option('--layers <names>', "hidden layers with an SNNL term: 'all', 'code' (autoencoder) or a comma list")
    .addOption(new Option('--combine <how>', 'how layer terms combine').choices(['sum', 'min']))
    .addOption(
      new Option('--layer-weights <w>', "per-layer weights ('pt-snnl' repeats that code's terms)").choices([
        'equal',
        'pt-snnl',
      ]),
    )
    .option('--widths <list>', 'mlp hidden widths, comma-separated (default 500,500)')
    .option('--epochs <n>', 'epochs', '10')
    .option('--batch-size <n>', 'batch size', '128')
    .option('--lr <rate>', 'Adam learning rate', '0.001')
    .option('--seed <n>', 'seed of initialization and shuffling', '1234')
    .option('--eval-sample <n>', 'test images on which per-layer SNNL is measured each epoch', '1000')
    .option('--train-subset <n>', 'train on this many training examples (a seeded choice) for a quick run')
    .option('--test-subset <n>', 'test accuracy and loss on this many test images (a seeded choice; default all)')
    .option('--input-shape <HxWxC>', 'pad the images (centred) and repeat their channel to this shape, e.g. 32x32x3')
    .option(
      '--probe-layers <names>',
      "layers to measure several times per epoch into probes.jsonl: 'final-block' (resnet) or a comma list",
    )
    .option('--probes-per-epoch <n>', 'probes per epoch (default 10)')
    .option('--probe-size <n>', 'test images each probe measures (default 1000)')
    .option('--data-dir <dir>', 'folder of user-supplied data sets')
    .option('--out <dir>', 'run folder (default runs/<dataset>-<model>-a<factor>-T<T>-s<seed>)')
    .option('--resume <dir>', 'continue an interrupted run from its folder')
    .addOption(backendOption())
    .option('--quiet', 'no progress bar')
    .exitOverride()
    .action(async (flags: Record<string, string | undefined>, command: Command) => {
      const result = await trainCommand(resumeFlags(flags, command));
      process.stdout.write(formatTrainResult(result) + '\n');
    });

  program
    .command('evaluate')
    .description('accuracy and per-layer SNNL of a saved run')
    .argument('<dir>', 'run folder')
    .addOption(
      new Option('--protocol <p>', "'test': the real test split; 'seed-readme': the published table's protocol")
        .choices(['test', 'seed-readme'])
        .default('test'),
    )
    .addOption(backendOption())
    .option('--json', 'print the result as JSON')
    .exitOverride()
    .action(async (dir: string, flags: { protocol?: string; backend?: string; json?: boolean }) => {
      const result = await evaluateCommand(dir, flags);
      process.stdout.write((flags.json ? JSON.stringify(result, null, 2) : formatEvaluation(result)) + '\n');
    });

  program
    .command('export')
    .description("a run's network as tfjs's model.json and weights.bin, for tf.loadLayersModel('file://...')")
    .argument('<dir>', 'run folder')
    .option('--out <dir>', 'folder for model.json and weights.bin (default <dir>/model)')
    .addOption(backendOption())
    .option('--json', 'print the result as JSON')
    .exitOverride()
    .action(async (dir: string, flags: { out?: string; backend?: string; json?: boolean }) => {
      const result = await exportCommand(dir, flags);
      process.stdout.write((flags.json ? JSON.stringify(result, null, 2) : formatExport(result)) + '\n');
    });

  program
    .command('quickstart')
    .description('the main job: baseline vs SNNL-regularized MLP on MNIST, with a table and a report (a few minutes)')
    .option('--out <dir>', 'experiment folder', 'runs/quickstart')
    .option('--epochs <n>', 'epochs per run', '3')
    .option('--train-subset <n>', 'train on this many examples (a seeded choice) for an even quicker look')
    .addOption(backendOption())
    .exitOverride()
    .action(async (flags: { out: string; epochs: string; trainSubset?: string; backend?: string }) => {
      process.stdout.write((await quickstartCommand(flags)) + '\n');
    });

  program
    .command('report')
    .description(
      'an HTML page with figures (entanglement and accuracy curves, UMAP of each layer) for a run or a folder of runs',
    )
    .argument('<dir>', 'run folder, or a folder of runs')
    .option('--points <n>', 'test images per UMAP picture', '600')
    .addOption(backendOption())
    .exitOverride()
    .action(async (dir: string, flags: { points: string; backend?: string }) => {
      process.stdout.write((await reportCommand(dir, flags)) + '\n');
    });

  program
    .command('reproduce')
    .description(
      "the published results table (pt-snnl's CNN): 5 configurations x data sets x seeds, on the real test split; resumable",
    )
    .option('--datasets <list>', 'comma-separated: mnist, fashion-mnist, svhn', 'mnist,fashion-mnist,svhn')
    .option('--seeds <list>', 'comma-separated seeds', '1234,42,73,1024,86400')
    .option('--epochs <n>', 'epochs per run (default: 10, SVHN 20, as published)')
    .option('--out <dir>', 'reproduction folder', 'results/reproduction')
    .option('--data-dir <dir>', 'folder of user-supplied data sets (SVHN)')
    .option('--train-subset <n>', 'train on this many examples for a quick look (not comparable with the table)')
    .option('--eval-sample <n>', 'test images on which per-layer SNNL is measured each epoch')
    .option('--table-only', 'write the table and report from the runs finished so far; train nothing')
    .option('--points <n>', "test images per UMAP picture of the report (the first seed's runs)", '400')
    .addOption(backendOption())
    .exitOverride()
    .action(async (flags: Parameters<typeof reproduceCommand>[0]) => {
      process.stdout.write((await reproduceCommand(flags)) + '\n');
    });

  program
    .command('toy')
    .description("the paper's Figure 1: 2-D Gaussian points moved by gradient descent on SNNL, both signs")
    .option('--out <dir>', 'folder for toy.html and toy.png', 'runs/toy')
    .option('--classes <k>', 'number of Gaussians', '3')
    .option('--steps <n>', 'gradient steps', '200')
    .option('--seed <n>', 'seed of the points', '1')
    .addOption(backendOption('cpu'))
    .exitOverride()
    .action(async (flags: { out: string; classes: string; steps: string; seed: string; backend: string }) => {
      process.stdout.write((await toyCommand(flags)) + '\n');
    });

  program
    .command('dknn')
    .description(
      'Deep k-NN of a trained run: accuracy, credibility of outliers and adversarial inputs against max softmax, figures',
    )
    .argument('<dir>', 'run folder of `snnl train` (a classifier)')
    .option('--layers <names>', 'layers to search, comma-separated (default: every hidden layer and the logits)')
    .option('--k <n>', 'neighbours per layer', '75')
    .option('--calibration <n>', 'the first n test images calibrate; the rest are evaluated', '750')
    .addOption(pValuesOption())
    .addOption(normalizeOption())
    .addOption(pruneOption())
    .option('--outliers <n>', 'images per outlier set and per FGSM strength', '2000')
    .option('--eps <list>', 'FGSM and PGD strengths (L-infinity, pixels in [0, 1]), comma-separated', '0.1,0.25')
    .option('--pgd-steps <n>', 'steps of the PGD attack (0: FGSM only)', '10')
    .option('--knn-k <n>', 'k of the k-th nearest-neighbour distance detector', '50')
    .option(
      '--replicates <n>',
      'bootstrap replicates of each AUROC kept in dknn.json (for dknn-summary intervals)',
      '200',
    )
    .option('--epsilon <list>', 'error rates of the prediction sets, comma-separated (default 0.01,0.05,0.1)')
    .option('--mondrian', 'class-conditional calibration of the conformal p-values (with --p-values finite|smoothed)')
    .option('--gradient-sample <n>', 'test images whose input-gradient signs are studied', '500')
    .option('--train-subset <n>', 'use only the first n training images as neighbours (a quick look)')
    .option('--seed <n>', 'seed of the sampled images and the noise', '1234')
    .option('--out <dir>', 'where dknn.json and the figures go (default <dir>/dknn)')
    .addOption(backendOption())
    .option('--json', 'print the result as JSON')
    .exitOverride()
    .action(async (dir: string, flags: DknnFlags) => {
      const log = (line: string) => process.stderr.write(line + '\n');
      const study = await dknnCommand(dir, flags, log);
      process.stdout.write((flags.json ? JSON.stringify(study, null, 2) : formatDknn(study)) + '\n');
    });

  program
    .command('gan')
    .description(
      "the poster's real-vs-generated study: a DCGAN trained while SNNL of real against generated images is measured",
    )
    .option('--dataset <name>', 'mnist or fashion-mnist', 'mnist')
    .option('--steps <n>', 'training steps', '2000')
    .option('--batch-size <n>', 'batch size', '64')
    .option('--lr <rate>', 'Adam learning rate of both networks', '0.0002')
    .option('--beta1 <b>', "Adam's beta1", '0.5')
    .option('--code-size <n>', "size of the generator's normal code", '64')
    .option('--generator <kind>', "'dcgan' (batch normalization before the generator's ReLUs) or 'plain'", 'dcgan')
    .option('--measure-every <n>', 'measure the probe every n steps (and at step 0)', '100')
    .option('--probe-size <n>', 'held-out real images in the probe, and as many generated ones', '500')
    .option('--temperatures <list>', 'fixed temperatures measured beside the optimal one', '1,10,100')
    .addOption(
      new Option('--distance <name>', 'pairwise distance').choices([...DISTANCES]).default('squared-euclidean'),
    )
    .option('--classifier <dir>', 'a run folder of `snnl train` whose hidden layers are measured too')
    .option(
      '--snapshots <steps>',
      'steps whose networks are kept for the t-SNE and sample pictures (default: those of 0,400,800,2000 up to --steps, and the last)',
    )
    .option('--seed <n>', 'seed of the networks, the codes and the probe', '1234')
    .option('--tsne <name>', "representation of the t-SNE pictures (default: the closest to the poster's figures)")
    .option('--data-dir <dir>', 'folder of user-supplied data sets')
    .option('--out <dir>', 'study folder (default runs/gan-<dataset>-s<seed>)')
    .option('--resume <dir>', 'continue an interrupted study from its folder')
    .addOption(backendOption())
    .option('--quiet', 'no progress bar')
    .exitOverride()
    .action(async (flags: GanFlags, command: Command) => {
      const log = (line: string) => process.stderr.write(line + '\n');
      const result = await ganCommand(resumeFlags(flags, command), log);
      process.stdout.write(formatGan(result) + '\n');
    });

  program
    .command('gan-report')
    .description('redraw the report of a GAN study (figures, t-SNE of the snapshots, summary.json)')
    .argument('<dir>', 'study folder of `snnl gan`')
    .option('--tsne <name>', "representation of the t-SNE pictures (default: the closest to the poster's figures)")
    .addOption(backendOption())
    .exitOverride()
    .action(async (dir: string, flags: { tsne?: string; backend?: string }) => {
      readGanConfig(dir);
      await useBackend(flags.backend);
      const path = await buildGanReport(dir, {
        ...(flags.tsne ? { tsne: flags.tsne } : {}),
        log: (l) => process.stderr.write(l + '\n'),
      });
      process.stdout.write(`report: ${path}\n`);
    });

  program
    .command('gan-summary')
    .description("GAN studies (seeds) side by side: mean and std of each representation at the poster's steps")
    .argument('<dirs...>', 'study folders of `snnl gan`')
    .option('--out <dir>', 'write table.md and table.json there')
    .exitOverride()
    .action((dirs: string[], flags: { out?: string }) => {
      process.stdout.write(ganSummaryCommand(dirs, flags.out));
    });

  program
    .command('dknn-features')
    .description(
      'Deep k-NN on features from .npy files (train.<layer>.npy, calibration.<layer>.npy, test.<layer>.npy, *.labels.npy)',
    )
    .argument('<dir>', 'folder of the .npy files')
    .option('--k <n>', 'neighbours per layer', '75')
    .addOption(pValuesOption())
    .addOption(normalizeOption())
    .option(
      '--detector-layer <name>',
      'layer of the Mahalanobis and k-th NN detectors (default: the last by name but logits)',
    )
    .option('--knn-k <n>', 'k of the k-th nearest-neighbour distance detector', '50')
    .option('--epsilon <list>', 'error rates of the prediction sets, comma-separated (default 0.01,0.05,0.1)')
    .option(
      '--out <dir>',
      'where prediction.npy, credibility.npy, confidence.npy, p-values.npy, the detector scores and dknn.json go',
      'dknn-out',
    )
    .addOption(backendOption())
    .option('--json', 'print the summary as JSON')
    .exitOverride()
    .action(
      async (
        dir: string,
        flags: {
          k: string;
          pValues: string;
          normalize: boolean;
          out: string;
          backend?: string;
          json?: boolean;
          detectorLayer?: string;
          knnK: string;
          epsilon?: string;
        },
      ) => {
        const options = dknnOptions({
          k: flags.k,
          pValues: flags.pValues,
          knnK: flags.knnK,
          ...(flags.epsilon !== undefined ? { epsilon: flags.epsilon } : {}),
        });
        const summary = await dknnFeaturesCommand(
          dir,
          {
            out: flags.out,
            normalize: flags.normalize,
            ...(options.k ? { k: options.k } : {}),
            ...(options.pValues ? { pValues: options.pValues } : {}),
            ...(options.knnK ? { knnK: options.knnK } : {}),
            ...(options.epsilons ? { epsilons: options.epsilons } : {}),
            ...(flags.detectorLayer ? { detectorLayer: flags.detectorLayer } : {}),
            ...(flags.backend ? { backend: flags.backend } : {}),
          },
          (line) => process.stderr.write(line + '\n'),
        );
        process.stdout.write((flags.json ? JSON.stringify(summary, null, 2) : formatFeatureDknn(summary)) + '\n');
      },
    );

  registerSummaryCommands(program);
  program
    .command('build-native')
    .description('build the native (LibTorch) backend inside this installation (needs libtorch-dev)')
    .exitOverride()
    .action(() => {
      process.exitCode = buildNative();
    });

  const datasets = program
    .command('datasets')
    .description('list the data sets: available or not, where from, sizes, and how to provide a missing one')
    .option('--data-dir <dir>', 'folder of user-supplied data sets (default: SNNL_DATA_DIR or ~/.snnl/data)')
    .option('--json', 'print the list as JSON')
    .exitOverride()
    .action((flags: { dataDir?: string; json?: boolean }) => {
      const dir = flags.dataDir ?? defaultDataDir();
      const statuses = datasetStatus(dir);
      process.stdout.write((flags.json ? JSON.stringify(statuses, null, 2) : formatStatus(statuses, dir)) + '\n');
    });
  datasets
    .command('verify')
    .description('check sizes and checksums where known, and decode every available data set')
    .option('--data-dir <dir>', 'folder of user-supplied data sets')
    .exitOverride()
    .action((flags: { dataDir?: string }, command: Command) => {
      const parent = command.parent?.opts() as { dataDir?: string } | undefined;
      const result = verifyAll(flags.dataDir ?? parent?.dataDir ?? defaultDataDir());
      process.stdout.write(result.text + '\n');
      // A damaged or wrong file is a problem with the user's input: exit 2, as for any bad input.
      if (!result.ok) process.exitCode = 2;
    });

  return program;
}

export async function main(argv: string[]): Promise<number> {
  try {
    await buildProgram().parseAsync(argv);
    // An action may have set a failing exit code of its own (verify finding a damaged file).
    return Number(process.exitCode ?? 0);
  } catch (error) {
    return report(error);
  }
}

process.exitCode = await main(process.argv);
