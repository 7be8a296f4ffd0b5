#!/usr/bin/env python3
"""Reference values for the lab's activation-patching experiments, from Hugging Face transformers.

Loads the micro model written by make_fixtures.py, feeds it the clean / corrupt log-mels stored in
golden.safetensors, and runs patched forwards (forward hooks on the HF modules, reusing
make_fixtures.attach_hooks for the hook -> module mapping) for the experiments E1..E9 and the
pathway grounding coefficient. Writes DIR/lab.json. See tools/reference/README.md.

Usage:
  .venv/bin/python tools/reference/make_lab_fixtures.py --dir tests/fixtures/micro
"""

from __future__ import annotations

import argparse
import json
import math
import os
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


@torch.no_grad()
def forward(model, feats, patches=(), wrap=None, mid_ln_only=False):
    """Logits at every prefix position [P, vocab] with the patches applied.
    wrap: None = re-implemented layer forwards only if a mid hook is patched; True/False forces."""
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
        out = model(input_features=feats, decoder_input_ids=torch.tensor([PREFIX]), use_cache=False,
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
    }
    with open(out_path, "w") as f:
        json.dump(doc, f, indent=1)
        f.write("\n")
    os.chmod(out_path, 0o644)

    # ---- report
    print(f"forwards: {n_exp} for the experiments and GC ("
          + ", ".join(f"{e['id']} {len(e['results'])}" for e in experiments) + f", GC {2 * nD + 2}), "
          f"{N_FORWARDS[0] - n_exp} for checks; {time.time() - t0:.1f} s")
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
    print(f"{out_path}: {os.path.getsize(out_path)} bytes")


if __name__ == "__main__":
    main()
