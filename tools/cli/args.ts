/** Command-line options shared by every earshot command, and their checks. */
import { parseArgs } from 'node:util';
import { EarshotError } from '../../models/errors.ts';
import { loadCheckpoint, type LoadedModel } from '../../models/load.ts';
import { initNodeBackend } from './node-backend.ts';
import { readModelDir } from './files.ts';

export const OPTIONS = {
  model: { type: 'string' },
  audio: { type: 'string' },
  backend: { type: 'string', default: 'wasm' },
  'max-tokens': { type: 'string' },
  prefix: { type: 'string' },
  hooks: { type: 'string' },
  out: { type: 'string' },
  json: { type: 'boolean', default: false },
  trim: { type: 'boolean', default: false },
  // Lab commands (patch, grounding, lens, attribute).
  clean: { type: 'string' },
  corrupt: { type: 'string' },
  target: { type: 'string' },
  foil: { type: 'string' },
  positions: { type: 'string', default: 'all' },
  heads: { type: 'string', default: 'all' },
  direction: { type: 'string', default: 'denoise' },
  source: { type: 'string' },
  metric: { type: 'string', default: 'logit_diff' },
  'full-window': { type: 'boolean', default: false },
  'per-token': { type: 'boolean', default: false },
  'text-clean': { type: 'string' },
  'text-corrupt': { type: 'string' },
  top: { type: 'string', default: '20' },
  'memory-mb': { type: 'string' },
  help: { type: 'boolean', short: 'h', default: false },
} as const;

export type Args = ReturnType<typeof parseArgs<{ options: typeof OPTIONS; allowPositionals: true }>>['values'];

export function required(args: Args, name: 'model' | 'audio' | 'prefix' | 'hooks' | 'out' | 'clean' | 'corrupt'): string {
  const v = args[name];
  if (v === undefined || v === '') throw new EarshotError(`Missing --${name}. Run "earshot --help" for usage.`, 'usage');
  return v;
}

export function parseIdList(text: string, what: string): number[] {
  const ids = text.split(',').map((s) => s.trim()).filter((s) => s !== '');
  if (ids.length === 0) throw new EarshotError(`${what} is empty; give token ids separated by commas, e.g. 50258,50259,50359,50363.`, 'usage');
  return ids.map((s) => {
    if (!/^\d+$/.test(s)) throw new EarshotError(`${what} has "${s}", which is not a token id (a non-negative integer).`, 'usage');
    return Number(s);
  });
}

export async function openModel(args: Args): Promise<LoadedModel> {
  await initNodeBackend(args.backend ?? 'wasm');
  return loadCheckpoint(await readModelDir(required(args, 'model')));
}


/** A whole number option within bounds, with a message naming the option. */
export function intOption(args: Args, name: 'top' | 'memory-mb' | 'target' | 'foil', min: number, max = Number.MAX_SAFE_INTEGER): number | undefined {
  const raw = args[name];
  if (raw === undefined) return undefined;
  const n = Number(raw);
  if (!/^\d+$/.test(raw.trim()) || n < min || n > max) throw new EarshotError(`--${name} must be a whole number from ${min} to ${max}, not "${raw}".`, 'usage');
  return n;
}

/** Picks one of a fixed set of words, or says which words there are. */
export function choice<T extends string>(value: string | undefined, name: string, allowed: readonly T[]): T {
  if (value !== undefined && (allowed as readonly string[]).includes(value)) return value as T;
  throw new EarshotError(`--${name} must be one of ${allowed.join(', ')}, not "${value}".`, 'usage');
}

/** Warnings (a silent or clipped clip, trimming) go to stderr and do not stop the command. */
export function warn(warnings: readonly string[]): void {
  for (const w of warnings) process.stderr.write(`earshot: warning: ${w}\n`);
}
