/**
 * The CLI end to end, as a user runs it: a real process, real files, JSON out,
 * and one readable line (never a stack trace) for bad input.
 */
import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { beforeAll, describe, expect, it } from 'vitest';
import { SafeTensors } from '../../models/safetensors.ts';
import { hostileCheckpoints } from '../../tests/util/hostile-checkpoints.ts';

const run = promisify(execFile);
const ROOT = join(import.meta.dirname, '..', '..');
const MICRO = join(ROOT, 'tests/fixtures/micro');
const TSX = join(ROOT, 'node_modules/.bin/tsx');

interface Outcome {
  code: number;
  stdout: string;
  stderr: string;
}

async function earshot(...args: string[]): Promise<Outcome> {
  try {
    const { stdout, stderr } = await run(TSX, [join(ROOT, 'tools/cli/earshot.ts'), ...args], { cwd: ROOT, maxBuffer: 256 * 1024 ** 2 });
    return { code: 0, stdout, stderr };
  } catch (e) {
    const err = e as { code: number; stdout: string; stderr: string };
    return { code: err.code, stdout: err.stdout, stderr: err.stderr };
  }
}

/** Bad input: non-zero exit, exactly one line on stderr, no stack frames. */
function expectOneLineError(o: Outcome, pattern: RegExp): void {
  expect(o.code).not.toBe(0);
  const lines = o.stderr.trim().split('\n');
  expect(lines, o.stderr).toHaveLength(1);
  expect(lines[0]).toMatch(/^earshot: /);
  expect(lines[0]).toMatch(pattern);
  expect(o.stderr).not.toMatch(/\n\s+at /);
}

describe('earshot CLI', () => {
  let golden: { prefix: number[]; greedy: { clean: { tokens: number[] } } };
  let goldenTensors: SafeTensors;
  let scratch: string;
  beforeAll(async () => {
    golden = JSON.parse(await readFile(join(MICRO, 'golden.json'), 'utf8'));
    goldenTensors = SafeTensors.parse(new Uint8Array(await readFile(join(MICRO, 'golden.safetensors'))));
    scratch = await mkdtemp(join(tmpdir(), 'earshot-cli-'));
  });

  it('transcribe --json prints the greedy tokens transformers gives', async () => {
    const o = await earshot('transcribe', '--model', MICRO, '--audio', join(MICRO, 'clean.wav'), '--max-tokens', '8', '--json');
    expect(o.code, o.stderr).toBe(0);
    expect(o.stderr).toBe('');
    expect(JSON.parse(o.stdout)).toEqual({ tokens: golden.greedy.clean.tokens });
  });

  it('transcribe resamples a 44.1 kHz stereo file to the same tokens', async () => {
    const o = await earshot('transcribe', '--model', MICRO, '--audio', join(MICRO, 'clean_44k_stereo.wav'), '--max-tokens', '8', '--json', '--backend', 'cpu');
    expect(o.code, o.stderr).toBe(0);
    expect(JSON.parse(o.stdout).tokens).toEqual(golden.greedy.clean.tokens);
  });

  it('run writes logits and the requested activations, matching transformers', async () => {
    const out = join(scratch, 'run.json');
    const o = await earshot('run', '--model', MICRO, '--audio', join(MICRO, 'clean.wav'), '--prefix', golden.prefix.join(','),
      '--hooks', 'decoder.blocks.*.cross_attn.hook_pattern,encoder.hook_ln_post', '--out', out);
    expect(o.code, o.stderr).toBe(0);
    const result = JSON.parse(await readFile(out, 'utf8'));
    expect(Object.keys(result.activations)).toEqual([
      'encoder.hook_ln_post', 'decoder.blocks.0.cross_attn.hook_pattern', 'decoder.blocks.1.cross_attn.hook_pattern',
    ]);
    const check = (entry: { shape: number[]; data: number[] }, key: string, tol: number) => {
      expect(entry.shape).toEqual(goldenTensors.info(key).shape);
      const want = goldenTensors.getF32(key);
      let err = 0;
      for (let i = 0; i < want.length; i++) err = Math.max(err, Math.abs(entry.data[i] - want[i]));
      expect(err, key).toBeLessThan(tol);
    };
    // The CLI computes its own log-mel from the WAV, so allow for front-end rounding.
    check(result.logits, 'hook/hook_logits', 1e-3);
    check(result.activations['encoder.hook_ln_post'], 'hook/encoder.hook_ln_post', 1e-3);
    check(result.activations['decoder.blocks.1.cross_attn.hook_pattern'], 'hook/decoder.blocks.1.cross_attn.hook_pattern', 1e-4);
  });

  it('hooks lists every hook in order', async () => {
    const o = await earshot('hooks', '--model', MICRO);
    expect(o.code).toBe(0);
    const names = o.stdout.trim().split('\n');
    expect(names[0]).toBe('encoder.hook_input');
    expect(names.at(-1)).toBe('hook_logits');
    expect(names).toHaveLength(2 + 2 * 12 + 2 + 2 * 19 + 2);
  });

  it('refuses bad input with one clear line', async () => {
    const notWav = join(scratch, 'notes.wav');
    await writeFile(notWav, 'this is not audio');
    const badModel = join(scratch, 'badmodel');
    await run('mkdir', ['-p', badModel]);
    await writeFile(join(badModel, 'config.json'), await readFile(join(MICRO, 'config.json')));
    await writeFile(join(badModel, 'model.safetensors'), (await readFile(join(MICRO, 'model.safetensors'))).subarray(0, 5000));
    const clean = join(MICRO, 'clean.wav');
    // A sparse file: refused by its size before a byte of it is read.
    const huge = join(scratch, 'huge.wav');
    await run('truncate', ['-s', '300M', huge]);
    const cases: [string[], RegExp][] = [
      [['transcribe', '--model', MICRO, '--audio', huge], /300 MB, more than the 256 MB limit/],
      [['transcribe', '--model', join(scratch, 'nowhere'), '--audio', clean], /not a Whisper model folder/],
      [['transcribe', '--model', MICRO, '--audio', join(scratch, 'missing.wav')], /no such file/],
      [['transcribe', '--model', MICRO, '--audio', notWav], /WAV|audio/i],
      [['transcribe', '--model', badModel, '--audio', clean], /safetensors|truncated|file/i],
      [['transcribe', '--model', MICRO, '--audio', clean, '--backend', 'cuda'], /--backend must be one of/],
      [['transcribe', '--model', MICRO, '--audio', clean, '--max-tokens', '-3'], /--max-tokens/],
      [['transcribe', '--model', MICRO], /Missing --audio/],
      [['run', '--model', MICRO, '--audio', clean, '--prefix', '50258,x', '--hooks', 'hook_logits', '--out', join(scratch, 'x.json')], /not a token id/],
      [['run', '--model', MICRO, '--audio', clean, '--prefix', '99999999', '--hooks', 'hook_logits', '--out', join(scratch, 'x.json')], /beyond this model's vocabulary/],
      [['run', '--model', MICRO, '--audio', clean, '--prefix', '50258', '--hooks', 'encoder.blocks.9.hook_resid_post', '--out', join(scratch, 'x.json')], /block 9/],
      [['frobnicate'], /unknown command/],
      [['transcribe', '--bogus'], /Unknown option/],
    ];
    const outcomes = await Promise.all(cases.map(([args]) => earshot(...args)));
    outcomes.forEach((o, i) => expectOneLineError(o, cases[i][1]));
  });

  it('refuses every hostile checkpoint with its one sentence (tests/util/hostile-checkpoints.ts)', async () => {
    const hostile = hostileCheckpoints();
    const dirs = await Promise.all(hostile.map(async (c, i) => {
      const dir = join(scratch, `hostile-${i}`);
      await mkdir(dir, { recursive: true });
      await writeFile(join(dir, 'config.json'), c.config);
      await writeFile(join(dir, 'model.safetensors'), c.safetensors);
      if (c.tokenizer) await writeFile(join(dir, 'tokenizer.json'), c.tokenizer);
      return dir;
    }));
    // A few processes at a time: each is a full tsx start on a shared machine.
    const outcomes: Outcome[] = [];
    for (let i = 0; i < dirs.length; i += 4) {
      outcomes.push(...(await Promise.all(dirs.slice(i, i + 4).map((dir) => earshot('transcribe', '--model', dir, '--audio', join(MICRO, 'clean.wav'))))));
    }
    outcomes.forEach((o, i) => {
      expectOneLineError(o, /./);
      expect(o.stderr.trim(), hostile[i].name).toBe(`earshot: ${hostile[i].message}`);
      expect(o.stdout).toBe('');
    });
  }, 600_000);
});
