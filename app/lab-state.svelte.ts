/**
 * The lab page's state and the steps a researcher takes: load a model, set two clips,
 * prepare the pair (transcripts, target/foil), run an experiment, share it. Every
 * number comes from the engine worker (lab/ on the loaded model); this class only
 * sequences requests, keeps their answers and saves them (IndexedDB) so a reload
 * loses nothing. Big answers are $state.raw: replaced, never deep-proxied.
 */
import type { BackendName } from '../models/backend.ts';
import type { MelImage, ModelInfo, ModelSource, PairReport, ProgressPayload, TargetChoiceInput } from '../workers/protocol.ts';
import type { PatchResult } from '../lab/sweep.ts';
import { demoSource } from './catalog.ts';
import { fromPcm16, secondsOf, toPcm16, type LabClip } from './clip.ts';
import { EngineClient, EngineError, isCancelled } from './engine-client.svelte.ts';
import { DEFAULT_SETTINGS, SettingsSchema, hooksOf, sweepSpecs, type Settings } from './experiment.ts';
import { pairPreset, presetClipUrl } from './presets.ts';
import type { ExperimentResults } from './results.ts';
import { clipRef, pcmFromBase64, shareUrl, type ClipRef, type ModelRef, type Preset } from './share.ts';
import { loadSession, saveSession } from './store.ts';
import { decodeClip } from './audio.ts';

export type Which = 'clean' | 'corrupt';

export interface RunProgress {
  stage: string;
  done: number;
  total: number;
  /** Which of the run's steps is running (1-based) and how many there are. */
  step: number;
  steps: number;
}

/** Transcript tokens scored by listen-vs-guess (each costs two full decoder passes over the vocabulary). */
export const LISTEN_TOKENS = 8;

/** How often a running sweep's streamed results are saved (IndexedDB), at most. */
const STREAM_SAVE_MS = 2000;

const messageOf = (e: unknown) => (e instanceof Error ? e.message : String(e));

export class LabState {
  readonly engine: EngineClient;
  error = $state<string | null>(null);
  notice = $state<string | null>(null);

  model = $state.raw<ModelInfo | null>(null);
  /** How the loaded model can be named in a share link (null: local files, not shareable). */
  modelRef = $state.raw<ModelRef | null>(null);
  loadProgress = $state.raw<ProgressPayload | null>(null);

  clips = $state.raw<{ clean: LabClip | null; corrupt: LabClip | null }>({ clean: null, corrupt: null });
  mels = $state.raw<{ clean: MelImage | null; corrupt: MelImage | null }>({ clean: null, corrupt: null });

  pair = $state.raw<PairReport | null>(null);
  preparing = $state(false);
  /** The prefix/target/foil to use (from the pair, a click, a link or the saved session). */
  choice = $state.raw<TargetChoiceInput | null>(null);

  settings = $state.raw<Settings>(DEFAULT_SETTINGS);
  results = $state.raw<ExperimentResults | null>(null);
  /** Sweep results streamed so far by the running sweep (partial heatmap). */
  streaming = $state.raw<PatchResult[]>([]);
  running = $state.raw<RunProgress | null>(null);

  #runToken = 0;
  /** The run the user cancelled (its token). */
  #cancelledRun = -1;
  #prepareToken = 0;
  /** Run the experiment as soon as the pair is ready (a share link was opened). */
  #autoRun = false;

  constructor(backend?: BackendName) {
    this.engine = new EngineClient({
      backend,
      onRestart: (message) => {
        this.model = null;
        this.pair = null;
        this.loadProgress = null;
        this.running = null;
        this.preparing = false;
        this.error = message;
      },
      onBackendChange: (report) => {
        // Said once, here: why everything from now on is slower.
        this.notice = `${report.reason.charAt(0).toUpperCase()}${report.reason.slice(1)}; finished results are kept and the run carries on.`;
        if (this.running && this.results) this.results = { ...this.results, backend: `${this.results.backend} → ${report.name} (GPU lost)` };
      },
    });
  }

  dispose(): void {
    this.engine.dispose();
  }

  // ───────────────────────────── start ─────────────────────────────

  /** Restores the saved session, or applies a share link's preset when there is one. */
  async start(preset: Preset | null): Promise<void> {
    try {
      if (preset) {
        await this.applyPreset(preset);
      } else {
        const saved = await loadSession();
        if (saved) {
          // Saved by an older Earshot, settings may not fit today's schema: then the defaults.
          const settings = SettingsSchema.safeParse(saved.settings);
          this.settings = settings.success ? settings.data : DEFAULT_SETTINGS;
          this.choice = saved.choice;
          this.results = saved.results;
          // Saved while running (partial, never finished): the page went away mid-run. Show
          // what finished and offer "Run again" rather than re-running by itself: a reload is
          // often how a person stops a run that hung or froze the tab, and that must not repeat.
          if (saved.results?.partial && !saved.results.finishedAt) {
            this.results = { ...saved.results, interrupted: true, finishedAt: saved.savedAt, streamed: undefined };
            if (!saved.results.bins && saved.results.streamed) this.streaming = saved.results.streamed;
          }
          this.clips = saved.clips;
          for (const which of ['clean', 'corrupt'] as const) if (saved.clips[which]) void this.#melOf(which);
          if (saved.model) void this.loadModel(saved.model);
        }
      }
    } catch (e) {
      this.error = messageOf(e);
    }
  }

  async applyPreset(p: Preset): Promise<void> {
    this.results = null;
    this.settings = p.settings;
    this.choice = p.choice;
    this.#autoRun = true;
    const modelLoad = this.loadModel(p.model);
    const clean = await this.#clipFromRef(p.clips.clean, 'clean', null);
    const corrupt = await this.#clipFromRef(p.clips.corrupt, 'corrupt', clean);
    this.clips = { clean, corrupt };
    void this.#melOf('clean');
    void this.#melOf('corrupt');
    await modelLoad;
    await this.prepare(p.choice);
  }

  async #clipFromRef(ref: ClipRef, which: Which, clean: LabClip | null): Promise<LabClip> {
    switch (ref.kind) {
      case 'preset':
        return this.#presetClip(ref.id, ref.which);
      case 'pcm16':
        return { origin: { kind: 'shared' }, label: ref.label || `${which} clip`, pcm: pcmFromBase64(ref.data) };
      case 'white-noise': {
        if (!clean) throw new Error('White noise needs a clean clip to match.');
        return this.#whiteNoise(clean, ref.seed);
      }
    }
  }

  // ───────────────────────────── model ─────────────────────────────

  async loadModel(ref: ModelRef | ModelSource): Promise<void> {
    const source: ModelSource = 'kind' in ref ? (ref.kind === 'demo' ? demoSource() : { type: 'hub', repo: ref.repo, revision: ref.revision }) : ref;
    const refOf = (s: ModelSource): ModelRef | null => (s.type === 'demo' ? { kind: 'demo' } : s.type === 'hub' ? { kind: 'hub', repo: s.repo.trim(), revision: s.revision.trim() || 'main' } : null);
    this.error = null;
    this.loadProgress = { done: 0, total: 0, stage: 'Starting' };
    try {
      this.model = await this.engine.loadModel(source, (p) => (this.loadProgress = p));
      if (this.model.cacheError) this.notice = `${this.model.label} is loaded, but it could not be kept in the browser cache (${this.model.cacheError}), so it will be downloaded again next time.`;
      this.modelRef = refOf(source);
      this.pair = null;
      this.#persist();
      for (const which of ['clean', 'corrupt'] as const) if (this.clips[which]) void this.#melOf(which);
      if (this.clips.clean && this.clips.corrupt) await this.prepare(this.choice);
    } catch (e) {
      if (!isCancelled(e)) this.error = this.model ? `${messageOf(e)} (${this.model.label} is still loaded.)` : messageOf(e);
    } finally {
      this.loadProgress = null;
    }
  }

  // ───────────────────────────── clips ─────────────────────────────

  async setClip(which: Which, clip: LabClip): Promise<void> {
    this.clips = { ...this.clips, [which]: clip };
    this.mels = { ...this.mels, [which]: null };
    this.pair = null;
    this.results = null;
    this.choice = null;
    // The "white-noise audio" corruption and a white-noise corrupted clip go together.
    if (which === 'corrupt') {
      const noise = clip.origin.kind === 'white-noise';
      if (noise !== (this.settings.corruption === 'white-noise')) this.settings = { ...this.settings, corruption: noise ? 'white-noise' : 'pair' };
    }
    void this.#melOf(which);
    // White noise follows the clean clip it imitates.
    if (which === 'clean' && this.clips.corrupt?.origin.kind === 'white-noise') {
      await this.setClip('corrupt', await this.#whiteNoise(clip, this.clips.corrupt.origin.seed));
      return;
    }
    this.#persist();
    if (this.model && this.clips.clean && this.clips.corrupt) await this.prepare(null);
  }

  async usePresetPair(id: string): Promise<void> {
    try {
      const [clean, corrupt] = await Promise.all([this.#presetClip(id, 'clean'), this.#presetClip(id, 'corrupt')]);
      this.clips = { clean, corrupt: null };
      if (this.settings.corruption === 'white-noise') this.settings = { ...this.settings, corruption: 'pair' };
      await this.setClip('corrupt', corrupt);
      void this.#melOf('clean');
    } catch (e) {
      this.error = messageOf(e);
    }
  }

  async useWhiteNoise(): Promise<void> {
    if (!this.clips.clean) {
      this.error = 'Set the clean clip first: the white noise copies its length and loudness.';
      return;
    }
    try {
      await this.setClip('corrupt', await this.#whiteNoise(this.clips.clean, 0));
    } catch (e) {
      this.error = messageOf(e);
    }
  }

  async #presetClip(id: string, which: Which): Promise<LabClip> {
    const preset = pairPreset(id);
    if (!preset) throw new Error(`There is no built-in pair "${id}".`);
    const url = presetClipUrl(id, which, document.baseURI);
    const response = await fetch(url).catch(() => null);
    if (!response?.ok) throw new Error(`The built-in clip "${preset[which]}" is not on this site (${response ? `HTTP ${response.status}` : 'network error'}); choose an audio file instead.`);
    const decoded = await decodeClip(await response.arrayBuffer(), `${preset[which]}.wav`, 'audio/wav');
    URL.revokeObjectURL(decoded.playUrl);
    return { origin: { kind: 'preset', id, which }, label: preset[which], pcm: toPcm16(decoded.samples) };
  }

  async #whiteNoise(clean: LabClip, seed: number): Promise<LabClip> {
    const r = await this.engine.request('white-noise', { samples: fromPcm16(clean.pcm).buffer as ArrayBuffer, seed });
    return { origin: { kind: 'white-noise', seed }, label: `white noise like “${clean.label}”`, pcm: toPcm16(new Float32Array(r.samples)) };
  }

  async #melOf(which: Which): Promise<void> {
    const clip = this.clips[which];
    if (!clip) return;
    try {
      const image = await this.engine.request('logmel', { samples: fromPcm16(clip.pcm).buffer as ArrayBuffer }, { view: `logmel-${which}` });
      if (this.clips[which] === clip) this.mels = { ...this.mels, [which]: image };
    } catch (e) {
      if (!isCancelled(e)) this.error = messageOf(e);
    }
  }

  // ───────────────────────────── pair and target ─────────────────────────────

  /** Transcribes both clips and creates the lab (with `choice`, or the first differing token). */
  async prepare(choice: TargetChoiceInput | null): Promise<void> {
    const { clean, corrupt } = this.clips;
    if (!this.model || !clean || !corrupt) return;
    const token = ++this.#prepareToken;
    this.preparing = true;
    this.error = null;
    try {
      const a = fromPcm16(clean.pcm);
      const b = fromPcm16(corrupt.pcm);
      const payload = { clean: a.buffer as ArrayBuffer, corrupt: b.buffer as ArrayBuffer, ...(choice ? { choice } : {}) };
      const pair = await this.engine.request('prepare-pair', payload, { view: 'prepare', transfer: [a.buffer, b.buffer] });
      if (token !== this.#prepareToken) return;
      this.pair = pair;
      this.choice = pair.lab?.choice ?? null;
      this.#persist();
      if (this.#autoRun && pair.lab) {
        this.#autoRun = false;
        void this.run();
      }
    } catch (e) {
      if (!isCancelled(e)) this.error = messageOf(e);
    } finally {
      if (token === this.#prepareToken) this.preparing = false;
    }
  }

  async setChoice(choice: TargetChoiceInput): Promise<void> {
    if (!this.pair) return;
    this.error = null;
    try {
      const lab = await this.engine.request('set-target', { choice }, { view: 'prepare' });
      this.pair = { ...this.pair, lab, choiceError: null };
      this.choice = lab.choice;
      this.#persist();
    } catch (e) {
      if (!isCancelled(e)) this.error = messageOf(e);
    }
  }

  /** A typed word (first token) or, without a tokenizer, a token id. */
  async tokenOf(text: string): Promise<number> {
    const t = text.trim();
    if (/^\d+$/.test(t)) return Number(t);
    if (!this.model?.hasTokenizer) throw new Error('This model has no tokenizer: type a token id (a number).');
    // Words inside a transcript carry their leading space (" bat"), so a typed word does too.
    return (await this.engine.request('tokenize', { text: ` ${t}` })).tokens[0];
  }

  // ───────────────────────────── experiment ─────────────────────────────

  setSettings(next: Settings): void {
    const wasNoise = this.settings.corruption === 'white-noise';
    this.settings = next;
    this.#persist();
    if (next.corruption === 'white-noise' && !wasNoise && this.clips.corrupt?.origin.kind !== 'white-noise') void this.useWhiteNoise();
  }

  /** Runs the sweeps and the analyses, one request after another, streaming into `results`. */
  async run(): Promise<void> {
    const pair = this.pair;
    const model = this.model;
    if (!pair?.lab || !model || !this.clips.clean || !this.clips.corrupt) return;
    this.cancel();
    const token = ++this.#runToken;
    const s = this.settings;
    const shape = { encoderLayers: model.summary.encoderLayers, decoderLayers: model.summary.decoderLayers };
    const specs = sweepSpecs(s, shape, pair.encoderPositions);
    const results: ExperimentResults = {
      model: { label: model.label, randomWeights: model.randomWeights },
      backend: this.engine.backend?.name ?? 'unknown',
      clips: { clean: this.clips.clean.label, corrupt: this.clips.corrupt.label, seconds: [secondsOf(this.clips.clean), secondsOf(this.clips.corrupt)] },
      lab: pair.lab,
      transcript: { tokens: pair.clean.tokens, pieces: pair.clean.pieces },
      settings: s,
      encoderPositions: pair.encoderPositions,
      bins: null,
      layers: null,
      grounding: null,
      listen: null,
      lens: null,
      attention: null,
      attribution: null,
      finishedAt: 0,
      partial: true,
    };
    // A run that fails or is cancelled before its first step finishes leaves the last
    // finished results in place rather than an empty chart.
    const previous = this.results && !this.results.partial ? this.results : null;
    let finishedSteps = 0;
    this.results = results;
    this.streaming = [];
    this.error = null;
    this.notice = null;
    type Step = { stage: string; go: () => Promise<void> };
    let savedAt = 0;
    const onProgress = (p: ProgressPayload) => {
      if (token !== this.#runToken || !this.running) return;
      if (p.results?.length) {
        this.streaming = [...this.streaming, ...p.results];
        // The first sweep's partial heatmap survives a reload too (saved at its first results,
        // then every few seconds).
        if (!this.results?.bins && Date.now() - savedAt > STREAM_SAVE_MS) {
          savedAt = Date.now();
          this.#persist();
        }
      }
      this.running = { ...this.running, stage: p.stage, done: p.done, total: p.total };
    };
    const set = (patch: Partial<ExperimentResults>) => {
      if (token === this.#runToken) this.results = { ...this.results!, ...patch };
    };
    const steps: Step[] = [
      { stage: 'Patching time bins', go: async () => set({ bins: await this.engine.request('sweep', { spec: specs.bins }, { view: 'run', onProgress }) }) },
      {
        stage: 'Patching whole layers',
        go: async () => {
          this.streaming = [];
          set({ layers: await this.engine.request('sweep', { spec: specs.layers }, { view: 'run', onProgress }) });
        },
      },
      { stage: 'Grounding coefficient', go: async () => set({ grounding: await this.engine.request('grounding', { metric: s.metric }, { view: 'run' }) }) },
      { stage: 'Listen vs guess along the transcript', go: async () => set({ listen: await this.engine.request('listen-vs-guess', { maxTokens: LISTEN_TOKENS }, { view: 'run' }) }) },
      { stage: 'Logit lens and encoder lens', go: async () => set({ lens: await this.engine.request('lens', {}, { view: 'run' }) }) },
      { stage: 'Cross-attention patterns', go: async () => set({ attention: await this.engine.request('attention', {}, { view: 'run' }) }) },
    ];
    if (s.attribution) {
      steps.push({
        stage: 'Attribution patching',
        go: async () => set({ attribution: await this.engine.request('attribution', { hooks: hooksOf(s, shape), topK: 12, encoderRange: [0, pair.encoderPositions] }, { view: 'run' }) }),
      });
    }
    try {
      for (let i = 0; i < steps.length; i++) {
        if (token !== this.#runToken) return;
        // A cancel that arrived between two requests stops the run before the next one.
        if (this.#cancelledRun === token) throw new EngineError('The run was cancelled.', 'cancelled');
        this.running = { stage: steps[i].stage, done: 0, total: 0, step: i + 1, steps: steps.length };
        await steps[i].go();
        finishedSteps++;
        // Each finished step is saved at once: a reload or a crash keeps it.
        if (token === this.#runToken) this.#persist();
      }
      set({ partial: false, finishedAt: Date.now() });
    } catch (e) {
      if (token === this.#runToken) {
        if (isCancelled(e)) this.notice = 'The run was cancelled; the charts show what finished before.';
        else this.error = messageOf(e);
        if (finishedSteps === 0 && previous) this.results = previous;
        else set({ finishedAt: Date.now() });
      }
    } finally {
      if (token === this.#runToken) {
        this.running = null;
        this.streaming = [];
        this.#persist();
      }
    }
  }

  cancel(): void {
    if (!this.running) return;
    this.#cancelledRun = this.#runToken;
    this.engine.cancel('run');
  }

  // ───────────────────────────── share and save ─────────────────────────────

  preset(): Preset {
    const { clean, corrupt } = this.clips;
    if (!clean || !corrupt) throw new Error('Set both clips before sharing.');
    if (!this.model) throw new Error('Load a model before sharing: the link names the model its numbers come from.');
    if (!this.modelRef) throw new Error('A model loaded from local files cannot be shared in a link; load the demo model or a Hugging Face model.');
    return { v: 1, model: this.modelRef, clips: { clean: clipRef(clean), corrupt: clipRef(corrupt) }, choice: this.choice, settings: this.settings };
  }

  shareLink(): string {
    return shareUrl(location.href, this.preset());
  }

  #persist(): void {
    const streamed = this.running && this.results && !this.results.bins && this.streaming.length ? this.streaming : undefined;
    void saveSession({
      model: this.modelRef,
      clips: this.clips,
      choice: this.choice,
      settings: this.settings,
      results: streamed && this.results ? { ...this.results, streamed } : this.results,
      savedAt: Date.now(),
    }).then((problem) => {
      if (problem) this.notice = problem;
    });
  }
}
