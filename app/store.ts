/**
 * What survives a reload (IndexedDB, via idb): both clips, the model choice, the
 * prefix/target/foil, the settings and the last experiment's results. One record under
 * one key, written whenever any of it changes; read once at start.
 */
import { openDB, type IDBPDatabase } from 'idb';
import type { LabClip } from './clip.ts';
import type { Settings } from './experiment.ts';
import type { ExperimentResults } from './results.ts';
import type { ModelRef } from './share.ts';
import type { TargetChoiceInput } from '../workers/protocol.ts';

export interface SavedSession {
  model: ModelRef | null;
  clips: { clean: LabClip | null; corrupt: LabClip | null };
  choice: TargetChoiceInput | null;
  settings: Settings;
  results: ExperimentResults | null;
  savedAt: number;
}

const DB_NAME = 'earshot';
const STORE = 'session';
const KEY = 'last';

let db: Promise<IDBPDatabase> | null = null;

function open(): Promise<IDBPDatabase> {
  db ??= openDB(DB_NAME, 1, {
    upgrade(d) {
      d.createObjectStore(STORE);
    },
  });
  return db;
}

export async function loadSession(): Promise<SavedSession | null> {
  try {
    return ((await (await open()).get(STORE, KEY)) as SavedSession | undefined) ?? null;
  } catch (e) {
    console.warn('Earshot: could not read the saved session', e);
    return null;
  }
}

/** Saves the session; failures (private mode, quota) are reported, never thrown. */
export async function saveSession(session: SavedSession): Promise<string | null> {
  try {
    await (await open()).put(STORE, session, KEY);
    return null;
  } catch (e) {
    return `Could not save the session in this browser (${e instanceof Error ? e.message : String(e)}); it will not survive a reload.`;
  }
}
