/**
 * Files picked in the "local files" model option → a 'files' ModelSource. Files are
 * recognised by name, the way a Hugging Face model folder names them.
 */
import { EarshotError } from '../models/errors.ts';
import { MAX_JSON_BYTES, MAX_WEIGHTS_BYTES, checkFileSize } from '../models/limits.ts';
import type { ModelSource } from '../workers/protocol.ts';

export interface PickedCheckpoint {
  config: File | null;
  weights: File | null;
  tokenizer: File | null;
  /** Picked files that are none of the three. */
  ignored: File[];
}

export function classifyFiles(files: readonly File[]): PickedCheckpoint {
  const picked: PickedCheckpoint = { config: null, weights: null, tokenizer: null, ignored: [] };
  for (const file of files) {
    const name = file.name.toLowerCase();
    if (name.endsWith('.safetensors') && !picked.weights) picked.weights = file;
    else if (name.includes('tokenizer') && name.endsWith('.json') && !picked.tokenizer) picked.tokenizer = file;
    else if (name === 'config.json' && !picked.config) picked.config = file;
    else picked.ignored.push(file);
  }
  return picked;
}

export async function sourceFromPicked(picked: PickedCheckpoint): Promise<ModelSource> {
  if (!picked.config || !picked.weights) {
    const missing = [!picked.config && 'config.json', !picked.weights && 'model.safetensors'].filter(Boolean).join(' and ');
    throw new EarshotError(`Also pick ${missing}: a model needs config.json and model.safetensors (tokenizer.json is optional).`, 'missing-files');
  }
  // By size first: an enormous file is refused before a byte of it is read into the tab.
  checkFileSize(picked.weights.name, picked.weights.size, MAX_WEIGHTS_BYTES, 'choose a smaller Whisper checkpoint (tiny, base or small), which a browser tab can hold');
  for (const json of [picked.config, picked.tokenizer]) {
    if (json) checkFileSize(json.name, json.size, MAX_JSON_BYTES, "pick the file from the model's folder");
  }
  const label = [picked.config, picked.weights, picked.tokenizer].filter((f): f is File => f !== null).map((f) => f.name).join(' + ');
  const source: ModelSource = {
    type: 'files',
    config: await picked.config.text(),
    safetensors: await picked.weights.arrayBuffer(),
    label,
  };
  if (picked.tokenizer) source.tokenizer = await picked.tokenizer.text();
  return source;
}
