#!/usr/bin/env python3
"""Reference values for the lab's activation-patching experiments, from Hugging Face transformers.

Loads the micro model written by make_fixtures.py, feeds it the clean / corrupt log-mels stored in
golden.safetensors, and runs patched forwards (forward hooks on the HF modules, reusing
make_fixtures.attach_hooks for the hook -> module mapping) for the experiments E1..E9 and the
pathway grounding coefficient; then the logit and encoder lenses, linear CKA between layers,
attribution patching (torch autograd), listen-vs-guess per transcript token and the input grounding
coefficient (lab/lens.ts, cka.ts, attribution.ts, grounding.ts). Writes DIR/lab.json. See
tools/reference/README.md.

Usage:
  .venv/bin/python tools/reference/make_lab_fixtures.py --dir tests/fixtures/micro
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import os
import re
import shlex
import sys
import time
import types

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import make_fixtures as mf  # noqa: E402  (sets HF_HUB_OFFLINE before transformers is imported)

import numpy as np  # noqa: E402
import torch  # noqa: E402
import transformers  # noqa: E402
import transformers.models.whisper.modeling_whisper as mw  # noqa: E402
from safetensors.numpy import load_file  # noqa: E402
from transformers import WhisperForConditionalGeneration  # noqa: E402

check = mf.check
CheckError = mf.CheckError

PREFIX = [50258, 50259, 50359, 50363]
METRICS = ["logit_diff", "logprob", "prob", "kl"]
SIG = 7  # significant digits written to lab.json


# --------------------------------------------------------------------------------------------
# Hook geometry (DESIGN.md §3 shapes, batch axis dropped)
# --------------------------------------------------------------------------------------------


def leaf(name):
    return name.rsplit(".", 1)[-1]


def pos_axis(name):
    """Axis of the hook value that positions index: frames for hook_input, q_pos for patterns."""
    if name == "encoder.hook_input" or leaf(name) == "hook_pattern":
        return 1
    return 0


def head_axis(name):
    if leaf(name) == "hook_pattern":
        return 0
    if leaf(name) in ("hook_q", "hook_k", "hook_v", "hook_z"):
        return 1
    return None


def n_heads(cfg, name):
    return cfg.encoder_attention_heads if name.startswith("encoder.") else cfg.decoder_attention_heads


def is_mid(name):
    return leaf(name) in ("hook_resid_mid", "hook_resid_mid_cross")


# --------------------------------------------------------------------------------------------
# Patching
# --------------------------------------------------------------------------------------------


class Patch:
    """Replace hook `name` at `positions` (list or None = all) and `heads` (list or None = all)
    with `source` (tensor in the DESIGN layout, broadcastable to the hook's value)."""

    def __init__(self, name, positions, heads, source):
        self.name, self.positions, self.heads, self.source = name, positions, heads, source

    def apply(self, value):
        """value: the hook's DESIGN-layout tensor (no batch axis). Returns the patched tensor:
        the selected positions x heads take the source's values exactly (torch.where)."""
        pa, ha = pos_axis(self.name), head_axis(self.name)
        check(self.heads is None or ha is not None, f"{self.name} has no head axis")
        mask = torch.ones(value.shape, dtype=torch.bool)
        for axis, sel in ((pa, self.positions), (ha, self.heads)):
            if sel is None:
                continue
            m = torch.zeros(value.shape, dtype=torch.bool)
            idx = [slice(None)] * value.dim()
            idx[axis] = torch.tensor(sel)
            m[tuple(idx)] = True
            mask &= m
        return torch.where(mask, self.source.expand(value.shape), value)


class Patcher:
    """Drop-in for make_fixtures.Recorder: make_fixtures.attach_hooks(model, patcher) registers,
    for every hook point, a forward hook / pre-hook that replaces the value when that hook is
    patched. Exceptions (the module hook would not change what flows downstream):
      - hook_pattern: replaced inside eager_attention_forward (after softmax, before @ v);
      - hook_resid_mid / hook_resid_mid_cross: replaced inside a re-implemented layer forward,
        so the patched value is both the LayerNorm input and the residual carried on;
      - encoder.hook_input: the input features are patched before the forward.
    """

    def __init__(self, model, patches, mid_ln_only=False):
        self.mid_ln_only = mid_ln_only  # only for a check: patch mid hooks as the LN input (wrong)
        self.cfg = model.config
        self.patches: dict[str, list[Patch]] = {}
        for p in patches:
            self.patches.setdefault(p.name, []).append(p)
        self.handles = []
        self.fired: dict[str, int] = {}
        self.attn_names: dict[int, str] = {}  # id(attention module) -> its "...hook_pattern" name
        self.mid_layers = []

    # --- reshaping HF values (batch 1) to the DESIGN layout and back
    def _replace(self, name, t):
        ps = self.patches.get(name)
        if not ps:
            return t
        self.fired[name] = self.fired.get(name, 0) + 1
        check(t.shape[0] == 1, f"{name}: batch {t.shape[0]}")
        v = t[0]
        lf = leaf(name)
        if lf in ("hook_q", "hook_k", "hook_v", "hook_z"):
            v = v.reshape(v.shape[0], n_heads(self.cfg, name), -1)
        for p in ps:
            v = p.apply(v)
        return v.reshape(t.shape[1:])[None].contiguous()

    # --- Recorder interface used by make_fixtures.attach_hooks
    def output(self, module, name, index=None):
        if leaf(name) == "hook_pattern":
            self.attn_names[id(module)] = name
            return
        if name not in self.patches:
            return

        def fn(_m, _args, out):
            if isinstance(out, tuple):
                i = 0 if index is None else index
                return out[:i] + (self._replace(name, out[i]),) + out[i + 1:]
            return self._replace(name, out)

        self.handles.append(module.register_forward_hook(fn))

    def input(self, module, name):
        if name not in self.patches or (is_mid(name) and not self.mid_ln_only):
            return  # mid hooks are patched by the layer wrapper

        def fn(_m, args, kwargs):
            if args:
                return (self._replace(name, args[0]),) + tuple(args[1:]), kwargs
            kwargs = dict(kwargs)
            kwargs["hidden_states"] = self._replace(name, kwargs["hidden_states"])
            return args, kwargs

        self.handles.append(module.register_forward_pre_hook(fn, with_kwargs=True))

    def remove(self):
        for h in self.handles:
            h.remove()
        self.handles = []


# --- hook_pattern: wrap eager_attention_forward -------------------------------------------------

_ORIG_EAGER = mw.eager_attention_forward
_PATTERN_CB = [None]  # callback(module, attn_weights) -> attn_weights


def patched_eager_attention_forward(module, query, key, value, attention_mask, scaling=None, dropout=0.0,
                                    **kwargs):
    """transformers 5.x modeling_whisper.eager_attention_forward, plus a callback on the softmax output."""
    if scaling is None:
        scaling = query.size(-1) ** -0.5
    attn_weights = torch.matmul(query, key.transpose(2, 3)) * scaling
    if attention_mask is not None:
        attn_weights = attn_weights + attention_mask
    attn_weights = torch.nn.functional.softmax(attn_weights, dim=-1)
    if _PATTERN_CB[0] is not None:
        attn_weights = _PATTERN_CB[0](module, attn_weights)
    attn_weights = torch.nn.functional.dropout(attn_weights, p=dropout, training=module.training)
    attn_output = torch.matmul(attn_weights, value)
    attn_output = attn_output.transpose(1, 2).contiguous()
    return attn_output, attn_weights


# --- resid_mid / resid_mid_cross: re-implemented layer forwards ---------------------------------


def encoder_layer_forward(self, hidden_states, attention_mask, **kwargs):
    """modeling_whisper.WhisperEncoderLayer.forward (eval: dropouts are identities) with a patch
    point on the residual stream after the attention residual add (hook_resid_mid)."""
    residual = hidden_states
    hidden_states = self.self_attn_layer_norm(hidden_states)
    hidden_states, _ = self.self_attn(hidden_states=hidden_states, attention_mask=attention_mask, **kwargs)
    hidden_states = residual + hidden_states
    hidden_states = self._earshot_mid(hidden_states)
    residual = hidden_states
    hidden_states = self.final_layer_norm(hidden_states)
    hidden_states = self.activation_fn(self.fc1(hidden_states))
    hidden_states = self.fc2(hidden_states)
    hidden_states = residual + hidden_states
    return hidden_states


def decoder_layer_forward(self, hidden_states, attention_mask=None, encoder_hidden_states=None,
                          encoder_attention_mask=None, past_key_values=None, use_cache=True, **kwargs):
    """modeling_whisper.WhisperDecoderLayer.forward (eval) with patch points after the self-attention
    residual add (hook_resid_mid) and after the cross-attention residual add (hook_resid_mid_cross)."""
    residual = hidden_states
    hidden_states = self.self_attn_layer_norm(hidden_states)
    hidden_states, _ = self.self_attn(hidden_states, past_key_values=past_key_values,
                                      attention_mask=attention_mask, **kwargs)
    hidden_states = residual + hidden_states
    hidden_states = self._earshot_mid(hidden_states)
    if encoder_hidden_states is not None:
        residual = hidden_states
        hidden_states = self.encoder_attn_layer_norm(hidden_states)
        hidden_states, _ = self.encoder_attn(hidden_states, key_value_states=encoder_hidden_states,
                                             attention_mask=encoder_attention_mask,
                                             past_key_values=past_key_values, **kwargs)
        hidden_states = residual + hidden_states
        hidden_states = self._earshot_mid_cross(hidden_states)
    residual = hidden_states
    hidden_states = self.final_layer_norm(hidden_states)
    hidden_states = self.activation_fn(self.fc1(hidden_states))
    hidden_states = self.fc2(hidden_states)
    hidden_states = residual + hidden_states
    return hidden_states


def wrap_layers(model, patcher):
    """Install the re-implemented forwards on every layer; returns an undo function."""
    layers = []
    for stack, mods, fwd in (("encoder", model.model.encoder.layers, encoder_layer_forward),
                             ("decoder", model.model.decoder.layers, decoder_layer_forward)):
        for i, layer in enumerate(mods):
            b = f"{stack}.blocks.{i}"
            layer._earshot_mid = (lambda n: lambda h: patcher._replace(n, h))(f"{b}.hook_resid_mid")
            if stack == "decoder":
                layer._earshot_mid_cross = (lambda n: lambda h: patcher._replace(n, h))(f"{b}.hook_resid_mid_cross")
            layer.forward = types.MethodType(fwd, layer)
            layers.append(layer)

    def undo():
        for layer in layers:
            for attr in ("forward", "_earshot_mid", "_earshot_mid_cross"):
                if attr in layer.__dict__:
                    delattr(layer, attr)

    return undo


# --- one patched forward ----------------------------------------------------------------------

N_FORWARDS = [0]


def forward(model, feats, patches=(), wrap=None, mid_ln_only=False, prefix=None, grad=False):
    """Logits at every prefix position [P, vocab] with the patches applied.
    wrap: None = re-implemented layer forwards only if a mid hook is patched; True/False forces.
    prefix: decoder input ids (default PREFIX). grad: build the autograd graph (attribution)."""
    with torch.set_grad_enabled(grad):
        return _forward(model, feats, patches, wrap, mid_ln_only, PREFIX if prefix is None else prefix)


def _forward(model, feats, patches, wrap, mid_ln_only, prefix):
    patcher = Patcher(model, patches, mid_ln_only)
    mf.attach_hooks(model, patcher)
    want_wrap = any(is_mid(p.name) for p in patches) and not mid_ln_only if wrap is None else wrap
    undo = wrap_layers(model, patcher) if want_wrap else None
    if "encoder.hook_input" in patcher.patches:
        feats = patcher._replace("encoder.hook_input", feats)

    def pattern_cb(module, w):
        name = patcher.attn_names.get(id(module))
        check(name is not None, "attention module without a hook_pattern name")
        if name in patcher.patches:
            return patcher._replace(name, w)
        return w

    _PATTERN_CB[0] = pattern_cb
    try:
        out = model(input_features=feats, decoder_input_ids=torch.tensor([prefix]), use_cache=False,
                    return_dict=True)
    finally:
        _PATTERN_CB[0] = None
        patcher.remove()
        if undo:
            undo()
    for name in patcher.patches:
        check(patcher.fired.get(name) == 1, f"patch on {name} fired {patcher.fired.get(name, 0)} times")
    N_FORWARDS[0] += 1
    return out.logits[0]


# --------------------------------------------------------------------------------------------
# Metrics and effects
# --------------------------------------------------------------------------------------------


class Metrics:
    def __init__(self, clean_logits_last, target, foil):
        self.target, self.foil = target, foil
        self.logp_clean = torch.log_softmax(clean_logits_last.to(torch.float64), -1)
        self.p_clean = self.logp_clean.exp()

    def all(self, logits_last):
        """Metrics at the last position, computed in float64 from the float32 logits."""
        x = logits_last.to(torch.float64)
        logp = torch.log_softmax(x, -1)
        return {
            "logit_diff": float(x[self.target] - x[self.foil]),
            "logprob": float(logp[self.target]),
            "prob": float(logp[self.target].exp()),
            "kl": float((self.p_clean * (self.logp_clean - logp)).sum()),
        }


def effect(direction, m_patched, m_clean, m_corrupt):
    if direction == "denoise":
        return (m_patched - m_corrupt) / (m_clean - m_corrupt)
    return (m_clean - m_patched) / (m_clean - m_corrupt)


def rnd(x):
    if x is None:
        return None
    if not math.isfinite(x):
        return None  # JSON has no inf/nan (JSON.stringify writes null for them too)
    return float(f"{x:.{SIG}g}")


# --------------------------------------------------------------------------------------------
# Experiments
# --------------------------------------------------------------------------------------------


class Lab:
    def __init__(self, model, feats, caches, metrics, base_metrics, hook_order):
        self.model, self.feats, self.caches = model, feats, caches
        self.metrics, self.base = metrics, base_metrics  # base[run][metric]
        self.order = {n: i for i, n in enumerate(hook_order)}
        self.cfg = model.config

    def source(self, name, kind, base_run):
        if kind in ("clean", "corrupt"):
            return self.caches[kind][name]
        own = self.caches[base_run][name]
        if kind == "zero":
            return torch.zeros_like(own)
        if kind == "mean":
            return own.mean(dim=pos_axis(name), keepdim=True)
        raise ValueError(kind)

    def n_pos(self, name):
        return self.caches["clean"][name].shape[pos_axis(name)]

    def variants(self, name, positions, heads):
        """[(label_position, label_position_end, head, positions list|None, heads list|None)]"""
        P = self.n_pos(name)
        if positions == "all":
            pos_groups = [(None, None, None)]
        elif positions == "each":
            pos_groups = [(p, None, [p]) for p in range(P)]
        elif isinstance(positions, dict) and "bins" in positions:
            n = positions["bins"]
            pos_groups = [(s, min(s + n, P), list(range(s, min(s + n, P)))) for s in range(0, P, n)]
        elif isinstance(positions, dict) and "list" in positions:
            pos_groups = [(None, None, list(positions["list"]))]
        else:
            raise ValueError(positions)
        if heads == "each":
            check(head_axis(name) is not None, f"{name}: heads each on a hook without heads")
            head_groups = [(h, [h]) for h in range(n_heads(self.cfg, name))]
        else:
            head_groups = [(None, None)]
        return [(lp, le, lh, pl, hl) for (lp, le, pl) in pos_groups for (lh, hl) in head_groups]

    def run(self, exp_id, direction, source, metric, positions, heads, hooks, metrics_out=None):
        base_run = "corrupt" if direction == "denoise" else "clean"
        hooks = sorted(hooks, key=self.order.__getitem__)
        results = []
        for name in hooks:
            src = self.source(name, source, base_run)
            for lp, le, lh, pl, hl in self.variants(name, positions, heads):
                logits = forward(self.model, self.feats[base_run], [Patch(name, pl, hl, src)])
                m = self.metrics.all(logits[-1])
                v = m[metric]
                e = effect(direction, v, self.base["clean"][metric], self.base["corrupt"][metric])
                results.append({"hook": name, "position": lp, "position_end": le, "head": lh,
                                "value": v, "effect": e})
        return {"id": exp_id, "direction": direction, "source": source, "metric": metric,
                "positions": positions, "heads": heads, "results": results}


def block_hooks(stack, n, suffixes):
    return [f"{stack}.blocks.{i}.{s}" for i in range(n) for s in suffixes]


# --------------------------------------------------------------------------------------------
# Lenses, CKA, attribution patching, listen-vs-guess, input grounding
# (lab/lens.ts, lab/cka.ts, lab/attribution.ts, lab/grounding.ts)
# --------------------------------------------------------------------------------------------

LENS_TOPK = 5
LENS_THRESHOLD = 0.05
CKA_ENCODER_RANGE = (0, 40)
ATTRIBUTION_PATTERNS = ["encoder.blocks.*.hook_resid_post", "decoder.blocks.*.hook_resid_pre",
                        "decoder.blocks.*.hook_cross_attn_out"]
ATTRIBUTION_TOPK = 20  # attributionPatching's default topK: candidates re-patched for real
TRANSCRIPT_LEN = 3  # per_token: the first greedy clean tokens of golden.json
INPUT_GC_CONTEXT = {"clean": [50361, 1000], "corrupt": [50361, 2000]}  # <|startofprev|> + one token, before the prompt


def expand_patterns(patterns, hook_order):
    """models/hooks.ts expandHookPatterns: '*' matches a block index; result in canonical order."""
    wanted = set()
    for pat in patterns:
        rx = re.compile("^" + r"\d+".join(re.escape(x) for x in pat.split("*")) + "$")
        hits = [n for n in hook_order if rx.match(n)]
        check(hits, f"pattern {pat} matches no hook")
        wanted.update(hits)
    return [n for n in hook_order if n in wanted and n != "hook_logits"]


def js_effect(direction, value, clean, corrupt):
    """lab/metrics.ts effectOf (NaN when clean == corrupt)."""
    span = clean - corrupt
    if span == 0:
        return float("nan")
    return (value - corrupt) / span if direction == "denoise" else (clean - value) / span


def grounding_point(A, T):
    """lab/grounding.ts groundingPoint, with JS division semantics (written as null when non-finite)."""
    den = abs(A) + abs(T)
    gc_ = float("nan") if den == 0 else A / den
    ratio = (float("nan") if A == 0 else math.copysign(float("inf"), A)) if T == 0 else A / T
    return {"A": A, "T": T, "gc": gc_, "ratio": ratio}


def rnd_tree(x):
    """rnd() on every float of a JSON-able structure."""
    if isinstance(x, dict):
        return {k: rnd_tree(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [rnd_tree(v) for v in x]
    if isinstance(x, float):
        return rnd(x)
    return x


# --- lenses -----------------------------------------------------------------------------------


def saturation_layer(top1, final, layer_ids):
    """lab/lens.ts saturationLayer: first layer from which every later layer's top-1 equals `final`."""
    frm = None
    for i in range(len(top1) - 1, -1, -1):
        if top1[i] != final:
            break
        frm = layer_ids[i]
    return frm


def critical_layer(layer_ids, target_probs, threshold):
    """lab/lens.ts criticalLayer: sum l*p / sum p over layers with p > threshold (strict); None if none."""
    num = den = 0.0
    for l, p in zip(layer_ids, target_probs):
        if p > threshold:
            num += l * p
            den += p
    return None if den == 0 else num / den


def lens_summary(kind, logits, final_logits, target, foil):
    """lab/lens.ts summarize. logits [L+1, vocab] float32 (row 0 = the embedding, layer -1);
    softmax / top-k / logit diff in float64."""
    x = logits.to(torch.float64)
    p = torch.softmax(x, -1)
    vals, idx = torch.topk(p, LENS_TOPK + 1)  # one extra, only to measure the gap to the 6th
    layers = [{"layer": i - 1,
               "top": [{"token": int(idx[i, k]), "prob": float(vals[i, k])} for k in range(LENS_TOPK)],
               "targetProb": float(p[i, target]), "foilProb": float(p[i, foil]),
               "logitDiff": float(x[i, target] - x[i, foil])} for i in range(x.shape[0])]
    final_top = int(torch.argmax(final_logits))
    ids = [l["layer"] for l in layers]
    res = {"kind": kind, "layers": layers, "finalTop": final_top,
           "saturationLayer": saturation_layer([l["top"][0]["token"] for l in layers], final_top, ids),
           "criticalLayer": critical_layer(ids, [l["targetProb"] for l in layers], LENS_THRESHOLD),
           "threshold": LENS_THRESHOLD}
    gap = float((vals[:, :-1] - vals[:, 1:]).min())  # smallest gap between consecutive top-6 probs
    margin = float((p[:, target] - LENS_THRESHOLD).abs().min())  # closest target prob to the threshold
    return res, gap, margin


@torch.no_grad()
def logit_lens_logits(model, cache):
    """decoder.hook_embed and each decoder block's resid_post at the last position, through
    decoder.layer_norm and the tied unembedding (proj_out) -> [L+1, vocab] float32."""
    nD = model.config.decoder_layers
    names = ["decoder.hook_embed"] + [f"decoder.blocks.{l}.hook_resid_post" for l in range(nD)]
    x = torch.stack([cache[n][-1] for n in names])
    return model.proj_out(model.model.decoder.layer_norm(x))


def encoder_lens_streams(model, cache):
    nE = model.config.encoder_layers
    names = ["encoder.hook_embed"] + [f"encoder.blocks.{l}.hook_resid_post" for l in range(nE)]
    with torch.no_grad():
        return [model.model.encoder.layer_norm(cache[n][None])[0] for n in names]  # ln_post only


@torch.no_grad()
def encoder_lens_logits(model, cache, prefix):
    """Each encoder layer's output through encoder.layer_norm, fed to the unchanged decoder
    (teacher-forced on prefix) -> logits at the last position [L+1, vocab] float32."""
    rows = []
    for enc in encoder_lens_streams(model, cache):
        dec = model.model.decoder(input_ids=torch.tensor([prefix]), encoder_hidden_states=enc[None], use_cache=False,
                                  return_dict=True)
        rows.append(model.proj_out(dec.last_hidden_state)[0, -1])
    return torch.stack(rows)


# --- CKA --------------------------------------------------------------------------------------


def linear_cka64(x, y):
    """lab/cka.ts linearCka in float64: ||Yc^T Xc||_F^2 / (||Xc^T Xc||_F ||Yc^T Yc||_F), centred over positions."""
    xc = x.double() - x.double().mean(0, keepdim=True)
    yc = y.double() - y.double().mean(0, keepdim=True)
    cross = (yc.T @ xc).square().sum()
    return float(cross / (torch.linalg.norm(xc.T @ xc) * torch.linalg.norm(yc.T @ yc)))


def gram_cka64(x, y):
    """The same quantity through centred Gram matrices (HSIC form), for a check."""
    xc = x.double() - x.double().mean(0, keepdim=True)
    yc = y.double() - y.double().mean(0, keepdim=True)
    K, L = xc @ xc.T, yc @ yc.T
    return float((K * L).sum() / torch.sqrt((K * K).sum() * (L * L).sum()))


def layer_cka(cache, stack, n_layers, positions):
    """lab/cka.ts layerCka: labels, symmetric matrix with an exact 1 diagonal (not computed), positions."""
    names = [f"{stack}.hook_embed"] + [f"{stack}.blocks.{l}.hook_resid_post" for l in range(n_layers)]
    lo, hi = positions
    streams = [cache[n][lo:hi] for n in names]
    matrix = [[1.0] * len(names) for _ in names]
    worst = 0.0
    for i in range(len(names)):
        for j in range(i + 1, len(names)):
            v = linear_cka64(streams[i], streams[j])
            worst = max(worst, abs(v - gram_cka64(streams[i], streams[j])))
            check(-1e-12 <= v <= 1 + 1e-12, f"CKA {names[i]} vs {names[j]} = {v} outside [0, 1]")
            matrix[i][j] = matrix[j][i] = v
    for i in range(len(names)):  # a stream against itself: 1 up to rounding
        check(abs(linear_cka64(streams[i], streams[i]) - 1) < 1e-12, f"CKA({names[i]}, itself) != 1")
    return {"stack": stack, "labels": names, "matrix": matrix, "positions": [lo, hi]}, worst


# --- attribution patching ---------------------------------------------------------------------


class DeltaPatch:
    """Adds `delta` (zeros, requires_grad) to the hook's value, like attribution.ts's `replace`
    (v => v + delta): d metric / d delta = d metric / d (hook value)."""

    def __init__(self, name, delta):
        self.name, self.delta = name, delta

    def apply(self, value):
        return value + self.delta


def attribution_grads(model, feats, cache, names, target, foil):
    """d LD / d (hook value) at every hook in `names`, from one forward + one backward on `feats`,
    LD = logit[target] - logit[foil] at the last prefix position. Returns (LD, [grad per hook])."""
    deltas = [torch.zeros_like(cache[n], requires_grad=True) for n in names]
    logits = forward(model, feats, [DeltaPatch(n, d) for n, d in zip(names, deltas)], grad=True)
    ld = logits[-1, target] - logits[-1, foil]
    grads = torch.autograd.grad(ld, deltas)
    return float(ld.detach()), [g.detach() for g in grads]


def attribution_estimates(names, caches, grads, span):
    """Per (hook, position): sum over the other axes of (a_clean - a_corrupt) * grad, / span (float64)."""
    entries = []
    for n, g in zip(names, grads):
        prod = (caches["clean"][n].double() - caches["corrupt"][n].double()) * g.double()
        pa = pos_axis(n)
        per = prod.sum(dim=[a for a in range(prod.dim()) if a != pa]) if prod.dim() > 1 else prod
        entries += [{"hook": n, "position": p, "estimate": float(v) / span} for p, v in enumerate(per.tolist())]
    return entries


def ranks(xs):
    """lab/attribution.ts ranks: ties share the mean rank."""
    order = sorted(range(len(xs)), key=lambda i: xs[i])
    r = [0.0] * len(xs)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and xs[order[j + 1]] == xs[order[i]]:
            j += 1
        for k in range(i, j + 1):
            r[order[k]] = (i + j) / 2
        i = j + 1
    return r


def pearson(a, b):
    n = len(a)
    if n < 2:
        return float("nan")
    ma, mb = sum(a) / n, sum(b) / n
    sab = sum((x - ma) * (y - mb) for x, y in zip(a, b))
    saa = sum((x - ma) ** 2 for x in a)
    sbb = sum((y - mb) ** 2 for y in b)
    return float("nan") if saa == 0 or sbb == 0 else sab / math.sqrt(saa * sbb)


# --------------------------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------------------------


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--dir", default="tests/fixtures/micro",
                   help="fixture directory: model (config.json, model.safetensors), golden.safetensors, golden.json; "
                        "lab.json is written here")
    p.add_argument("--out", default=None, help="output file (default DIR/lab.json)")
    return p.parse_args(argv)


def main(argv=None):
    a = parse_args(argv)
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    t0 = time.time()
    d = a.dir
    out_path = a.out or os.path.join(d, "lab.json")

    check(mw.eager_attention_forward is _ORIG_EAGER, "eager_attention_forward already replaced")
    mw.eager_attention_forward = patched_eager_attention_forward  # resolved as a module global at call time

    model = WhisperForConditionalGeneration.from_pretrained(d, dtype=torch.float32, attn_implementation="eager",
                                                            local_files_only=True)
    model.eval()
    cfg = model.config
    check(cfg._attn_implementation == "eager", "not eager")
    golden = json.load(open(os.path.join(d, "golden.json")))
    gt = load_file(os.path.join(d, "golden.safetensors"))
    hook_order = golden["hooks"]
    check(hook_order == mf.hook_names(cfg.encoder_layers, cfg.decoder_layers), "golden.json hooks != hook_names")
    feats = {"clean": torch.from_numpy(gt["logmel.clean"])[None], "corrupt": torch.from_numpy(gt["logmel.corrupt"])[None]}

    # ---- caches of the unpatched runs (make_fixtures' recorder), checked against the goldens
    caches = {}
    for run in ("clean", "corrupt"):
        raw, hf_out = mf.run_hooked(model, feats[run], PREFIX)
        caches[run] = mf.shape_hooks(raw, feats[run], cfg)
        check(sorted(caches[run]) == sorted(hook_order), "cache hook set")
    for n in hook_order:
        g = gt[f"hook/{n}"]
        c = caches["clean"][n].numpy()
        if n.startswith("encoder."):
            mf.check_close(f"clean cache {n} == golden", c, g, tol=0)
        else:  # golden prefix is longer; causal, so the first len(PREFIX) positions agree
            if leaf(n) == "hook_pattern" and ".self_attn." in n:
                g = g[:, : len(PREFIX), : len(PREFIX)]
            elif not (leaf(n) in ("hook_k", "hook_v") and ".cross_attn." in n):
                g = g[: len(PREFIX)] if leaf(n) != "hook_pattern" else g[:, : len(PREFIX)]
            mf.check_close(f"clean cache {n} == golden[:P]", c, g, tol=1e-5)
    mf.check_close("corrupt logits == golden logits.corrupt[:P]", caches["corrupt"]["hook_logits"].numpy(),
                   gt["logits.corrupt"][: len(PREFIX)], tol=1e-5)

    # ---- plain forwards through our patch machinery (no patches) == recorder runs == HF
    logits = {}
    for run in ("clean", "corrupt"):
        logits[run] = forward(model, feats[run])
        check(torch.equal(logits[run], caches[run]["hook_logits"]), f"{run}: unpatched forward != cached logits")
        lw = forward(model, feats[run], wrap=True)
        check(torch.equal(lw, logits[run]), f"{run}: re-implemented layer forwards differ from HF")

    target = int(torch.argmax(logits["clean"][-1]))
    foil = int(torch.argmax(logits["corrupt"][-1]))
    check(target != foil, f"target == foil == {target}")
    check(target == golden["greedy"]["clean"]["tokens"][0] and foil == golden["greedy"]["corrupt"]["tokens"][0],
          "target/foil disagree with golden greedy decodes")
    metrics = Metrics(logits["clean"][-1], target, foil)
    base = {run: metrics.all(logits[run][-1]) for run in ("clean", "corrupt")}
    check(base["clean"]["kl"] == 0.0 or abs(base["clean"]["kl"]) < 1e-12, "kl(clean, clean) != 0")
    base["clean"]["kl"] = 0.0
    print(f"target {target}, foil {foil}; " + ", ".join(
        f"{m}: clean {base['clean'][m]:.6g} corrupt {base['corrupt'][m]:.6g}" for m in METRICS))

    lab = Lab(model, feats, caches, metrics, base, hook_order)

    # ---- identity patches: source == base run leaves the logits unchanged, for every hook
    worst = 0.0
    for run in ("clean", "corrupt"):
        for n in hook_order:
            if n == "hook_logits":
                continue
            variants = [Patch(n, None, None, caches[run][n])]
            P = lab.n_pos(n)
            variants.append(Patch(n, [P - 1], [0] if head_axis(n) is not None else None, caches[run][n]))
            for p in variants:
                lg = forward(model, feats[run], [p])
                err = float((lg - logits[run]).abs().max())
                worst = max(worst, err)
                check(err < 1e-6, f"identity patch {n} on {run}: max |dlogit| {err:.3g}")
    print(f"identity patches (source == base run, every hook, all and one position/head, both runs): "
          f"max |dlogits| {worst:.3g}")

    nE, nD = cfg.encoder_layers, cfg.decoder_layers
    n_checks = N_FORWARDS[0]
    experiments = []
    dec_res = ["hook_resid_pre", "hook_self_attn_out", "hook_cross_attn_out", "hook_mlp_out", "hook_resid_post"]
    enc_res = ["hook_resid_pre", "hook_attn_out", "hook_mlp_out", "hook_resid_post"]
    experiments.append(lab.run("E1", "denoise", "clean", "logit_diff", "each", "all",
                               block_hooks("decoder", nD, dec_res)))
    experiments.append(lab.run("E2", "noise", "corrupt", "logit_diff", "each", "all",
                               block_hooks("decoder", nD, dec_res)))
    e3_hooks = ["encoder.hook_embed"] + block_hooks("encoder", nE, enc_res)
    experiments.append(lab.run("E3", "denoise", "clean", "logit_diff", {"bins": 10}, "all", e3_hooks))
    experiments.append(lab.run("E4", "noise", "corrupt", "logit_diff", {"bins": 10}, "all", e3_hooks))
    e5_hooks = (block_hooks("encoder", nE, ["attn.hook_z", "attn.hook_v"])
                + block_hooks("decoder", nD, ["self_attn.hook_z", "cross_attn.hook_z", "cross_attn.hook_pattern",
                                              "self_attn.hook_q"]))
    experiments.append(lab.run("E5", "denoise", "clean", "logit_diff", "all", "each", e5_hooks))
    experiments.append(lab.run("E6", "denoise", "clean", "logit_diff", "all", "all",
                               [n for n in hook_order if n != "hook_logits"]))
    e7_hooks = block_hooks("decoder", nD, ["hook_cross_attn_out"]) + block_hooks("encoder", nE, ["hook_resid_post"])
    for m in ("logprob", "prob", "kl"):
        for direction, src in (("denoise", "clean"), ("noise", "corrupt")):
            experiments.append(lab.run(f"E7-{m}-{direction}", direction, src, m, "all", "all", e7_hooks))
    e8_hooks = (block_hooks("decoder", nD, ["hook_mlp_out", "hook_cross_attn_out"])
                + block_hooks("encoder", nE, ["hook_resid_post"]))
    for src in ("zero", "mean"):
        experiments.append(lab.run(f"E8-{src}", "noise", src, "logit_diff", "all", "all", e8_hooks))
    experiments.append(lab.run("E9", "denoise", "clean", "logit_diff", "each", "each",
                               block_hooks("decoder", nD, ["self_attn.hook_pattern"])))

    # ---- pathway grounding coefficient
    last = len(PREFIX) - 1

    def gc_effect(names):
        lg = forward(model, feats["corrupt"], [Patch(n, [last], None, caches["clean"][n]) for n in names])
        v = metrics.all(lg[-1])["logit_diff"]
        return effect("denoise", v, base["clean"]["logit_diff"], base["corrupt"]["logit_diff"])

    def gc_entry(A, T):
        den = abs(A) + abs(T)
        # JS semantics for division by zero (0/0 NaN, x/0 ±Infinity); non-finite values are written as null.
        gc_ = A / den if den else float("nan")
        ratio = A / T if T else (math.copysign(float("inf"), A) if A else float("nan"))
        return {"A": A, "T": T, "gc": gc_, "ratio": ratio}

    gc_layers = []
    for l in range(nD):
        A = gc_effect([f"decoder.blocks.{l}.hook_cross_attn_out"])
        T = gc_effect([f"decoder.blocks.{l}.hook_self_attn_out"])
        gc_layers.append({"layer": l, **gc_entry(A, T)})
    A = gc_effect([f"decoder.blocks.{l}.hook_cross_attn_out" for l in range(nD)])
    T = gc_effect([f"decoder.blocks.{l}.hook_self_attn_out" for l in range(nD)])
    gc = {"layers": gc_layers, "overall": gc_entry(A, T)}
    n_exp = N_FORWARDS[0] - n_checks

    # ---- sanity: E6 and cross-checks between experiments
    e6 = {r["hook"]: r["effect"] for r in next(e for e in experiments if e["id"] == "E6")["results"]}
    print("sanity (E6 denoise effects, positions all):")
    for n in ["encoder.hook_input", "encoder.hook_embed", "encoder.hook_ln_post", "decoder.hook_embed",
              "decoder.blocks.0.self_attn.hook_pattern", f"decoder.blocks.{nD - 1}.hook_resid_post",
              "decoder.hook_ln_final"] + \
             [f"encoder.blocks.{i}.attn.hook_pattern" for i in range(nE)] + \
             [f"decoder.blocks.{i}.cross_attn.hook_pattern" for i in range(nD)] + \
             [f"decoder.blocks.{i}.hook_resid_mid" for i in range(nD)] + \
             [f"decoder.blocks.{i}.hook_resid_mid_cross" for i in range(nD)] + \
             [f"encoder.blocks.{i}.hook_resid_mid" for i in range(nE)]:
        print(f"  {n:45s} {e6[n]: .7f}")
    check(abs(e6["encoder.hook_input"] - 1) < 1e-5, "E6 encoder.hook_input effect != 1")
    for n in ["encoder.hook_embed", "encoder.hook_ln_post", f"decoder.blocks.{nD - 1}.hook_resid_post",
              "decoder.hook_ln_final"] + [f"encoder.blocks.{i}.{h}" for i in range(nE)
                                          for h in ("hook_resid_pre", "hook_resid_mid", "hook_resid_post")] + \
             [f"decoder.blocks.{nD - 1}.{h}" for h in ("hook_resid_mid_cross",)]:
        check(abs(e6[n] - 1) < 1e-5, f"E6 {n}: effect {e6[n]} != 1 (whole residual stream patched)")
    for n in ["decoder.hook_embed", "decoder.blocks.0.hook_resid_pre"] + \
             [f"decoder.blocks.0.self_attn.{h}" for h in ("hook_q", "hook_k", "hook_v", "hook_pattern", "hook_z")] + \
             ["decoder.blocks.0.hook_self_attn_out"]:
        check(e6[n] == 0.0, f"E6 {n}: effect {e6[n]} != 0 (decoder layer-0 self-attention sees no audio)")
    # Whole-stream patches through the block chain must agree (resid_mid via the layer wrapper).
    chain = ["decoder.blocks.0.hook_resid_post", "decoder.blocks.0.hook_resid_mid_cross",
             "decoder.blocks.1.hook_resid_pre", "decoder.blocks.1.hook_resid_mid"] if nD >= 2 else []
    for n in chain[1:]:
        check(abs(e6[n] - e6[chain[0]]) < 1e-6, f"E6 {n} {e6[n]} != {chain[0]} {e6[chain[0]]}")
    # E1/E2: the last block's resid_post at the last position carries the whole answer.
    for e in experiments[:2]:
        r = [x for x in e["results"] if x["hook"] == f"decoder.blocks.{nD - 1}.hook_resid_post"
             and x["position"] == last][0]
        check(abs(r["effect"] - 1) < 1e-5, f"{e['id']}: last-block resid_post at the last position != 1")

    # The pattern patch really replaces the softmax output: pattern + v patched == z patched, and
    # q + k + v patched == z patched (all positions, all heads, clean into the corrupt run).
    def ld_effect(patch_names, run="corrupt", src="clean"):
        lg = forward(model, feats[run], [Patch(n, None, None, caches[src][n]) for n in patch_names])
        return effect("denoise", metrics.all(lg[-1])["logit_diff"], base["clean"]["logit_diff"],
                      base["corrupt"]["logit_diff"])

    worst_eq = 0.0
    for b, tag in ([(f"encoder.blocks.{i}", "attn") for i in range(nE)]
                   + [(f"decoder.blocks.{i}", t) for i in range(nD) for t in ("self_attn", "cross_attn")]):
        ez = e6[f"{b}.{tag}.hook_z"]
        for combo in (("hook_pattern", "hook_v"), ("hook_q", "hook_k", "hook_v")):
            ec = ld_effect([f"{b}.{tag}.{h}" for h in combo])
            worst_eq = max(worst_eq, abs(ec - ez))
            check(abs(ec - ez) < 1e-5, f"{b}.{tag}: patching {combo} gives {ec}, hook_z gives {ez}")
    print(f"pattern+v == q+k+v == z patches (every attention): max |effect difference| {worst_eq:.3g}")

    # A resid_mid patch must change the residual carried on, not just the LayerNorm input: the
    # (wrong) LN-input-only patch gives clearly different effects, so the fixture catches it.
    print("resid_mid patched as the LayerNorm input only (wrong) vs in the residual stream (lab.json):")
    for n in [h for h in hook_order if is_mid(h)]:
        lg = forward(model, feats["corrupt"], [Patch(n, None, None, caches["clean"][n])], mid_ln_only=True)
        wrong = effect("denoise", metrics.all(lg[-1])["logit_diff"], base["clean"]["logit_diff"],
                       base["corrupt"]["logit_diff"])
        print(f"  {n:42s} LN-input-only {wrong: .6f}   residual {e6[n]: .6f}")

    # ================================================================================================
    # Lenses, CKA, attribution patching, listen-vs-guess, input grounding
    # ================================================================================================
    n_before_new = N_FORWARDS[0]
    t_new = time.time()

    # ---- lenses (lab/lens.ts): logit lens and encoder lens, both runs, target/foil of the clean/corrupt pair
    lens, lens_gap, lens_margin = {}, float("inf"), float("inf")
    for run in ("clean", "corrupt"):
        final = logits[run][-1]
        lg_logit = logit_lens_logits(model, caches[run])
        lg_enc = encoder_lens_logits(model, caches[run], PREFIX)
        # The last layer of either lens is the real run.
        for kind, lg in (("logit", lg_logit), ("encoder", lg_enc)):
            err = float((lg[-1] - final).abs().max())
            check(err < 1e-5, f"{run} {kind} lens: last layer differs from the real run by {err:.3g}")
            print(f"{run} {kind} lens: last layer vs the real run's logits: max |d| {err:.3g}")
        # The decoder's own ln_final at the last block == the logit lens's last row (same ops).
        err = float((lg_logit[-1] - model.proj_out(caches[run]["decoder.hook_ln_final"][-1]).detach()).abs().max())
        check(err < 1e-5, f"{run} logit lens vs proj_out(ln_final): {err:.3g}")  # gemv vs gemm rounding
        # Encoder lens through the patch machinery: encoder.hook_ln_post replaced by ln_post(stream).
        for i, enc in enumerate(encoder_lens_streams(model, caches[run])):
            lg = forward(model, feats[run], [Patch("encoder.hook_ln_post", None, None, enc)])[-1]
            err = float((lg - lg_enc[i]).abs().max())
            check(err < 1e-5, f"{run} encoder lens layer {i - 1}: decoder call vs ln_post patch differ by {err:.3g}")
        lens[run] = {}
        for kind, lg in (("logit", lg_logit), ("encoder", lg_enc)):
            res, gap, margin = lens_summary(kind, lg, final, target, foil)
            lens[run][kind] = res
            lens_gap, lens_margin = min(lens_gap, gap), min(lens_margin, margin)
            check(res["finalTop"] == (target if run == "clean" else foil), f"{run}: finalTop")
            check(res["layers"][-1]["top"][0]["token"] == res["finalTop"], f"{run} {kind}: last layer top-1 != finalTop")

    # ---- CKA (lab/cka.ts), clean run, float64
    cka, cka_err = {}, 0.0
    for stack, nl, positions in (("encoder", nE, CKA_ENCODER_RANGE), ("decoder", nD, (0, len(PREFIX)))):
        cka[stack], err = layer_cka(caches["clean"], stack, nl, positions)
        cka_err = max(cka_err, err)
    check(cka_err < 1e-10, f"CKA: feature-space and Gram forms differ by {cka_err:.3g}")
    # resid_pre[i+1] is resid_post[i]: the CKA of encoder.hook_embed with itself via blocks.0.hook_resid_pre is 1.
    check(abs(linear_cka64(caches["clean"]["encoder.hook_embed"][:40], caches["clean"]["encoder.blocks.0.hook_resid_pre"][:40])
              - 1) < 1e-12, "CKA(hook_embed, blocks.0.hook_resid_pre) != 1")

    # ---- attribution patching (lab/attribution.ts), at the corrupted run, LD = logit diff at the last position
    att_names = expand_patterns(ATTRIBUTION_PATTERNS, hook_order)
    span = base["clean"]["logit_diff"] - base["corrupt"]["logit_diff"]
    # decoder.hook_ln_final rides along for a check only: LD is linear in it, so its estimate is exact.
    ld_c, grads = attribution_grads(model, feats["corrupt"], caches["corrupt"], att_names + ["decoder.hook_ln_final"],
                                    target, foil)
    check(abs(ld_c - base["corrupt"]["logit_diff"]) < 1e-5, f"attribution forward LD {ld_c} != corrupt logit diff")
    ln_est = attribution_estimates(["decoder.hook_ln_final"], caches, grads[-1:], span)
    check(abs(ln_est[-1]["estimate"] - 1) < 1e-5, f"attribution at ln_final[last] = {ln_est[-1]['estimate']} != 1")
    check(all(e["estimate"] == 0.0 for e in ln_est[:-1]), "attribution at ln_final before the last position != 0")
    print(f"attribution at decoder.hook_ln_final (exact, LD is linear there): last position "
          f"{ln_est[-1]['estimate']:.9f}, earlier positions {[e['estimate'] for e in ln_est[:-1]]}")
    att = attribution_estimates(att_names, caches, grads[:-1], span)
    # Float64 copy of the model: the same gradients, and central finite differences along (clean - corrupt).
    model64 = copy.deepcopy(model).double()
    feats64 = {r: feats[r].double() for r in feats}
    caches64 = {r: mf.shape_hooks(mf.run_hooked(model64, feats64[r], PREFIX)[0], feats64[r], cfg) for r in feats}
    lds64 = {r: float(caches64[r]["hook_logits"][-1, target] - caches64[r]["hook_logits"][-1, foil]) for r in feats}
    span64 = lds64["clean"] - lds64["corrupt"]
    _, grads64 = attribution_grads(model64, feats64["corrupt"], caches64["corrupt"], att_names, target, foil)
    att64 = attribution_estimates(att_names, caches64, grads64, span64)
    att_err64 = max(abs(a["estimate"] - b["estimate"]) for a, b in zip(att, att64))
    check(att_err64 < 1e-4, f"attribution float32 vs float64: max |d estimate| {att_err64:.3g}")
    fd_err = 0.0
    for e in sorted(att64, key=lambda e: -abs(e["estimate"]))[:6]:
        n, p, h = e["hook"], e["position"], 1e-4
        vals = []
        for s in (h, -h):
            src = caches64["corrupt"][n] + s * (caches64["clean"][n] - caches64["corrupt"][n])
            lg = forward(model64, feats64["corrupt"], [Patch(n, [p], None, src)])
            vals.append(float(lg[-1, target] - lg[-1, foil]))
        fd = (vals[0] - vals[1]) / (2 * h) / span64
        fd_err = max(fd_err, abs(fd - e["estimate"]))
        check(abs(fd - e["estimate"]) < 1e-6, f"attribution {n}[{p}]: autograd {e['estimate']} vs finite diff {fd}")
    del model64
    print(f"attribution: float32 vs float64 estimates max |d| {att_err64:.3g}; float64 autograd vs central finite "
          f"differences (top 6) max |d| {fd_err:.3g}")
    # Verification as attributionPatching does it: top-K by |estimate| (stable sort), patched for real.
    verified = sorted(att, key=lambda e: -abs(e["estimate"]))[:min(ATTRIBUTION_TOPK, len(att))]
    abs_sorted = sorted((abs(e["estimate"]) for e in att), reverse=True)
    att_topk_gap = min(abs_sorted[k] - abs_sorted[k + 1] for k in range(min(ATTRIBUTION_TOPK, len(att) - 1)))
    verified = [{**e, "real": effect("denoise", metrics.all(forward(model, feats["corrupt"], [
        Patch(e["hook"], [e["position"]], None, caches["clean"][e["hook"]])])[-1])["logit_diff"],
        base["clean"]["logit_diff"], base["corrupt"]["logit_diff"])} for e in verified]
    est_v, real_v = [e["estimate"] for e in verified], [e["real"] for e in verified]
    attribution = {"patterns": ATTRIBUTION_PATTERNS, "hooks": att_names, "metric": "logit_diff", "run": "corrupt",
                   "entries": att, "verified": verified, "spearman": pearson(ranks(est_v), ranks(real_v)),
                   "pearson": pearson(est_v, real_v)}

    # ---- listen vs guess per token (lab/grounding.ts listenVsGuess), metric logprob
    transcript = [int(t) for t in golden["greedy"]["clean"]["tokens"][:TRANSCRIPT_LEN]]
    check(golden["greedy"]["clean"]["prompt"] == PREFIX, "golden greedy prompt != PREFIX")
    full = PREFIX + transcript
    caches_t = {r: mf.shape_hooks(mf.run_hooked(model, feats[r], full)[0], feats[r], cfg) for r in feats}
    lp_t = {}
    for r in feats:
        lg = forward(model, feats[r], prefix=full)
        check(torch.equal(lg, caches_t[r]["hook_logits"]), f"{r}: forward on the transcript prefix != recorder")
        lp_t[r] = torch.log_softmax(lg.double(), -1)
    per_token = []
    for i, tok in enumerate(transcript):
        p = len(PREFIX) - 1 + i
        c, k = float(lp_t["clean"][p, tok]), float(lp_t["corrupt"][p, tok])
        eff = {}
        for part in ("cross_attn", "self_attn"):
            hooks_ = [f"decoder.blocks.{l}.hook_{part}_out" for l in range(nD)]
            lg = forward(model, feats["corrupt"], [Patch(h, [p], None, caches_t["clean"][h]) for h in hooks_], prefix=full)
            later = float((lg[:p] - caches_t["corrupt"]["hook_logits"][:p]).abs().max()) if p else 0.0
            check(later == 0.0, f"per_token {part} patch at {p} changed earlier positions ({later:.3g})")
            eff[part] = js_effect("denoise", float(torch.log_softmax(lg[p].double(), -1)[tok]), c, k)
        per_token.append({"position": p, "token": tok, "clean": c, "corrupt": k,
                          **grounding_point(eff["cross_attn"], eff["self_attn"])})
    # Causality: the first token's numbers equal the same patches on the 4-token prompt.
    check(abs(per_token[0]["clean"] - base["clean"]["logprob"]) < 1e-5
          and abs(per_token[0]["corrupt"] - base["corrupt"]["logprob"]) < 1e-5, "per_token[0] base != metrics.logprob")
    for part, key in (("cross_attn", "A"), ("self_attn", "T")):
        lg = forward(model, feats["corrupt"], [Patch(f"decoder.blocks.{l}.hook_{part}_out", [last], None,
                                                     caches["clean"][f"decoder.blocks.{l}.hook_{part}_out"])
                                               for l in range(nD)])
        e0 = js_effect("denoise", metrics.all(lg[-1])["logprob"], base["clean"]["logprob"], base["corrupt"]["logprob"])
        check(abs(e0 - per_token[0][key]) < 1e-4, f"per_token[0].{key} {per_token[0][key]} != prompt-only {e0}")

    # ---- input grounding (lab/grounding.ts inputGrounding), metric logit_diff
    clean_prefix = INPUT_GC_CONTEXT["clean"] + PREFIX
    corrupt_prefix = INPUT_GC_CONTEXT["corrupt"] + PREFIX
    ig_vals = [metrics.all(forward(model, feats[r], prefix=pf)[-1])["logit_diff"]
               for r, pf in (("clean", clean_prefix), ("corrupt", clean_prefix), ("clean", corrupt_prefix))]
    d_audio, d_text = ig_vals[0] - ig_vals[1], ig_vals[0] - ig_vals[2]
    den = abs(d_audio) + abs(d_text)
    input_gc = {"metric": "logit_diff", "cleanPrefix": clean_prefix, "corruptPrefix": corrupt_prefix,
                "target": target, "foil": foil, "deltaAudio": d_audio, "deltaText": d_text,
                "gc": float("nan") if den == 0 else d_audio / den,
                "values": {"clean": ig_vals[0], "corruptAudio": ig_vals[1], "corruptText": ig_vals[2]}}
    n_new = N_FORWARDS[0] - n_before_new

    # ---- write
    def clean_result(r):
        return {"hook": r["hook"], "position": r["position"], "position_end": r["position_end"], "head": r["head"],
                "value": rnd(r["value"]), "effect": rnd(r["effect"])}

    doc = {
        "prefix": PREFIX,
        "target": target,
        "foil": foil,
        "metrics": {m: {"clean": rnd(base["clean"][m]), "corrupt": rnd(base["corrupt"][m])} for m in METRICS},
        "experiments": [{**{k: v for k, v in e.items() if k != "results"},
                         "results": [clean_result(r) for r in e["results"]]} for e in experiments],
        "gc": {"layers": [{"layer": x["layer"], **{k: rnd(x[k]) for k in ("A", "T", "gc", "ratio")}}
                          for x in gc["layers"]],
               "overall": {k: rnd(gc["overall"][k]) for k in ("A", "T", "gc", "ratio")}},
        "torch_version": torch.__version__,
        "transformers_version": transformers.__version__,
        "command": shlex.join(getattr(sys, "orig_argv", [sys.executable] + sys.argv)),
        # Added after the keys above (which stay as they were): lenses, CKA, attribution, grounding.
        "lens": rnd_tree(lens),
        "cka": rnd_tree(cka),
        "attribution": rnd_tree(attribution),
        "per_token": rnd_tree(per_token),
        "input_gc": rnd_tree(input_gc),
    }
    with open(out_path, "w") as f:
        json.dump(doc, f, indent=1)
        f.write("\n")
    os.chmod(out_path, 0o644)

    # ---- report
    print(f"forwards: {n_exp} for the experiments and GC ("
          + ", ".join(f"{e['id']} {len(e['results'])}" for e in experiments) + f", GC {2 * nD + 2}), "
          f"{N_FORWARDS[0] - n_exp - n_new} for checks; {time.time() - t0:.1f} s")
    print("effect spread per experiment (n, min, max, std, #|e|<1e-3, #|e-1|<1e-3, #exactly 0):")
    for e in experiments:
        ef = np.array([r["effect"] for r in e["results"]], dtype=np.float64)
        print(f"  {e['id']:18s} n={ef.size:3d} min {ef.min(): .4f} max {ef.max(): .4f} std {ef.std():.4f} "
              f"~0: {int((abs(ef) < 1e-3).sum()):3d}  ~1: {int((abs(ef - 1) < 1e-3).sum()):3d}  "
              f"==0: {int((ef == 0).sum()):3d}")
    for x in gc["layers"]:
        print(f"GC layer {x['layer']}: A {x['A']:.6g} T {x['T']:.6g} gc {x['gc']:.6g} ratio {x['ratio']:.6g}")
    o = gc["overall"]
    print(f"GC overall: A {o['A']:.6g} T {o['T']:.6g} gc {o['gc']:.6g} ratio {o['ratio']:.6g}")
    print(f"forwards for lens/CKA/attribution/grounding (checks included): {n_new}, "
          f"{time.time() - t_new:.1f} s")
    for run in ("clean", "corrupt"):
        for kind in ("logit", "encoder"):
            r = lens[run][kind]
            print(f"lens {run} {kind}: finalTop {r['finalTop']} saturationLayer {r['saturationLayer']} "
                  f"criticalLayer {r['criticalLayer']}")
            for x in r["layers"]:
                print(f"  layer {x['layer']:2d} top " + " ".join(f"{t['token']}:{t['prob']:.4f}" for t in x["top"])
                      + f"  target {x['targetProb']:.6f} foil {x['foilProb']:.6f} logitDiff {x['logitDiff']: .6f}")
    print(f"lens: smallest gap between consecutive top-6 probs {lens_gap:.3g}; "
          f"closest target prob to the threshold {LENS_THRESHOLD}: {lens_margin:.3g} away")
    for stack in ("encoder", "decoder"):
        c = cka[stack]
        print(f"CKA {stack} positions {c['positions']}: " + "; ".join(
            " ".join(f"{v:.6f}" for v in row) for row in c["matrix"]))
    ests = np.array([e["estimate"] for e in att])
    print(f"attribution: {len(att)} entries over {att_names}; estimate min {ests.min():.6g} max {ests.max():.6g}, "
          f"sum per hook " + ", ".join(f"{n.split('.', 1)[1]} {sum(e['estimate'] for e in att if e['hook'] == n):.6g}"
                                       for n in att_names) + f"; ==0: {int((ests == 0).sum())}")
    real_ties = sum(1 for i in range(len(real_v)) for j in range(i + 1, len(real_v)) if real_v[i] == real_v[j])
    print(f"attribution top-{len(verified)} (gap between consecutive |estimates| >= {att_topk_gap:.3g}): "
          f"spearman {attribution['spearman']:.6g} pearson {attribution['pearson']:.6g}; "
          f"{real_ties} pairs of bit-identical real effects (shared mean ranks)")
    for e in verified[:8]:
        print(f"  {e['hook']:42s} pos {e['position']:3d} estimate {e['estimate']: .6f} real {e['real']: .6f}")
    for x in per_token:
        print(f"per_token pos {x['position']} token {x['token']}: clean {x['clean']:.6f} corrupt {x['corrupt']:.6f} "
              f"A {x['A']:.6g} T {x['T']:.6g} gc {x['gc']:.6g} ratio {x['ratio']:.6g}")
    print(f"input_gc: values {input_gc['values']}, deltaAudio {d_audio:.6g} deltaText {d_text:.6g} "
          f"gc {input_gc['gc']:.6g}")
    print(f"{out_path}: {os.path.getsize(out_path)} bytes")


if __name__ == "__main__":
    main()
