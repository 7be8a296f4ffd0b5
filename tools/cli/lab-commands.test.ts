/**
 * The lab commands as a user runs them: real processes on the micro model's WAVs,
 * compared with the PyTorch reference (lab.json) where the experiment is the same.
 */
import { execFile } from 'node:child_process';
import { mkdtemp, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { beforeAll, describe, expect, it } from 'vitest';

const run = promisify(execFile);
const ROOT = join(import.meta.dirname, '..', '..');
const MICRO = join(ROOT, 'tests/fixtures/micro');
const TSX = join(ROOT, 'node_modules/.bin/tsx');
const pair = ['--model', MICRO, '--clean', join(MICRO, 'clean.wav'), '--corrupt', join(MICRO, 'corrupt.wav')];

async function earshot(...args: string[]): Promise<{ code: number; stderr: string }> {
  try {
    const { stderr } = await run(TSX, [join(ROOT, 'tools/cli/earshot.ts'), ...args], { cwd: ROOT });
    return { code: 0, stderr };
  } catch (e) {
    const err = e as { code: number; stderr: string };
    return { code: err.code, stderr: err.stderr };
  }
}

describe('earshot lab commands', () => {
  let scratch: string;
  let ref: { target: number; foil: number; gc: { overall: { gc: number } }; experiments: { id: string; results: { hook: string; effect: number }[] }[] };
  const out = (name: string) => join(scratch, name);
  const json = async (name: string) => JSON.parse(await readFile(out(name), 'utf8'));
  beforeAll(async () => {
    scratch = await mkdtemp(join(tmpdir(), 'earshot-lab-'));
    ref = JSON.parse(await readFile(join(MICRO, 'lab.json'), 'utf8'));
  });

  it('patch: chooses target and foil from the transcripts and matches the PyTorch reference', async () => {
    const o = await earshot('patch', ...pair, '--hooks', 'decoder.blocks.*.hook_cross_attn_out,encoder.blocks.*.hook_resid_post', '--metric', 'prob', '--out', out('patch.json'));
    expect(o.code, o.stderr).toBe(0);
    const r = await json('patch.json');
    expect([r.target, r.foil]).toEqual([ref.target, ref.foil]);
    expect(r.results.map((x: { hook: string }) => x.hook)).toEqual([
      'encoder.blocks.0.hook_resid_post', 'encoder.blocks.1.hook_resid_post', 'decoder.blocks.0.hook_cross_attn_out', 'decoder.blocks.1.hook_cross_attn_out',
    ]);
    // The CLI computes its own log-mel from the WAVs; the reference used transformers'.
    // With positions "all" but limited to the clip, encoder patches cover only the clip's frames.
    const want = ref.experiments.find((e) => e.id === 'E7-prob-denoise')!.results;
    const dec = r.results.filter((x: { hook: string }) => x.hook.startsWith('decoder'));
    dec.forEach((x: { hook: string; effect: number }) => expect(x.effect).toBeCloseTo(want.find((w) => w.hook === x.hook)!.effect, 2));
    expect(r.cost.blockEvals).toBeLessThan(r.cost.naiveBlockEvals);
  });

  it('patch --full-window patches the whole window, as the reference did', async () => {
    const o = await earshot('patch', ...pair, '--hooks', 'encoder.blocks.*.hook_resid_post', '--full-window', '--metric', 'prob', '--out', out('full.json'));
    expect(o.code, o.stderr).toBe(0);
    const want = ref.experiments.find((e) => e.id === 'E7-prob-denoise')!.results;
    for (const x of (await json('full.json')).results) expect(x.effect).toBeCloseTo(want.find((w) => w.hook === x.hook)!.effect, 2);
  });

  it('patch: time bins, heads, noise direction and sources', async () => {
    const o = await earshot('patch', ...pair, '--hooks', 'encoder.blocks.0.attn.hook_z', '--positions', 'bins:200', '--heads', 'each', '--direction', 'noise', '--source', 'noise:2', '--out', out('bins.json'));
    expect(o.code, o.stderr).toBe(0);
    const r = await json('bins.json');
    // Clip ≈ 0.66 s → 33 encoder positions → bins of 10 positions: 4 bins × 4 heads.
    expect(r.encoderRange).toEqual([0, 33]);
    expect(r.results).toHaveLength(16);
    expect(r.results[4]).toMatchObject({ position: 10, positionEnd: 20, head: 0 });
    expect(r.source).toEqual({ kind: 'noise', scale: 2, seed: 0 });
  });

  it('grounding, lens and attribute write their JSON', async () => {
    const outcomes = await Promise.all([
      earshot('grounding', ...pair, '--per-token', '--out', out('g.json')),
      earshot('lens', ...pair, '--out', out('l.json')),
      earshot('attribute', ...pair, '--top', '6', '--out', out('a.json')),
    ]);
    outcomes.forEach((o) => expect(o.code, o.stderr).toBe(0));
    const g = await json('g.json');
    expect(g.pathway.overall.gc).toBeCloseTo(ref.gc.overall.gc, 2);
    expect(g.perToken.length).toBeGreaterThan(0);
    const l = await json('l.json');
    expect(l.logitLens.clean.layers.at(-1).top[0].token).toBe(l.logitLens.clean.finalTop);
    expect(l.cka.encoder.matrix).toHaveLength(3);
    const a = await json('a.json');
    expect(a.verified).toHaveLength(6);
    expect(a.pearson).toBeGreaterThan(0.5);
  });

  it('white noise as the corruption', async () => {
    const o = await earshot('patch', '--model', MICRO, '--clean', join(MICRO, 'clean.wav'), '--corrupt', 'white-noise', '--hooks', 'decoder.blocks.*.hook_cross_attn_out', '--out', out('wn.json'));
    expect(o.code, o.stderr).toBe(0);
    const r = await json('wn.json');
    expect(r.target).toBe(ref.target);
    expect(r.foil).not.toBe(ref.foil);
  });

  it('refuses bad lab options with one clear line', async () => {
    const cases: [string[], RegExp][] = [
      [['patch', ...pair, '--hooks', 'hook_logits', '--positions', 'bins:abc', '--out', out('x.json')], /--positions must be/],
      [['patch', ...pair, '--hooks', 'hook_logits', '--source', 'noise:-1', '--out', out('x.json')], /--source must be/],
      [['patch', ...pair, '--hooks', 'hook_logits', '--direction', 'sideways', '--out', out('x.json')], /--direction must be one of/],
      [['patch', ...pair, '--hooks', 'hook_logits', '--metric', 'bleu', '--out', out('x.json')], /--metric must be one of/],
      [['patch', ...pair, '--hooks', 'hook_logits', '--target', '5', '--foil', '5', '--out', out('x.json')], /same token/],
      [['patch', ...pair, '--hooks', 'encoder.blocks.0.hook_resid_post', '--heads', 'each', '--positions', 'each', '--out', out('x.json')], /./],
      [['patch', '--model', MICRO, '--clean', join(MICRO, 'clean.wav'), '--hooks', 'hook_logits', '--out', out('x.json')], /Missing --corrupt/],
      [['attribute', ...pair, '--top', '0', '--out', out('x.json')], /--top must be/],
    ];
    const outcomes = await Promise.all(cases.map(([args]) => earshot(...args)));
    outcomes.forEach((o, i) => {
      const [args, pattern] = cases[i];
      // The heads-each on a non-head hook case is valid: it patches whole positions.
      if (args.includes('each') && args.includes('--heads')) return expect(o.code, o.stderr).toBe(0);
      expect(o.code, args.join(' ')).not.toBe(0);
      expect(o.stderr.trim().split('\n')).toHaveLength(1);
      expect(o.stderr).toMatch(pattern);
    });
  });
});
