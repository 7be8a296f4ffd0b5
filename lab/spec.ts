/**
 * What an experiment asks for, as plain data (DESIGN.md §1: a patch is data, never a
 * closure), so it crosses the worker boundary and the share URL unchanged. The zod
 * schemas validate anything that arrives from outside (URL, file, message).
 */
import { z } from '../models/zod.ts';

/** denoise: run corrupted, patch in clean (sufficiency). noise: run clean, patch in corrupted (necessity). */
export type Direction = 'denoise' | 'noise';
export type Metric = 'logit_diff' | 'logprob' | 'prob' | 'kl';
export const METRICS: readonly Metric[] = ['logit_diff', 'logprob', 'prob', 'kl'];

/**
 * Where the patched-in value comes from:
 * - `clean` / `corrupt`: that run's activation (the minimal pair; denoising patches in clean,
 *   noising patches in corrupt — `defaultSource`);
 * - `noise`: the base run's own value plus Gaussian noise of σ = `scale` × the activation's std
 *   (Causal-Tracing style), seeded so every backend sees the same noise;
 * - `zero`: zeros (zero ablation);
 * - `mean`: the base run's value averaged over positions (mean ablation over time / tokens).
 */
export type Source = { kind: 'clean' } | { kind: 'corrupt' } | { kind: 'noise'; scale: number; seed: number } | { kind: 'zero' } | { kind: 'mean' };

/**
 * One hook patched in one variant: positions index the hook's position axis (encoder frames,
 * decoder tokens; the query axis of patterns), heads its head axis. null = all of them.
 */
export interface PatchSpec {
  hook: string;
  positions: number[] | null;
  heads: number[] | null;
  source: Source;
}

/** One patched forward pass: usually one PatchSpec, several for "all layers at once" questions. */
export interface Variant {
  patches: PatchSpec[];
  /** Where this variant's result goes in the sweep's output (hook, position, head labels). */
  label: VariantLabel;
}

export interface VariantLabel {
  hook: string;
  position: number | null;
  /** End (exclusive) of a time bin or position group; null for a single position or all. */
  positionEnd: number | null;
  head: number | null;
}

/**
 * Positions to sweep: one patch over all, one per position, or one per group of `size`
 * encoder positions (time bins of size × 20 ms; decoder hooks then go token by token).
 */
export type PositionMode = { kind: 'all' } | { kind: 'each' } | { kind: 'bins'; size: number } | { kind: 'list'; positions: number[] };
export type HeadMode = 'all' | 'each';

/** A sweep as a user specifies it; expanded into variants by `planVariants`. */
export interface SweepSpec {
  hooks: string[];
  positions: PositionMode;
  heads: HeadMode;
  direction: Direction;
  source: Source;
  metric: Metric;
  /**
   * Limits the encoder positions swept (e.g. to the clip rather than the window's silent
   * padding): [start, end). Decoder positions are never limited.
   */
  encoderRange?: [number, number];
}

const intArray = z.array(z.number().int().nonnegative()).max(100_000);

export const SourceSchema = z.discriminatedUnion('kind', [
  z.object({ kind: z.literal('clean') }).strict(),
  z.object({ kind: z.literal('corrupt') }).strict(),
  z.object({ kind: z.literal('noise'), scale: z.number().finite().positive().max(1000), seed: z.number().int().nonnegative() }).strict(),
  z.object({ kind: z.literal('zero') }).strict(),
  z.object({ kind: z.literal('mean') }).strict(),
]);

export const PositionModeSchema = z.discriminatedUnion('kind', [
  z.object({ kind: z.literal('all') }).strict(),
  z.object({ kind: z.literal('each') }).strict(),
  z.object({ kind: z.literal('bins'), size: z.number().int().positive().max(100_000) }).strict(),
  z.object({ kind: z.literal('list'), positions: intArray }).strict(),
]);

export const SweepSpecSchema = z
  .object({
    hooks: z.array(z.string().max(200)).min(1).max(10_000),
    positions: PositionModeSchema,
    heads: z.enum(['all', 'each']),
    direction: z.enum(['denoise', 'noise']),
    source: SourceSchema,
    metric: z.enum(['logit_diff', 'logprob', 'prob', 'kl']),
    encoderRange: z.tuple([z.number().int().nonnegative(), z.number().int().nonnegative()]).optional(),
  })
  .strict();

export const PatchSpecSchema = z
  .object({
    hook: z.string().max(200),
    positions: intArray.nullable(),
    heads: intArray.nullable(),
    source: SourceSchema,
  })
  .strict();

export type RunName = 'clean' | 'corrupt';

/** The run a direction executes: denoising runs the corrupted clip, noising the clean one. */
export function baseRun(direction: Direction): RunName {
  return direction === 'denoise' ? 'corrupt' : 'clean';
}

/** The minimal-pair source of a direction: the run it does not execute. */
export function defaultSource(direction: Direction): Source {
  return { kind: direction === 'denoise' ? 'clean' : 'corrupt' };
}
