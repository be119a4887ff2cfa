/**
 * `snnl datasets [--json]` and `snnl datasets verify`: which data sets are here, and are they intact.
 */
import { DATASETS, defaultDataDir, verifyDataset, type DatasetSpec } from '../data/datasets.js';

export interface DatasetStatus {
  name: string;
  title: string;
  available: boolean;
  where: string;
  source: string;
  license: string;
  train: number | null;
  test: number | null;
  imageShape: number[];
  classes: number;
  /** How to provide it, when missing. */
  howTo?: string;
}

export function datasetStatus(dataDir = defaultDataDir()): DatasetStatus[] {
  return DATASETS.map((spec: DatasetSpec) => {
    const location = spec.locate(dataDir);
    const sizes = spec.sizes.train > 0 ? spec.sizes : { train: null, test: null };
    return {
      name: spec.name,
      title: spec.title,
      available: location.available,
      where: location.where,
      source: spec.source,
      license: spec.license,
      train: sizes.train,
      test: sizes.test,
      imageShape: spec.imageShape,
      classes: spec.classes,
      ...(location.available ? {} : { howTo: location.howTo.replaceAll('<data-dir>', dataDir) }),
    };
  });
}

export function formatStatus(statuses: DatasetStatus[], dataDir: string): string {
  const lines = [
    `Data sets (user-supplied ones are read from ${dataDir}; change with --data-dir or SNNL_DATA_DIR)`,
    '',
  ];
  const width = Math.max(...statuses.map((s) => s.name.length));
  for (const s of statuses) {
    const sizes = s.train !== null ? `${s.train} / ${s.test}` : 'train / test';
    lines.push(
      `${s.available ? '✓' : '✗'} ${s.name.padEnd(width)}  ${s.title}, ${sizes}, ${s.imageShape.join('x')}, ${s.classes} classes`,
    );
    lines.push(`  ${' '.repeat(width)}  ${s.available ? `from ${s.where}` : `missing: ${s.howTo}`}`);
  }
  return lines.join('\n');
}

export function verifyAll(dataDir = defaultDataDir()): { text: string; ok: boolean } {
  const lines: string[] = [];
  let ok = true;
  for (const spec of DATASETS) {
    const location = spec.locate(dataDir);
    if (!location.available) {
      lines.push(`- ${spec.name}: not present, skipped`);
      continue;
    }
    for (const check of verifyDataset(spec, location)) {
      ok &&= check.ok;
      lines.push(`${check.ok ? '✓' : '✗'} ${spec.name}: ${check.file}: ${check.detail}`);
    }
  }
  return { text: lines.join('\n'), ok };
}
