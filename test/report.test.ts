import { spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { runToy, TOY_DEFAULTS } from '../src/experiments/toy.js';
import { runAll } from '../src/experiments/runs.js';
import { quickstartPlan } from '../src/experiments/quickstart.js';
import {
  buildReport,
  compactSvg,
  describeRuns,
  entanglementCell,
  findRuns,
  inlineFigure,
  INLINE_SVG_LIMIT,
} from '../src/report/report.js';
import { markdownToHtml } from '../src/report/markdown.js';
import { htmlTable } from '../src/report/html.js';
import type { TrainConfig } from '../src/training/config.js';
import { accuracySpec, curvesSpec } from '../src/report/figures.js';
import { writeToyReport } from '../src/report/toy.js';
import { InputError } from '../src/errors.js';
import { needs, onBackend } from './helpers.js';

const CHROMIUM = '/usr/bin/chromium';
let root: string;
let experiment: string;
const quiet = () => undefined;

beforeAll(async () => {
  root = mkdtempSync(join(tmpdir(), 'snnl-report-'));
  await onBackend('wasm');
  // The quickstart's three runs, cut down to seconds: the same code path as npm start.
  experiment = join(root, 'quick');
  const plan = quickstartPlan({ out: experiment, epochs: 2, trainSubset: 256 }).map((p) => ({
    ...p,
    config: { ...p.config, modelOptions: { widths: [24, 24] }, evalSample: 60 },
  }));
  await runAll(experiment, plan, 'wasm', quiet);
}, 120_000);

/** Opens a page in headless Chromium; returns its DOM and any console errors. */
function openInChromium(path: string) {
  const run = spawnSync(
    CHROMIUM,
    [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-background-networking',
      '--disable-component-update',
      '--no-first-run',
      `--user-data-dir=${mkdtempSync(join(tmpdir(), 'chromium-'))}`,
      '--enable-logging=stderr',
      '--v=0',
      '--dump-dom',
      `file://${path}`,
    ],
    { encoding: 'utf8', timeout: 60_000 },
  );
  const consoleErrors = run.stderr.split('\n').filter((l) => /CONSOLE|Uncaught|ERROR:.*(javascript|script)/i.test(l));
  return { dom: run.stdout, consoleErrors, status: run.status };
}

describe('report', () => {
  it('finds the runs of an experiment folder, and resumes nothing that is finished', async () => {
    expect(findRuns(experiment).map((d) => d.split('/').pop())).toEqual([
      'baseline',
      'snnl-disentangle',
      'snnl-entangle',
    ]);
    const lines: string[] = [];
    const plan = quickstartPlan({ out: experiment, epochs: 2, trainSubset: 256 }).map((p) => ({
      ...p,
      config: { ...p.config, modelOptions: { widths: [24, 24] }, evalSample: 60 },
    }));
    await runAll(experiment, plan, 'wasm', (l) => lines.push(l));
    expect(lines.filter((l) => l.includes('finished before, skipped'))).toHaveLength(3);
  });

  it('writes one self-contained page with inline SVG figures and PNG files beside it', async () => {
    const page = await buildReport(experiment, { points: 40 });
    const html = readFileSync(page, 'utf8');
    expect(html.match(/<svg/g)!.length).toBe(4);
    expect(html).not.toMatch(/<script|src="http/);
    for (const name of ['entanglement-optimal', 'entanglement-fixed', 'accuracy', 'representations-umap']) {
      const png = readFileSync(join(experiment, `${name}.png`));
      expect(Array.from(png.subarray(1, 4))).toEqual([0x50, 0x4e, 0x47]);
    }
    // Every run, and each of its hidden layers, appears in the table and the pictures.
    for (const label of ['baseline', 'SNNL a=10, T=0.1', 'SNNL a=-10, T=0.1']) expect(html).toContain(label);
    expect(html).toContain('SNNL fc1 (optimal T)');
    expect(html).toContain('SNNL fc2 (optimal T)');
  }, 120_000);

  needs(existsSync(CHROMIUM), 'Debian package chromium is not installed')(
    'renders in headless Chromium with no console errors',
    async () => {
      const page = join(experiment, 'report.html');
      if (!existsSync(page)) await buildReport(experiment, { points: 40 });
      const { dom, consoleErrors } = openInChromium(page);
      expect(consoleErrors).toEqual([]);
      expect(dom.match(/<svg/g)!.length).toBe(4);
    },
    120_000,
  );

  it('without checkpoints (committed results), leaves out the representation pictures and says why', async () => {
    const copy = join(root, 'committed');
    cpSync(experiment, copy, { recursive: true, filter: (source) => !source.endsWith('checkpoint.bin') });
    rmSync(join(copy, 'representations-umap.png'), { force: true });
    const html = readFileSync(await buildReport(copy, { points: 40 }), 'utf8');
    expect(html.match(/<svg/g)!.length).toBe(3);
    expect(html).toMatch(/No representation pictures: they need the runs' checkpoints/);
    for (const label of ['baseline', 'SNNL a=10, T=0.1', 'SNNL a=-10, T=0.1']) expect(html).toContain(label);
  }, 120_000);

  it('says what the page holds, lists the run folders, and flags a value no search could give', async () => {
    const copy = join(root, 'suspect');
    cpSync(experiment, copy, { recursive: true });
    // A pre-fix spike: the last epoch's optimal-T SNNL of fc1 set far above the ceiling (about log 10).
    const metrics = join(copy, 'baseline', 'metrics.jsonl');
    const lines = readFileSync(metrics, 'utf8').trim().split('\n');
    const last = JSON.parse(lines.at(-1)!) as { entanglement: Record<string, { optimalLoss: number }> };
    last.entanglement['fc1']!.optimalLoss = 9.2;
    writeFileSync(metrics, [...lines.slice(0, -1), JSON.stringify(last)].join('\n') + '\n');
    writeFileSync(join(copy, 'table.md'), '# Title\n\n## MNIST\n\n| Model | test |\n|---|---|\n| Baseline | 98.5 |\n');
    const html = readFileSync(await buildReport(copy, { points: 40 }), 'utf8');
    expect(html).toContain(
      '3 runs: mlp on mnist; 3 configurations (baseline; a=10, T=0.1; a=-10, T=0.1); 1 seed (1234)',
    );
    expect(html).toMatch(/<summary>The 3 run folders<\/summary><ul><li>baseline<\/li>/);
    expect(html).toMatch(/<td class="suspect" title="above the ceiling 2\.\d{3}[^"]*">9\.200 &#9888;<\/td>/);
    expect(html).toContain('1 value cannot be right');
    // table.md as an HTML table under its own heading, not as preformatted text.
    expect(html).not.toContain('<pre>');
    expect(html).toContain('<h3>MNIST</h3>');
    expect(html).toContain('<h1>Title</h1>');
    expect(html).toContain('<td>Baseline</td><td>98.5</td>');
  }, 120_000);

  it('refuses a folder without runs, or whose runs have not finished an epoch', async () => {
    await expect(buildReport(root + '/nothing')).rejects.toThrow(InputError);
    await expect(buildReport(mkdtempSync(join(tmpdir(), 'empty-')))).rejects.toThrow(/holds no run/);
  });
});

describe('the pieces of a report page', () => {
  it("turns snnl's Markdown (headings, pipe tables, paragraphs, code) into HTML, escaped", () => {
    const md = '# Top\n\nSome `code` and <b>\ntext.\n\n| a | b |\n|---|---:|\n| 1 | x<y |\n| 2 | 3 |\n\nAfter.';
    expect(markdownToHtml(md, 1).split('\n')).toEqual([
      '<h2>Top</h2>',
      '<p>Some <code>code</code> and &lt;b&gt; text.</p>',
      '<table><thead><tr><th>a</th><th>b</th></tr></thead><tbody>',
      '<tr><td>1</td><td>x&lt;y</td></tr>',
      '<tr><td>2</td><td>3</td></tr>',
      '</tbody></table>',
      '<p>After.</p>',
    ]);
    // A line of pipes with no rule under it is text, not a table.
    expect(markdownToHtml('| not | a table |')).toBe('<p>| not | a table |</p>');
  });

  it('flags entanglement values that are not finite, negative, or above the ceiling', () => {
    expect(entanglementCell(0.5, 2.3)).toBe('0.500');
    expect(entanglementCell(2.3, 2.3)).toBe('2.300');
    expect(entanglementCell(0.5, undefined)).toBe('0.500');
    expect(entanglementCell(9.2, 2.3)).toMatchObject({
      text: '9.200',
      suspect: expect.stringMatching(/above the ceiling 2.300/),
    });
    expect(entanglementCell(NaN, 2.3)).toMatchObject({ text: 'NaN', suspect: 'not a finite number' });
    expect(entanglementCell(-0.1, 2.3)).toMatchObject({ suspect: expect.stringMatching(/below 0/) });
    expect(htmlTable(['a'], [[{ text: '9', suspect: 'why "this"' }]])).toContain(
      '<td class="suspect" title="why &quot;this&quot;">9 &#9888;</td>',
    );
  });

  it('describes one run, and a page of many by what they share and how they differ', () => {
    const base = { model: 'cnn', dataset: 'mnist', factor: 0, temperature: 100, epochs: 10, batchSize: 128, seed: 1 };
    const one = [base as TrainConfig];
    expect(describeRuns(one)).toBe('One run: cnn on mnist, baseline, 10 epochs, batch 128, seed 1.');
    const many = [base, { ...base, seed: 2 }, { ...base, dataset: 'fashion-mnist', factor: -10 }] as TrainConfig[];
    expect(describeRuns(many)).toBe(
      '3 runs: cnn on mnist and fashion-mnist; 2 configurations (baseline; a=-10, T=100); 2 seeds (1, 2); 10 epochs, batch 128.',
    );
  });
});

describe('the toy of Figure 1', () => {
  it('separates the classes when minimizing SNNL and mixes them when maximizing', () => {
    const frames = runToy({ ...TOY_DEFAULTS, steps: 30, frames: [0, 30], pointsPerClass: 15 });
    const at = (direction: string, step: number) =>
      frames.find((f) => f.direction === direction && f.step === step)!.loss;
    expect(at('disentangle', 30)).toBeLessThan(at('disentangle', 0) / 2);
    expect(at('entangle', 30)).toBeGreaterThan(at('entangle', 0));
    // Fully mixed, SNNL at its optimal (infinite) temperature is log((b - 1) / (class size - 1)).
    expect(at('entangle', 30)).toBeLessThanOrEqual(Math.log(44 / 14) + 1e-3);
  });

  it('draws the frames as a page and a PNG', async () => {
    const frames = runToy({ ...TOY_DEFAULTS, steps: 5, frames: [0, 5], pointsPerClass: 10 });
    const page = await writeToyReport(join(root, 'toy'), frames);
    expect(readFileSync(page, 'utf8')).toMatch(/<svg/);
    expect(existsSync(join(root, 'toy', 'toy.png'))).toBe(true);
  });
});

describe('figures of many runs', () => {
  const rows = (datasets: string[], seeds: number[]) =>
    datasets.flatMap((dataset) =>
      seeds.flatMap((seed) =>
        ['baseline', 'SNNL a=10, T=100'].map((config) => ({
          run: `${dataset} ${config} s${seed}`,
          config,
          dataset,
          seed,
          epoch: 1,
          layer: 'fc1',
          value: 0.5,
          accuracy: 90,
        })),
      ),
    );

  it('color one configuration across seeds and data sets, with a line per run and a row of panels per data set', () => {
    const spec = JSON.parse(
      JSON.stringify(curvesSpec(rows(['mnist', 'fashion-mnist'], [1234, 42]), 'value', 'T', 'SNNL')),
    );
    expect(spec.facet.row.field).toBe('dataset');
    expect(spec.spec.encoding.color.field).toBe('config');
    expect(spec.spec.encoding.detail.field).toBe('run');
    expect(spec.title).toContain('one line per seed');
    const accuracy = JSON.parse(JSON.stringify(accuracySpec(rows(['mnist', 'fashion-mnist'], [1234]))));
    expect(accuracy.facet.column.field).toBe('dataset');
    expect(accuracy.spec.encoding.color.field).toBe('config');
    expect(accuracy.title).not.toContain('one line per seed');
  });

  it('color each run when there is one data set and one seed', () => {
    const spec = JSON.parse(JSON.stringify(curvesSpec(rows(['mnist'], [1234]), 'value', 'T', 'SNNL')));
    expect(spec.facet.row).toBeUndefined();
    expect(spec.spec.encoding.color.field).toBe('run');
    expect(spec.spec.encoding.detail).toBeUndefined();
    const accuracy = JSON.parse(JSON.stringify(accuracySpec(rows(['mnist'], [1234]))));
    expect(accuracy.encoding.color.field).toBe('run');
  });
});

describe('the page stays small: compact inline SVG, PNG beside it for huge figures', () => {
  it("drops each mark's labels and rounds geometry, leaving the text as it was", () => {
    const svg =
      '<svg aria-label="chart"><path aria-label="x: 1.23456; y: 2; class: 3" role="graphics-symbol" ' +
      'aria-roledescription="circle" transform="translate(80.92005414438603,15.871181194904995)" ' +
      'd="M1.5,0A1.5,1.5,0,1,1,-1.5,0" fill="#ff7f0e"/><text x="10.123456">0.125456</text></svg>';
    expect(compactSvg(svg)).toBe(
      '<svg aria-label="chart"><path transform="translate(80.9,15.8)" d="M1.5,0A1.5,1.5,0,1,1,-1.5,0" ' +
        'fill="#ff7f0e"/><text x="10.1">0.125456</text></svg>',
    );
    expect(inlineFigure({ name: 'small', svg })).toContain('<svg aria-label="chart">');
    const huge = '<svg>' + '<path d="M1.5,0"/>'.repeat(INLINE_SVG_LIMIT / 10) + '</svg>';
    const linked = inlineFigure({ name: 'representations-umap', svg: huge });
    expect(linked).toContain('<img src="representations-umap.png"');
    expect(linked).not.toContain('<svg');
  });
});
