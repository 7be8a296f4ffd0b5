/**
 * Plotly figures from lab results: pure functions from what the lab computed to traces
 * and layouts, nothing recomputed. Text that reaches plotly (token pieces) is escaped,
 * since plotly reads a few HTML tags in labels.
 */
import type { Data, Layout } from 'plotly.js-dist-min';
import type { PatchResult, SweepResult } from '../../lab/sweep.ts';
import type { MelImage } from '../../workers/protocol.ts';
import { COMPONENT_LABELS, ENCODER_MS, type Component } from '../experiment.ts';
import type { ExperimentResults } from '../results.ts';

export interface Figure {
  data: Data[];
  layout: Partial<Layout>;
  /** The numbers drawn, for the data attribute and tests. */
  values: unknown;
  height: number;
}

const DIVERGING: [number, string][] = [
  [0, '#2c5f99'],
  [0.5, '#f7f7f4'],
  [1, '#b2382c'],
];

/** Plotly renders a few HTML tags inside labels; show token text literally. */
export function plotText(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

export function tokenLabel(id: number, piece: string | null | undefined): string {
  return piece == null ? `#${id}` : plotText(JSON.stringify(piece).slice(1, -1));
}

const fmt = (x: number) => (Number.isFinite(x) ? x.toFixed(4) : String(x));

/** Which component a hook name belongs to, and its layer. */
export function componentOf(hook: string): { stack: 'encoder' | 'decoder'; layer: number; component: Component } | null {
  const m = /^(encoder|decoder)\.blocks\.(\d+)\.(.+)$/.exec(hook);
  if (!m) return null;
  const point = m[3];
  const table: Record<string, Component> = {
    hook_resid_pre: 'resid_pre',
    hook_attn_out: 'attn_out',
    hook_self_attn_out: 'attn_out',
    hook_cross_attn_out: 'cross_attn_out',
    hook_mlp_out: 'mlp_out',
    hook_resid_post: 'resid_post',
    'attn.hook_z': 'attn_z',
    'self_attn.hook_z': 'attn_z',
    'cross_attn.hook_z': 'cross_z',
  };
  const component = table[point];
  return component ? { stack: m[1] as 'encoder' | 'decoder', layer: Number(m[2]), component } : null;
}

function melTrace(mel: MelImage, yaxis: string, name: string): Data {
  const m = new Float32Array(mel.mel);
  const z: number[][] = [];
  for (let b = 0; b < mel.nMels; b++) z.push(Array.from(m.subarray(b * mel.frames, (b + 1) * mel.frames)));
  const x = Array.from({ length: mel.frames }, (_, f) => (f + 0.5) * 0.01);
  return { type: 'heatmap', z, x, yaxis, xaxis: 'x', colorscale: 'Viridis', showscale: false, name, hovertemplate: `${name}<br>t %{x:.3f} s<br>mel bin %{y}<br>%{z:.3f}<extra></extra>` } as Data;
}

/** Splits the vertical space into rows (top first), with a small gap. */
function rowDomains(weights: number[]): [number, number][] {
  const gap = 0.04;
  const total = weights.reduce((a, b) => a + b, 0);
  const free = 1 - gap * (weights.length - 1);
  let top = 1;
  return weights.map((w) => {
    const h = (w / total) * free;
    const d: [number, number] = [Math.max(0, top - h), top];
    top -= h + gap;
    return d;
  });
}

const effectHover = (what: string) => `${what}<br>%{customdata}<br>effect %{z:.4f}<extra></extra>`;

/**
 * Encoder layer × time heatmaps, one per component, under the clips' spectrograms on the
 * same time axis (seconds). Bins are drawn at their true extent (x = start, width).
 */
export function encoderHeatmap(results: PatchResult[], mels: { clean: MelImage | null; corrupt: MelImage | null }, encoderLayers: number, title: string): Figure | null {
  const enc = results.filter((r) => r.hook.startsWith('encoder.blocks.') && r.head === null && r.position !== null);
  const byComponent = new Map<Component, PatchResult[]>();
  for (const r of enc) {
    const c = componentOf(r.hook);
    if (!c) continue;
    byComponent.set(c.component, [...(byComponent.get(c.component) ?? []), r]);
  }
  if (byComponent.size === 0) return null;
  const specs = [mels.clean, mels.corrupt].filter((m): m is MelImage => m !== null);
  const rows = [...specs.map(() => 1.2), ...[...byComponent.keys()].map(() => Math.max(1, encoderLayers * 0.45))];
  const domains = rowDomains(rows);
  const data: Data[] = [];
  const layout: Partial<Layout> & Record<string, unknown> = {
    title: { text: title, font: { size: 14 } },
    xaxis: { title: { text: 'time (s)' }, anchor: (rows.length === 1 ? 'y' : `y${rows.length}`) as 'y', zeroline: false },
    showlegend: false,
  };
  let row = 0;
  specs.forEach((m, i) => {
    const axis = row === 0 ? 'y' : `y${row + 1}`;
    data.push(melTrace(m, axis, i === 0 && mels.clean ? 'clean log-mel' : 'corrupted log-mel'));
    layout[`yaxis${row === 0 ? '' : row + 1}`] = { domain: domains[row], title: { text: i === 0 && mels.clean ? 'clean' : 'corrupted', font: { size: 11 } }, showticklabels: false };
    row++;
  });
  const values: Record<string, { layer: number; start: number; end: number; effect: number }[]> = {};
  for (const [component, rs] of byComponent) {
    const axis = `y${row + 1}`;
    const layers = [...new Set(rs.map((r) => componentOf(r.hook)!.layer))].sort((a, b) => a - b);
    const starts = [...new Set(rs.map((r) => r.position!))].sort((a, b) => a - b);
    const z = layers.map((l) => starts.map((s) => rs.find((r) => componentOf(r.hook)!.layer === l && r.position === s)?.effect ?? null));
    const custom = layers.map((l) => starts.map((s) => {
      const r = rs.find((x) => componentOf(x.hook)!.layer === l && x.position === s);
      const end = r?.positionEnd ?? s + 1;
      return r ? `layer ${l} · ${(s * ENCODER_MS) / 1000}–${(end * ENCODER_MS) / 1000} s · value ${fmt(r.value)}` : '';
    }));
    // Bin edges: x are the bin centres, in seconds.
    const x = starts.map((s) => {
      const end = rs.find((r) => r.position === s)?.positionEnd ?? s + 1;
      return ((s + end) / 2) * (ENCODER_MS / 1000);
    });
    data.push({
      type: 'heatmap',
      z,
      x,
      y: layers,
      yaxis: axis,
      xaxis: 'x',
      customdata: custom,
      colorscale: DIVERGING,
      zmid: 0,
      colorbar: { title: { text: 'effect' }, len: 0.5, y: 0.25 },
      showscale: row === specs.length,
      hovertemplate: effectHover(plotText(COMPONENT_LABELS[component])),
      xgap: 1,
      ygap: 1,
    } as Data);
    layout[`yaxis${row + 1}`] = { domain: domains[row], title: { text: `${component}<br>layer`, font: { size: 11 } }, dtick: 1, autorange: true };
    values[component] = rs.map((r) => ({ layer: componentOf(r.hook)!.layer, start: r.position!, end: r.positionEnd ?? r.position! + 1, effect: r.effect }));
    row++;
  }
  return { data, layout, values, height: 150 + rows.reduce((a, b) => a + b, 0) * 90 };
}

/** Decoder layer × token heatmaps, one per component. */
export function decoderHeatmap(r: SweepResult, prefixLabels: string[], title: string): Figure | null {
  const dec = r.results.filter((x) => x.hook.startsWith('decoder.blocks.') && x.head === null && x.position !== null);
  const byComponent = new Map<Component, PatchResult[]>();
  for (const x of dec) {
    const c = componentOf(x.hook);
    if (c) byComponent.set(c.component, [...(byComponent.get(c.component) ?? []), x]);
  }
  if (byComponent.size === 0) return null;
  const comps = [...byComponent.keys()];
  const domains = rowDomains(comps.map(() => 1));
  const data: Data[] = [];
  const layout: Partial<Layout> & Record<string, unknown> = {
    title: { text: title, font: { size: 14 } },
    xaxis: { title: { text: 'decoder position (token the model reads)' }, anchor: (comps.length === 1 ? 'y' : `y${comps.length}`) as 'y', tickmode: 'array', tickvals: prefixLabels.map((_, i) => i), ticktext: prefixLabels },
    showlegend: false,
  };
  const values: Record<string, { layer: number; position: number; effect: number }[]> = {};
  comps.forEach((component, i) => {
    const rs = byComponent.get(component)!;
    const layers = [...new Set(rs.map((x) => componentOf(x.hook)!.layer))].sort((a, b) => a - b);
    const positions = [...new Set(rs.map((x) => x.position!))].sort((a, b) => a - b);
    const z = layers.map((l) => positions.map((p) => rs.find((x) => componentOf(x.hook)!.layer === l && x.position === p)?.effect ?? null));
    const custom = layers.map((l) => positions.map((p) => `layer ${l} · position ${p} (${prefixLabels[p] ?? ''})`));
    data.push({ type: 'heatmap', z, x: positions, y: layers, yaxis: i === 0 ? 'y' : `y${i + 1}`, xaxis: 'x', customdata: custom, colorscale: DIVERGING, zmid: 0, showscale: i === 0, colorbar: { title: { text: 'effect' } }, hovertemplate: effectHover(plotText(COMPONENT_LABELS[component])), xgap: 1, ygap: 1 } as Data);
    layout[`yaxis${i === 0 ? '' : i + 1}`] = { domain: domains[i], title: { text: `${component}<br>layer`, font: { size: 11 } }, dtick: 1 };
    values[component] = rs.map((x) => ({ layer: componentOf(x.hook)!.layer, position: x.position!, effect: x.effect }));
  });
  return { data, layout, values, height: 120 + comps.length * 110 };
}

/** Effect of patching each whole layer (every clip position at once), one line per component. */
export function perLayer(r: SweepResult, title: string): Figure {
  const rows = r.results.map((x) => ({ ...componentOf(x.hook)!, hook: x.hook, effect: x.effect, value: x.value })).filter((x) => x.component);
  const order = (x: { stack: string; layer: number }) => (x.stack === 'encoder' ? 0 : 1000) + x.layer;
  const cats = [...new Set(rows.sort((a, b) => order(a) - order(b)).map((x) => `${x.stack === 'encoder' ? 'enc' : 'dec'} ${x.layer}`))];
  const comps = [...new Set(rows.map((x) => x.component))];
  const data: Data[] = comps.map((c) => {
    const pts = rows.filter((x) => x.component === c);
    return {
      type: 'scatter',
      mode: 'lines+markers',
      name: COMPONENT_LABELS[c],
      x: pts.map((x) => `${x.stack === 'encoder' ? 'enc' : 'dec'} ${x.layer}`),
      y: pts.map((x) => x.effect),
      customdata: pts.map((x) => `${x.hook}<br>metric ${fmt(x.value)}`),
      hovertemplate: '%{customdata}<br>effect %{y:.4f}<extra></extra>',
    } as Data;
  });
  return {
    data,
    layout: { title: { text: title, font: { size: 14 } }, xaxis: { type: 'category', categoryorder: 'array', categoryarray: cats, title: { text: 'layer' } }, yaxis: { title: { text: 'effect' }, zeroline: true }, legend: { orientation: 'h', y: -0.25 } },
    values: rows.map((x) => ({ hook: x.hook, effect: x.effect })),
    height: 340,
  };
}

export function groundingChart(g: NonNullable<ExperimentResults['grounding']>, title: string): Figure {
  const labels = [...g.layers.map((l) => `dec ${l.layer}`), 'overall'];
  const pts = [...g.layers, g.overall];
  const custom = pts.map((p) => `A ${fmt(p.A)} · T ${fmt(p.T)} · A/T ${fmt(p.ratio)}`);
  return {
    data: [
      { type: 'bar', name: 'GC', x: labels, y: pts.map((p) => (Number.isFinite(p.gc) ? p.gc : null)), customdata: custom, marker: { color: pts.map((_, i) => (i === pts.length - 1 ? '#2d5b86' : '#8fb0cf')) }, hovertemplate: '%{x}<br>GC %{y:.4f}<br>%{customdata}<extra></extra>' } as Data,
    ],
    layout: { title: { text: title, font: { size: 14 } }, yaxis: { title: { text: 'GC = A / (|A| + |T|)' }, range: [-1.05, 1.05], zeroline: true }, xaxis: { type: 'category' } },
    values: { layers: g.layers, overall: g.overall },
    height: 300,
  };
}

export function listenChart(points: NonNullable<ExperimentResults['listen']>, pieces: (string | null)[], title: string): Figure {
  const labels = points.map((p, i) => `${i}: ${tokenLabel(p.token, pieces[i])}`);
  return {
    data: [
      { type: 'bar', name: 'GC', x: labels, y: points.map((p) => (Number.isFinite(p.gc) ? p.gc : null)), customdata: points.map((p) => `A ${fmt(p.A)} · T ${fmt(p.T)} · A/T ${fmt(p.ratio)}<br>clean log-prob ${fmt(p.clean)} · corrupted ${fmt(p.corrupt)}`), marker: { color: '#5f8f6a' }, hovertemplate: '%{x}<br>GC %{y:.4f}<br>%{customdata}<extra></extra>' } as Data,
    ],
    layout: { title: { text: title, font: { size: 14 } }, yaxis: { title: { text: 'GC (per token)' }, range: [-1.05, 1.05] }, xaxis: { type: 'category', title: { text: 'clean transcript token' } } },
    values: points,
    height: 300,
  };
}

export function lensChart(lens: NonNullable<ExperimentResults['lens']>, target: string, foil: string, title: string): Figure {
  const trace = (r: typeof lens.logit, name: string, xaxis: string, yaxis: string, what: 'targetProb' | 'foilProb', color: string, dash: string): Data => ({
    type: 'scatter',
    mode: 'lines+markers',
    name: `${name}: ${what === 'targetProb' ? `P(${target})` : `P(${foil})`}`,
    x: r.layers.map((l) => (l.layer < 0 ? 'embed' : `${l.layer}`)),
    y: r.layers.map((l) => l[what]),
    customdata: r.layers.map((l) => `logit diff ${fmt(l.logitDiff)} · top-1 #${l.top[0]?.token} (${fmt(l.top[0]?.prob ?? NaN)})`),
    xaxis,
    yaxis,
    line: { color, dash },
    hovertemplate: `${name} layer %{x}<br>%{y:.4f}<br>%{customdata}<extra></extra>`,
  }) as Data;
  return {
    data: [
      trace(lens.logit, 'logit lens', 'x', 'y', 'targetProb', '#2d5b86', 'solid'),
      trace(lens.logit, 'logit lens', 'x', 'y', 'foilProb', '#b2382c', 'dot'),
      trace(lens.encoder, 'encoder lens', 'x2', 'y2', 'targetProb', '#2d5b86', 'solid'),
      trace(lens.encoder, 'encoder lens', 'x2', 'y2', 'foilProb', '#b2382c', 'dot'),
    ],
    layout: {
      title: { text: title, font: { size: 14 } },
      grid: { rows: 1, columns: 2, pattern: 'independent' },
      xaxis: { title: { text: 'decoder layer (logit lens)' }, type: 'category' },
      xaxis2: { title: { text: 'encoder layer (encoder lens)' }, type: 'category' },
      yaxis: { title: { text: 'probability' }, rangemode: 'tozero' },
      yaxis2: { rangemode: 'tozero' },
      legend: { orientation: 'h', y: -0.3 },
    },
    values: { logit: lens.logit, encoder: lens.encoder },
    height: 340,
  };
}

/** Cross-attention weights at the target position, per layer and head, under the spectrogram. */
export function attentionChart(a: NonNullable<ExperimentResults['attention']>, mel: MelImage | null, positions: number, title: string): Figure {
  const n = Math.min(positions, a.positions);
  const weights = new Float32Array(a.weights);
  const rows: number[][] = [];
  const labels: string[] = [];
  for (let l = 0; l < a.layers; l++) {
    for (let h = 0; h < a.heads; h++) {
      const at = (l * a.heads + h) * a.positions;
      rows.push(Array.from(weights.subarray(at, at + n)));
      labels.push(`L${l} H${h}`);
    }
  }
  const x = Array.from({ length: n }, (_, p) => ((p + 0.5) * ENCODER_MS) / 1000);
  const domains = rowDomains(mel ? [1, Math.max(1, rows.length * 0.25)] : [1]);
  const data: Data[] = [];
  const layout: Partial<Layout> & Record<string, unknown> = { title: { text: title, font: { size: 14 } }, xaxis: { title: { text: 'time (s)' }, anchor: mel ? 'y2' : 'y' }, showlegend: false };
  if (mel) {
    data.push(melTrace(mel, 'y', 'clean log-mel'));
    layout.yaxis = { domain: domains[0], showticklabels: false, title: { text: 'clean', font: { size: 11 } } };
  }
  data.push({ type: 'heatmap', z: rows, x, y: labels, xaxis: 'x', yaxis: mel ? 'y2' : 'y', colorscale: 'Blues', hovertemplate: '%{y} · t %{x:.3f} s<br>weight %{z:.4f}<extra></extra>', colorbar: { title: { text: 'weight' } } } as Data);
  layout[mel ? 'yaxis2' : 'yaxis'] = { domain: domains[mel ? 1 : 0], type: 'category', autorange: 'reversed' };
  return { data, layout, values: { layers: a.layers, heads: a.heads, positions: n, weights: rows }, height: 200 + rows.length * 16 + (mel ? 120 : 0) };
}

export function attributionChart(a: NonNullable<ExperimentResults['attribution']>, title: string): Figure {
  const v = a.verified;
  const lo = Math.min(0, ...v.map((e) => Math.min(e.estimate, e.real ?? 0)));
  const hi = Math.max(0, ...v.map((e) => Math.max(e.estimate, e.real ?? 0)));
  return {
    data: [
      { type: 'scatter', mode: 'lines', x: [lo, hi], y: [lo, hi], line: { color: '#bbb', dash: 'dot' }, hoverinfo: 'skip', name: 'y = x' } as Data,
      {
        type: 'scatter',
        mode: 'markers',
        name: 'verified patches',
        x: v.map((e) => e.estimate),
        y: v.map((e) => e.real ?? null),
        customdata: v.map((e) => `${e.hook} @ ${e.position}`),
        marker: { size: 9, color: '#2d5b86' },
        hovertemplate: '%{customdata}<br>estimate %{x:.4f}<br>real %{y:.4f}<extra></extra>',
      } as Data,
    ],
    layout: { title: { text: title, font: { size: 14 } }, xaxis: { title: { text: 'attribution estimate (normalised)' }, zeroline: true }, yaxis: { title: { text: 'real patch effect' }, zeroline: true }, showlegend: false },
    values: { spearman: a.spearman, pearson: a.pearson, verified: v },
    height: 340,
  };
}
