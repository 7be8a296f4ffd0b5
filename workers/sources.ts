/**
 * Gathers a checkpoint's three files (config.json, model.safetensors, optional
 * tokenizer.json) from wherever a ModelSource points: this site's demo folder, the
 * Hugging Face hub (through Cache Storage), or files the person picked.
 */
import { EarshotError } from '../models/errors.ts';
import type { CheckpointFiles } from '../models/load.ts';
import { fetchFile, type FetchedFile } from './fetch-file.ts';
import type { ModelSource, ProgressPayload } from './protocol.ts';

export interface GatheredCheckpoint {
  files: CheckpointFiles;
  label: string;
  /** True when every downloaded file came from Cache Storage. */
  fromCache: boolean;
  /** Why some downloaded file could not be stored in Cache Storage (it loads from memory this time). */
  cacheError?: string;
}

type OnProgress = (p: ProgressPayload) => void;

const HUB = 'https://huggingface.co';
/** Hugging Face repo ids: owner/name, letters, digits, '-', '_', '.'. */
export const REPO_ID = /^[A-Za-z0-9][\w.-]*\/[\w.-]+$/;

export function hubFileUrl(repo: string, revision: string, file: string): string {
  return `${HUB}/${repo}/resolve/${encodeURIComponent(revision)}/${file}`;
}

export async function gatherCheckpoint(source: ModelSource, signal: AbortSignal, onProgress: OnProgress): Promise<GatheredCheckpoint> {
  switch (source.type) {
    case 'demo':
      return gatherFromUrls({
        label: 'demo',
        urlOf: (file) => new URL(file, source.baseUrl).href,
        whatOf: (file) => `the demo model's ${file}`,
        useCache: false,
        signal,
        onProgress,
      });
    case 'hub': {
      const repo = source.repo.trim();
      const revision = source.revision.trim() || 'main';
      if (!REPO_ID.test(repo)) {
        throw new EarshotError(`"${repo}" is not a Hugging Face repo id; write it as owner/name, e.g. openai/whisper-tiny.`, 'bad-repo-id');
      }
      return gatherFromUrls({
        label: revision === 'main' ? repo : `${repo}@${revision}`,
        urlOf: (file) => hubFileUrl(repo, revision, file),
        whatOf: (file) => `${file} of ${repo}${revision === 'main' ? '' : `@${revision}`}`,
        useCache: true,
        signal,
        onProgress,
      });
    }
    case 'files': {
      const files: CheckpointFiles = {
        config: parseJson(source.config, `config.json (${source.label})`),
        safetensors: new Uint8Array(source.safetensors),
      };
      if (source.tokenizer !== undefined) files.tokenizer = parseJson(source.tokenizer, 'tokenizer.json');
      return { files, label: source.label, fromCache: false };
    }
    default: {
      const never: never = source;
      throw new EarshotError(`Unknown model source ${JSON.stringify(never)}.`, 'bad-request');
    }
  }
}

interface UrlSet {
  label: string;
  urlOf: (file: string) => string;
  whatOf: (file: string) => string;
  useCache: boolean;
  signal: AbortSignal;
  onProgress: OnProgress;
}

async function gatherFromUrls(s: UrlSet): Promise<GatheredCheckpoint> {
  const get = async (file: string, optional: boolean): Promise<FetchedFile | null> =>
    fetchFile(s.urlOf(file), {
      what: s.whatOf(file),
      signal: s.signal,
      useCache: s.useCache,
      optional,
      onProgress: (done, total) => s.onProgress({ done, total, stage: `Downloading ${file}` }),
    });
  // One after another: progress then reads as one file at a time, and the small files
  // fail fast (a wrong repo id) before the large download starts.
  const config = (await get('config.json', false))!;
  const tokenizer = await get('tokenizer.json', true);
  const weights = (await get('model.safetensors', false))!;
  const files: CheckpointFiles = {
    config: parseJson(new TextDecoder().decode(config.bytes), s.whatOf('config.json')),
    safetensors: weights.bytes,
  };
  if (tokenizer) files.tokenizer = parseJson(new TextDecoder().decode(tokenizer.bytes), s.whatOf('tokenizer.json'));
  const fromCache = config.fromCache && weights.fromCache && (tokenizer?.fromCache ?? true);
  const cacheError = [config, tokenizer, weights].find((f) => f?.cacheError)?.cacheError;
  return cacheError === undefined ? { files, label: s.label, fromCache } : { files, label: s.label, fromCache, cacheError };
}

function parseJson(text: string, what: string): unknown {
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new EarshotError(`${what} is not valid JSON (${e instanceof Error ? e.message : String(e)}); pick the file from the model's folder.`, 'bad-json');
  }
}
