/** Tables (Markdown, also readable as plain text) from a benchmark run. */
import type { Measurement } from './workloads.ts';

export interface BenchReport {
  command: string;
  date: string;
  model: string;
  machine: string;
  seconds?: number;
  measurements: (Measurement & { variants?: number; blockEvals?: number; naiveBlockEvals?: number })[];
  peaks: { backend: string; ours: number | null; tfjs: number; shape: number[] }[];
  info: Record<string, unknown>;
}

const OURS = 'earshot (our kernels)';
const TFJS = 'earshot (tfjs ops)';

function fmt(x: number | null | undefined, digits = 2): string {
  if (x === null || x === undefined || !Number.isFinite(x)) return '–';
  return x.toFixed(digits);
}

export function formatTables(r: BenchReport): string {
  const lines: string[] = [];
  lines.push(`Command: \`${r.command}\` · ${r.date} · ${r.machine}${r.seconds ? ` · ${(r.seconds / 60).toFixed(1)} min` : ''}`);
  lines.push('');
  lines.push(`Model: ${r.model}. Times are medians of the listed runs after one warm-up (sweeps on WebGPU: one run).`);
  lines.push('');
  lines.push('**Matmul peak** ([1500×384]·[384×1536], the encoder fc1 shape), GFLOP/s:');
  lines.push('');
  lines.push('| backend | our linear kernel | tfjs matMul | peak used below |');
  lines.push('|---|---:|---:|---:|');
  const peakOf = new Map<string, number>();
  for (const p of r.peaks) {
    const peak = Math.max(p.ours ?? 0, p.tfjs);
    peakOf.set(p.backend, peak);
    lines.push(`| ${p.backend} | ${fmt(p.ours)} | ${fmt(p.tfjs)} | ${fmt(peak)} |`);
  }
  const workloads = [...new Set(r.measurements.map((m) => m.workload))];
  for (const w of workloads) {
    const rows = r.measurements.filter((m) => m.workload === w);
    const sweep = rows.some((m) => m.variants !== undefined);
    lines.push('');
    lines.push(`**${w}**`);
    lines.push('');
    lines.push(
      sweep
        ? '| backend | engine | median ms | runs | vs earshot on this backend | variants | block evals (naive) |'
        : '| backend | engine | median ms | runs | GFLOP/s | % of matmul peak | peak tensor MB | vs earshot on this backend |',
    );
    lines.push(sweep ? '|---|---|---:|---:|---:|---:|---:|' : '|---|---|---:|---:|---:|---:|---:|---:|');
    for (const m of rows) {
      const same = rows.filter((x) => x.backend === m.backend);
      const ref = same.find((x) => x.engine === OURS) ?? same.find((x) => x.engine === TFJS);
      // "× slower than earshot" for the others; earshot's own row shows 1.00.
      const ratio = ref ? m.ms / ref.ms : NaN;
      const peak = peakOf.get(m.backend);
      const runs = `${m.runs.length}`;
      if (sweep) {
        lines.push(`| ${m.backend} | ${m.engine} | ${fmt(m.ms, 0)} | ${runs} | ${fmt(ratio)}× | ${m.variants ?? '–'} | ${m.blockEvals ?? '–'} (${m.naiveBlockEvals ?? '–'}) |`);
      } else {
        const mb = m.peakBytes === null ? '–' : (m.peakBytes / 2 ** 20).toFixed(0);
        lines.push(`| ${m.backend} | ${m.engine} | ${fmt(m.ms, 0)} | ${runs} | ${fmt(m.gflops)} | ${peak ? fmt((100 * m.gflops) / peak, 0) : '–'} | ${mb} | ${fmt(ratio)}× |`);
      }
    }
  }
  lines.push('');
  lines.push('"vs earshot": this row\'s time ÷ earshot\'s on the same backend (our kernels where the backend has them, else tfjs ops); above 1 means earshot is faster.');
  const notes = Object.entries(r.info).map(([k, v]) => `${k}: ${typeof v === 'string' ? v : JSON.stringify(v)}`);
  if (notes.length) {
    lines.push('');
    lines.push('Backends: ' + notes.join(' · '));
  }
  return lines.join('\n');
}
