/**
 * Node-side file access for the CLI: reads a model folder and audio files with
 * messages that say which file is wrong and what to do about it.
 */
import { readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { EarshotError } from '../../models/errors.ts';
import { MAX_AUDIO_BYTES } from '../../models/limits.ts';
import type { CheckpointFiles } from '../../models/load.ts';

/** Larger than any Whisper checkpoint we run in a browser (large-v3 is ~3 GB in f16). */
const MAX_FILE_BYTES = 4 * 1024 ** 3;

/** Audio files past this are refused before reading (the page uses the same limit). */
export { MAX_AUDIO_BYTES };

export async function readBytes(path: string, what: string, maxBytes = MAX_FILE_BYTES): Promise<Uint8Array> {
  let size: number;
  try {
    const s = await stat(path);
    if (!s.isFile()) throw new EarshotError(`${what} ${path} is not a file.`, 'not-a-file');
    size = s.size;
  } catch (e) {
    if (e instanceof EarshotError) throw e;
    throw new EarshotError(`Cannot read ${what} ${path}: ${(e as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (e as Error).message}.`, 'no-file');
  }
  if (size > maxBytes) {
    const hint = maxBytes === MAX_AUDIO_BYTES ? '; cut out the part you want first (e.g. sox in.wav out.wav trim 0 30)' : '';
    throw new EarshotError(`${what} ${path} is ${(size / 1024 ** 2).toFixed(0)} MB, more than the ${(maxBytes / 1024 ** 2).toFixed(0)} MB limit${hint}.`, 'too-large');
  }
  return new Uint8Array(await readFile(path));
}

async function readJson(path: string, what: string): Promise<unknown> {
  const bytes = await readBytes(path, what, 64 * 1024 ** 2);
  try {
    return JSON.parse(new TextDecoder().decode(bytes));
  } catch (e) {
    throw new EarshotError(`${what} ${path} is not valid JSON (${(e as Error).message}).`, 'bad-json');
  }
}

async function exists(path: string): Promise<boolean> {
  try {
    await stat(path);
    return true;
  } catch {
    return false;
  }
}

/** A Hugging Face model folder: config.json, model.safetensors, and tokenizer.json if present. */
export async function readModelDir(dir: string): Promise<CheckpointFiles> {
  const configPath = join(dir, 'config.json');
  const weightsPath = join(dir, 'model.safetensors');
  if (!(await exists(configPath)) || !(await exists(weightsPath))) {
    throw new EarshotError(
      `${dir} is not a Whisper model folder: it needs config.json and model.safetensors (Hugging Face layout; tools/reference/make_fixtures.py makes one).`,
      'bad-model-dir',
    );
  }
  const files: CheckpointFiles = {
    config: await readJson(configPath, 'config'),
    safetensors: await readBytes(weightsPath, 'weights file'),
  };
  const tokenizerPath = join(dir, 'tokenizer.json');
  if (await exists(tokenizerPath)) files.tokenizer = await readJson(tokenizerPath, 'tokenizer');
  return files;
}
