/**
 * `earshot`: the command-line face of the lab. Shares every line of model code with
 * the browser; this file only parses arguments, reads files and prints JSON.
 *
 *   npm run -s earshot -- transcribe --model DIR --audio FILE [--backend cpu|wasm|webgpu] [--max-tokens N] [--json]
 *   npm run -s earshot -- run --model DIR --audio FILE --prefix ID,ID,... --hooks NAME[,NAME...] --out FILE.json
 *   npm run -s earshot -- hooks --model DIR
 *   npm run -s earshot -- patch|grounding|lens|attribute --model DIR --clean A.wav --corrupt B.wav ... --out FILE.json
 */
import { writeFile } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import * as tf from '@tensorflow/tfjs-core';
import { EarshotError } from '../../models/errors.ts';
import { greedyDecode } from '../../models/decode.ts';
import { expandHookPatterns, hookNames } from '../../models/hooks.ts';
import { HookSession } from '../../models/hook-session.ts';
import type { LoadedModel } from '../../models/load.ts';
import { clipToMel } from '../../models/wav-clip.ts';
import { MAX_AUDIO_BYTES, readBytes, readModelDir } from './files.ts';
import { OPTIONS, openModel, parseIdList, required, warn, type Args } from './args.ts';
import { attributeCommand, groundingCommand, lensCommand, patchCommand } from './lab-commands.ts';

const USAGE = `Usage: earshot <command> [options]

Commands:
  transcribe --model DIR --audio FILE [--backend cpu|wasm|webgpu] [--max-tokens N] [--trim] [--json]
      Greedy transcription. Prints {"tokens":[...],"text":"..."} with --json.
  run --model DIR --audio FILE --prefix ID,ID,... --hooks NAME[,NAME...] --out FILE.json [--backend B] [--trim]
      Teacher-forced pass over the prefix; writes logits and the hooks' activations
      (row-major, no batch axis). "*" in a hook name matches every block index.
  hooks --model DIR
      Lists the model's hook names in computation order.

  Lab commands take --model DIR --clean A.wav --corrupt B.wav|white-noise --out FILE.json, and
  [--prefix ID,...] [--target ID --foil ID] (default: the first token where the transcripts differ):
  patch --hooks PATTERN[,PATTERN...] [--positions all|each|bins:MS] [--heads all|each]
        [--direction denoise|noise] [--source clean|corrupt|noise:K|zero|mean]
        [--metric logit_diff|logprob|prob|kl] [--full-window] [--memory-mb N]
      Activation patching: one result per hook × position group × head.
  grounding [--metric M] [--per-token] [--text-clean ID,... --text-corrupt ID,...]
      Pathway grounding coefficient per decoder layer and overall (listen vs guess);
      per token along the transcript; input grounding against a decoder-context pair.
  lens
      Logit lens and encoder lens of both runs, saturation and critical layers, layer CKA.
  attribute [--hooks PATTERN,...] [--top K]
      Attribution patching for every hook and position, top K verified by real patches.

DIR holds config.json and model.safetensors (Hugging Face layout), and tokenizer.json for text.
FILE is a WAV file (PCM or float, any rate, mono or stereo).`;

async function readMel(args: Args, loaded: LoadedModel): Promise<tf.Tensor3D> {
  const path = required(args, 'audio');
  const bytes = await readBytes(path, 'audio file', MAX_AUDIO_BYTES);
  const { mel, warnings } = clipToMel(bytes, loaded.config, { trim: args.trim ?? false, label: path });
  warn(warnings);
  return tf.tensor3d(mel, [1, loaded.config.numMelBins, 2 * loaded.config.maxSourcePositions]);
}

async function transcribe(args: Args): Promise<void> {
  const loaded = await openModel(args);
  const mel = await readMel(args, loaded);
  let maxNewTokens: number | undefined;
  if (args['max-tokens'] !== undefined) {
    maxNewTokens = Number(args['max-tokens']);
    if (!Number.isInteger(maxNewTokens) || maxNewTokens < 1) throw new EarshotError(`--max-tokens must be a positive integer, not "${args['max-tokens']}".`, 'usage');
  }
  const tokens = await greedyDecode(loaded.model, mel, { prompt: loaded.prompt, eot: loaded.special.eot, maxNewTokens });
  mel.dispose();
  const result: { tokens: number[]; text?: string } = { tokens };
  if (loaded.tokenizer) result.text = loaded.tokenizer.decode(tokens);
  if (args.json) process.stdout.write(JSON.stringify(result) + '\n');
  else process.stdout.write((result.text ?? tokens.join(' ')) + '\n');
}

async function run(args: Args): Promise<void> {
  const loaded = await openModel(args);
  const { config, model } = loaded;
  const prefix = parseIdList(required(args, 'prefix'), '--prefix');
  const bad = prefix.find((id) => id >= config.vocabSize);
  if (bad !== undefined) throw new EarshotError(`--prefix has token id ${bad}, beyond this model's vocabulary of ${config.vocabSize}.`, 'usage');
  const names = expandHookPatterns(required(args, 'hooks').split(','), config);
  const outPath = required(args, 'out');
  const mel = await readMel(args, loaded);
  const hooks = new HookSession({ capture: names });
  const tokens = tf.tensor2d([prefix], [1, prefix.length], 'int32');
  const encoderOut = model.encode(mel, hooks);
  const cross = model.crossKV(encoderOut, hooks);
  const { logits, present } = model.decode(tokens, cross, hooks);
  const out = {
    logits: await dropBatch(logits),
    activations: Object.fromEntries(await Promise.all(names.map(async (n) => [n, await dropBatch(hooks.cache.get(n)!)] as const))),
  };
  tf.dispose([mel, tokens, encoderOut, logits, ...cross.flatMap((kv) => [kv.k, kv.v]), ...present.flatMap((kv) => [kv.k, kv.v])]);
  hooks.dispose();
  await writeFile(outPath, JSON.stringify(out));
}

async function dropBatch(t: tf.Tensor): Promise<{ shape: number[]; data: number[] }> {
  return { shape: t.shape.slice(1), data: Array.from(await t.data()) };
}

async function listHooks(args: Args): Promise<void> {
  const files = await readModelDir(required(args, 'model'));
  const { parseConfig } = await import('../../models/config.ts');
  process.stdout.write(hookNames(parseConfig(files.config)).join('\n') + '\n');
}

const COMMANDS: Record<string, (args: Args) => Promise<void>> = {
  transcribe,
  run,
  hooks: listHooks,
  patch: patchCommand,
  grounding: groundingCommand,
  lens: lensCommand,
  attribute: attributeCommand,
};

/** Messages go to the terminal as one line ending in a full stop. */
function oneLine(message: string): string {
  const text = message.replace(/\s*\n\s*/g, ' ').trim();
  return /[.!?]$/.test(text) ? text : `${text}.`;
}

export async function main(argv: string[]): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({ args: argv, options: OPTIONS, allowPositionals: true, strict: true });
  } catch (e) {
    process.stderr.write(`earshot: ${oneLine((e as Error).message)} Run "earshot --help" for usage.\n`);
    return 2;
  }
  const { values: args, positionals } = parsed;
  const command = positionals[0];
  if (args.help || command === undefined || command === 'help') {
    process.stdout.write(USAGE + '\n');
    return command === undefined && !args.help ? 2 : 0;
  }
  try {
    const handler = Object.hasOwn(COMMANDS, command) ? COMMANDS[command] : undefined;
    if (!handler) {
      process.stderr.write(`earshot: unknown command "${command}". Commands: ${Object.keys(COMMANDS).join(', ')}.\n`);
      return 2;
    }
    await handler(args);
    return 0;
  } catch (e) {
    if (e instanceof EarshotError) process.stderr.write(`earshot: ${oneLine(e.message)}\n`);
    else if (process.env.EARSHOT_DEBUG) process.stderr.write(`earshot: internal error\n${(e as Error).stack}\n`);
    else process.stderr.write(`earshot: internal error: ${oneLine(String((e as Error).message ?? e))} Set EARSHOT_DEBUG=1 for details, and please report it.\n`);
    return 1;
  }
}

process.exitCode = await main(process.argv.slice(2));
