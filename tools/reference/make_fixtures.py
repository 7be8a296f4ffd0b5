#!/usr/bin/env python3
"""Make a small random-weight Whisper model in the Hugging Face layout, plus golden outputs.

The model is `WhisperForConditionalGeneration` built from a `WhisperConfig` (never downloaded),
with every parameter randomised so that no bug in the TypeScript engine can hide behind a zero
bias or a unit LayerNorm. The goldens come from Hugging Face transformers (eager attention, fp32,
eval mode) run on the model exactly as it was written to disk, and are checked inside this script
for internal consistency (each hook is recomputed from its inputs in float64).

Outputs in --out DIR (see tools/reference/README.md for details):
  config.json, generation_config.json, model.safetensors   (save_pretrained)
  clean.wav, corrupt.wav                                   (espeak-ng + sox, 16 kHz mono s16)
  clean_44k_stereo.wav                                     (44.1 kHz stereo s16, resampler tests)
  golden.safetensors, golden.json                          (unless --no-goldens)

Usage:
  .venv/bin/python tools/reference/make_fixtures.py --out tests/fixtures/micro
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import wave

# Never touch the network: everything is built locally.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

import numpy as np  # noqa: E402
import safetensors  # noqa: E402
import torch  # noqa: E402
import transformers  # noqa: E402
from safetensors.numpy import save_file  # noqa: E402
from transformers import (  # noqa: E402
    WhisperConfig,
    WhisperFeatureExtractor,
    WhisperForConditionalGeneration,
)
from transformers.modeling_outputs import BaseModelOutput  # noqa: E402

SAMPLE_RATE = 16000
N_FFT = 400
HOP = 160
LN_EPS = 1e-5

# Special-token tables (openai tokenizer ids). Only the vocabularies of released checkpoints.
TOKEN_TABLES = {
    # multilingual (tiny, base, small, medium, large, large-v2)
    51865: {
        "kind": "multilingual",
        "eot": 50257,
        "sot": 50258,
        "en": 50259,
        "transcribe": 50359,
        "notimestamps": 50363,
        "prompt": [50258, 50259, 50359, 50363],
    },
    # large-v3 (one more language token, everything after it shifted by one)
    51866: {
        "kind": "multilingual-v3",
        "eot": 50257,
        "sot": 50258,
        "en": 50259,
        "transcribe": 50360,
        "notimestamps": 50364,
        "prompt": [50258, 50259, 50360, 50364],
    },
    # English-only (*.en): no language/task tokens
    51864: {
        "kind": "english-only",
        "eot": 50256,
        "sot": 50257,
        "transcribe": 50358,
        "notimestamps": 50362,
        "prompt": [50257, 50362],
    },
}
PREFIX_EXTRA = [1000, 2000]  # arbitrary fixed text tokens appended to the prompt for teacher forcing
GREEDY_MAX_NEW = 8


# --------------------------------------------------------------------------------------------
# CLI
# --------------------------------------------------------------------------------------------


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", required=True, help="output directory (created; existing files overwritten)")
    p.add_argument("--d-model", type=int, default=32)
    p.add_argument("--encoder-layers", type=int, default=2)
    p.add_argument("--decoder-layers", type=int, default=2)
    p.add_argument("--encoder-heads", type=int, default=4)
    p.add_argument("--decoder-heads", type=int, default=4)
    p.add_argument("--ffn", type=int, default=64, help="MLP width of encoder and decoder")
    p.add_argument("--encoder-ffn", type=int, default=None, help="override --ffn for the encoder")
    p.add_argument("--decoder-ffn", type=int, default=None, help="override --ffn for the decoder")
    p.add_argument("--num-mel-bins", type=int, default=80)
    p.add_argument("--max-source-positions", type=int, default=100)
    p.add_argument("--max-target-positions", type=int, default=32)
    p.add_argument("--vocab-size", type=int, default=51865, choices=sorted(TOKEN_TABLES))
    p.add_argument("--dtype", choices=["f16", "f32"], default="f16", help="storage dtype of model.safetensors")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--qk-gain", type=float, default=2.0,
                   help="std multiplier for q_proj/k_proj weights; 2 makes attention peaky instead of "
                        "near-uniform, so clean and corrupt runs differ clearly (1 = plain 1/fan_in)")
    p.add_argument("--words", default="bat,pat", help="clean,corrupt words spoken by espeak-ng")
    p.add_argument("--voice", default="en-us", help="espeak-ng voice")
    p.add_argument("--no-goldens", action="store_true", help="write only the model and audio")
    a = p.parse_args(argv)
    a.encoder_ffn = a.encoder_ffn or a.ffn
    a.decoder_ffn = a.decoder_ffn or a.ffn
    words = [w.strip() for w in a.words.split(",")]
    if len(words) != 2 or not all(words):
        p.error("--words takes exactly two comma-separated words: clean,corrupt")
    a.words = words
    if a.d_model % a.encoder_heads or a.d_model % a.decoder_heads:
        p.error("--d-model must be divisible by --encoder-heads and --decoder-heads")
    if a.d_model % 2:
        p.error("--d-model must be even (sinusoidal positions)")
    return a


# --------------------------------------------------------------------------------------------
# Small helpers
# --------------------------------------------------------------------------------------------


class CheckError(AssertionError):
    pass


CHECK_LOG: list[tuple[str, float]] = []


def check_close(name, got, want, tol=1e-5):
    """max|got - want| <= tol * max(1, max|want|); both converted to float64."""
    got = np.asarray(got, dtype=np.float64)
    want = np.asarray(want, dtype=np.float64)
    if got.shape != want.shape:
        raise CheckError(f"{name}: shape {got.shape} != {want.shape}")
    scale = max(1.0, float(np.abs(want).max()) if want.size else 1.0)
    err = float(np.abs(got - want).max()) if got.size else 0.0
    CHECK_LOG.append((name, err / scale))
    if not err <= tol * scale:
        raise CheckError(f"{name}: max abs err {err:.3g} > {tol:g} * {scale:.3g}")


def check(cond, msg):
    if not cond:
        raise CheckError(msg)


def f64(t):
    return t.detach().to(torch.float64).cpu().numpy()


def layer_norm64(x, w, b):
    mu = x.mean(-1, keepdims=True)
    var = ((x - mu) ** 2).mean(-1, keepdims=True)
    return (x - mu) / np.sqrt(var + LN_EPS) * w + b


def gelu64(x):
    """Exact (erf) GELU in float64."""
    erf = torch.special.erf(torch.from_numpy(np.asarray(x, dtype=np.float64) / math.sqrt(2.0))).numpy()
    return 0.5 * x * (1.0 + erf)


def softmax64(x):
    x = x - x.max(-1, keepdims=True)
    e = np.exp(x)
    return e / e.sum(-1, keepdims=True)


def sinusoids64(length, channels, max_timescale=10000.0):
    half = channels // 2
    inc = math.log(max_timescale) / (half - 1)
    inv = np.exp(-inc * np.arange(half, dtype=np.float64))
    t = np.arange(length, dtype=np.float64)[:, None] * inv[None, :]
    return np.concatenate([np.sin(t), np.cos(t)], axis=1)


def run(cmd):
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def read_wav_mono16(path):
    with wave.open(path, "rb") as w:
        check(w.getnchannels() == 1 and w.getsampwidth() == 2 and w.getframerate() == SAMPLE_RATE,
              f"{path}: expected 16 kHz mono 16-bit")
        data = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")
    return data.astype(np.float32) / 32768.0


# --------------------------------------------------------------------------------------------
# Audio
# --------------------------------------------------------------------------------------------


def make_audio(out, words, voice, window_samples):
    for tool in ("espeak-ng", "sox"):
        if shutil.which(tool) is None:
            raise SystemExit(f"{tool} not found on PATH (apt-get install espeak-ng sox)")
    info = {}
    with tempfile.TemporaryDirectory() as tmp:
        for role, word in zip(("clean", "corrupt"), words):
            raw = os.path.join(tmp, f"{role}_raw.wav")
            run(["espeak-ng", "-v", voice, "-w", raw, word])
            dst = os.path.join(out, f"{role}.wav")
            # -R: repeatable; -D: no dither (sox dithers with random noise by default when it
            # requantises after an effect, which would make the file differ run to run).
            run(["sox", "-R", raw, "-D", "-r", str(SAMPLE_RATE), "-c", "1", "-b", "16", dst])
            if role == "clean":
                run(["sox", "-R", raw, "-D", "-r", "44100", "-c", "2", "-b", "16",
                     os.path.join(out, "clean_44k_stereo.wav")])
            samples = read_wav_mono16(dst)
            if samples.size > window_samples:
                raise SystemExit(
                    f"'{word}' is {samples.size} samples, longer than the {window_samples}-sample window; "
                    "raise --max-source-positions"
                )
            info[role] = {"word": word, "file": f"{role}.wav", "samples": int(samples.size),
                          "seconds": samples.size / SAMPLE_RATE}
    info["voice"] = voice
    info["tools"] = {tool: tool_version([tool, "--version"]) for tool in ("espeak-ng", "sox")}
    return info


def tool_version(cmd):
    r = subprocess.run(cmd, capture_output=True, text=True)
    line = (r.stdout or r.stderr).strip().splitlines()
    return line[0].split("Data at:")[0].strip() if line else "?"  # espeak-ng appends a local path


# --------------------------------------------------------------------------------------------
# Log-mel: HF extractor (numpy path) + an independent float64 implementation of the recipe
# --------------------------------------------------------------------------------------------


def hz_to_mel_slaney(f):
    f = np.asarray(f, dtype=np.float64)
    lin = 3.0 * f / 200.0
    log = 15.0 + 27.0 * np.log(np.maximum(f, 1e-10) / 1000.0) / math.log(6.4)
    return np.where(f >= 1000.0, log, lin)


def mel_to_hz_slaney(m):
    m = np.asarray(m, dtype=np.float64)
    lin = 200.0 * m / 3.0
    log = 1000.0 * np.exp(math.log(6.4) / 27.0 * (m - 15.0))
    return np.where(m >= 15.0, log, lin)


def mel_filters64(n_mels, n_fft=N_FFT, sr=SAMPLE_RATE, fmax=8000.0):
    """librosa-style slaney mel filter bank, slaney-normalised: [n_mels, n_fft//2+1]."""
    fft_freqs = np.linspace(0.0, sr / 2.0, n_fft // 2 + 1)
    hz = mel_to_hz_slaney(np.linspace(hz_to_mel_slaney(0.0), hz_to_mel_slaney(fmax), n_mels + 2))
    fb = np.zeros((n_mels, fft_freqs.size))
    for i in range(n_mels):
        lower = (fft_freqs - hz[i]) / (hz[i + 1] - hz[i])
        upper = (hz[i + 2] - fft_freqs) / (hz[i + 2] - hz[i + 1])
        fb[i] = np.maximum(0.0, np.minimum(lower, upper)) * (2.0 / (hz[i + 2] - hz[i]))
    return fb


def logmel64(audio, n_mels, n_frames):
    """The openai recipe in float64: [n_mels, n_frames]."""
    x = np.zeros(n_frames * HOP, dtype=np.float64)
    a = np.asarray(audio, dtype=np.float64)[: x.size]
    x[: a.size] = a
    xp = np.pad(x, N_FFT // 2, mode="reflect")
    n_stft = 1 + (xp.size - N_FFT) // HOP  # = n_frames + 1
    idx = np.arange(N_FFT)[None, :] + HOP * np.arange(n_stft)[:, None]
    win = 0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(N_FFT) / N_FFT)  # periodic Hann
    spec = np.fft.rfft(xp[idx] * win, axis=1)
    power = (spec.real**2 + spec.imag**2)[:-1]  # drop the last frame
    mel = mel_filters64(n_mels) @ power.T
    lg = np.log10(np.maximum(mel, 1e-10))
    lg = np.maximum(lg, lg.max() - 8.0)
    return (lg + 4.0) / 4.0


def hf_logmel(audio, n_mels, n_frames):
    """WhisperFeatureExtractor numpy path, for a window of n_frames frames."""
    window_samples = n_frames * HOP
    chunk = window_samples / SAMPLE_RATE
    fe = WhisperFeatureExtractor(
        feature_size=n_mels, sampling_rate=SAMPLE_RATE, hop_length=HOP, n_fft=N_FFT,
        chunk_length=int(chunk) if float(chunk).is_integer() else chunk,
    )
    x = np.zeros(window_samples, dtype=np.float32)
    x[: min(audio.size, window_samples)] = audio[:window_samples]
    feats = fe._np_extract_fbank_features(x[None, :], "cpu")[0]
    check(feats.shape == (n_mels, n_frames), f"extractor produced {feats.shape}, want {(n_mels, n_frames)}")
    # The public __call__ (torch STFT path when torch is installed) must agree too.
    via_call = fe(audio, sampling_rate=SAMPLE_RATE, max_length=window_samples, return_tensors="np")
    check_close(f"logmel[{n_mels}x{n_frames}] extractor __call__ vs numpy path",
                via_call["input_features"][0], feats, tol=1e-4)
    return feats.astype(np.float32), fe


def verify_logmel_recipe(audio, n_mels, n_frames):
    feats, fe = hf_logmel(audio, n_mels, n_frames)
    fb = mel_filters64(n_mels)
    check_close(f"mel filters {n_mels} own slaney vs HF", fb, fe.mel_filters.T, tol=1e-6)
    check_close(f"logmel[{n_mels}x{n_frames}] float64 recipe vs extractor", logmel64(audio, n_mels, n_frames),
                feats, tol=1e-4)
    return feats


# --------------------------------------------------------------------------------------------
# Model
# --------------------------------------------------------------------------------------------


def build_config(a, tokens):
    return WhisperConfig(
        vocab_size=a.vocab_size,
        num_mel_bins=a.num_mel_bins,
        d_model=a.d_model,
        encoder_layers=a.encoder_layers,
        decoder_layers=a.decoder_layers,
        encoder_attention_heads=a.encoder_heads,
        decoder_attention_heads=a.decoder_heads,
        encoder_ffn_dim=a.encoder_ffn,
        decoder_ffn_dim=a.decoder_ffn,
        max_source_positions=a.max_source_positions,
        max_target_positions=a.max_target_positions,
        decoder_start_token_id=tokens["sot"],
        bos_token_id=tokens["eot"],
        eos_token_id=tokens["eot"],
        pad_token_id=tokens["eot"],
        begin_suppress_tokens=[220, tokens["eot"]],
        activation_function="gelu",
        dropout=0.0,
        attention_dropout=0.0,
        activation_dropout=0.0,
        scale_embedding=False,
        tie_word_embeddings=True,
        attn_implementation="eager",
    )


def token_embedding_std(d_model):
    # logits = LN(x) . E[v]; LN output entries have ~unit scale, so the logit std is about
    # sqrt(d) * std(E). Aim for a logit std of ~4 (max over the vocab ~20).
    return min(1.0, 4.0 / math.sqrt(d_model))


@torch.no_grad()
def randomise(model, seed, d_model, qk_gain=1.0):
    g = torch.Generator().manual_seed(seed)

    def normal(p, mean, std):
        p.copy_(torch.randn(p.shape, generator=g, dtype=torch.float32) * std + mean)

    tok_std = token_embedding_std(d_model)
    seen = []
    for name, p in model.named_parameters():  # tied proj_out.weight is listed once, as embed_tokens
        seen.append(name)
        if name == "model.encoder.embed_positions.weight":
            continue  # stays the Whisper sinusoid
        if name.endswith(".bias"):
            normal(p, 0.0, 0.1)
        elif "layer_norm" in name:
            normal(p, 1.0, 0.1)
        elif name.endswith("conv1.weight") or name.endswith("conv2.weight"):
            fan_in = p.shape[1] * p.shape[2]
            normal(p, 0.0, 1.0 / math.sqrt(fan_in))
        elif name == "model.decoder.embed_tokens.weight":
            normal(p, 0.0, tok_std)
        elif name == "model.decoder.embed_positions.weight":
            normal(p, 0.0, 0.1)
        elif p.dim() == 2 and name.endswith(("q_proj.weight", "k_proj.weight")):
            normal(p, 0.0, qk_gain / math.sqrt(p.shape[1]))
        elif p.dim() == 2 and name.endswith(("_proj.weight", "fc1.weight", "fc2.weight")):
            normal(p, 0.0, 1.0 / math.sqrt(p.shape[1]))
        else:
            raise CheckError(f"no init rule for parameter {name} {tuple(p.shape)}")
    check("proj_out.weight" not in seen, "proj_out.weight listed separately: not tied?")
    check(
        model.proj_out.weight.data_ptr() == model.model.decoder.embed_tokens.weight.data_ptr(),
        "proj_out is not tied to embed_tokens",
    )
    return tok_std


@torch.no_grad()
def round_to_f16(model):
    for p in model.parameters():
        p.copy_(p.to(torch.float16).to(torch.float32))


def make_model(a, tokens, out):
    torch.manual_seed(a.seed)
    config = build_config(a, tokens)
    model = WhisperForConditionalGeneration(config)
    model.eval()
    check(model.config._attn_implementation == "eager", "attention implementation is not eager")

    # HF initialises the encoder positions with the Whisper sinusoid (H-1 in the denominator).
    pe = f64(model.model.encoder.embed_positions.weight)
    want = sinusoids64(a.max_source_positions, a.d_model)
    # HF builds it in fp32: sin/cos of arguments up to H-1 carry an error of about H·2^-24.
    pos_tol = max(1e-5, 2 * a.max_source_positions * 2.0**-24)
    check_close("encoder positions == sinusoid(H-1)", pe, want, tol=pos_tol)
    check(abs(pe[1, 0] - math.sin(1.0)) < 1e-6 and abs(pe[1, a.d_model // 2] - math.cos(1.0)) < 1e-6,
          "sinusoid probes")

    tok_std = randomise(model, a.seed, a.d_model, a.qk_gain)
    if a.dtype == "f16":
        round_to_f16(model)

    # Save with the storage dtype. Values are already f16-representable, so the round trip is exact.
    save_dtype = torch.float16 if a.dtype == "f16" else torch.float32
    reference_state = {k: v.clone() for k, v in model.state_dict().items()}
    model.to(save_dtype)
    model.save_pretrained(out, safe_serialization=True)
    model.to(torch.float32)

    # Reload exactly what is on disk; the goldens come from this model.
    loaded = WhisperForConditionalGeneration.from_pretrained(
        out, dtype=torch.float32, attn_implementation="eager", local_files_only=True
    )
    loaded.eval()
    check(loaded.config._attn_implementation == "eager", "reloaded model is not eager")
    loaded_state = loaded.state_dict()
    for k, v in reference_state.items():
        check(k in loaded_state, f"reloaded model lacks {k}")
        check(torch.equal(loaded_state[k], v), f"reloaded {k} differs from the generated values")
    check(
        loaded.proj_out.weight.data_ptr() == loaded.model.decoder.embed_tokens.weight.data_ptr(),
        "reloaded proj_out is not tied",
    )
    pe = f64(loaded.model.encoder.embed_positions.weight)
    check_close("reloaded encoder positions == sinusoid", pe, want, tol=1e-3 if a.dtype == "f16" else pos_tol)

    # Inspect the file itself.
    st_path = os.path.join(out, "model.safetensors")
    with safetensors.safe_open(st_path, "pt") as f:
        keys = list(f.keys())
        dtypes = {str(f.get_slice(k).get_dtype()) for k in keys}
    expect = "F16" if a.dtype == "f16" else "F32"
    check(dtypes == {expect}, f"model.safetensors dtypes {dtypes}, want {expect}")
    n_params = sum(p.numel() for p in loaded.parameters())
    file_info = {
        "tensors": len(keys),
        "bytes": os.path.getsize(st_path),
        "proj_out_in_file": "proj_out.weight" in keys,
        "dtype": expect,
        "parameters": n_params,
    }
    return loaded, tok_std, file_info


# --------------------------------------------------------------------------------------------
# Hooks
# --------------------------------------------------------------------------------------------

ENC_BLOCK_HOOKS = [
    "hook_resid_pre", "attn.hook_q", "attn.hook_k", "attn.hook_v", "attn.hook_pattern", "attn.hook_z",
    "hook_attn_out", "hook_resid_mid", "mlp.hook_pre", "mlp.hook_post", "hook_mlp_out", "hook_resid_post",
]
DEC_BLOCK_HOOKS = [
    "hook_resid_pre", "self_attn.hook_q", "self_attn.hook_k", "self_attn.hook_v", "self_attn.hook_pattern",
    "self_attn.hook_z", "hook_self_attn_out", "hook_resid_mid", "cross_attn.hook_q", "cross_attn.hook_k",
    "cross_attn.hook_v", "cross_attn.hook_pattern", "cross_attn.hook_z", "hook_cross_attn_out",
    "hook_resid_mid_cross", "mlp.hook_pre", "mlp.hook_post", "hook_mlp_out", "hook_resid_post",
]


def hook_names(n_enc, n_dec):
    names = ["encoder.hook_input", "encoder.hook_embed"]
    for i in range(n_enc):
        names += [f"encoder.blocks.{i}.{h}" for h in ENC_BLOCK_HOOKS]
    names += ["encoder.hook_ln_post", "decoder.hook_embed"]
    for i in range(n_dec):
        names += [f"decoder.blocks.{i}.{h}" for h in DEC_BLOCK_HOOKS]
    names += ["decoder.hook_ln_final", "hook_logits"]
    return names


class Recorder:
    """Forward hooks / pre-hooks on HF modules; each hook point must fire exactly once."""

    def __init__(self):
        self.raw: dict[str, torch.Tensor] = {}
        self.handles = []

    def _put(self, name, t):
        if name in self.raw:
            raise CheckError(f"hook {name} fired twice")
        self.raw[name] = t.detach().clone()

    def output(self, module, name, index=None):
        def fn(_m, _args, out):
            self._put(name, out[index] if index is not None else (out[0] if isinstance(out, tuple) else out))

        self.handles.append(module.register_forward_hook(fn))

    def input(self, module, name):
        def fn(_m, args, kwargs):
            self._put(name, args[0] if args else kwargs["hidden_states"])

        self.handles.append(module.register_forward_pre_hook(fn, with_kwargs=True))

    def remove(self):
        for h in self.handles:
            h.remove()
        self.handles = []


def attach_hooks(model, rec):
    enc, dec = model.model.encoder, model.model.decoder
    for i, layer in enumerate(enc.layers):
        b = f"encoder.blocks.{i}"
        if i == 0:
            rec.input(layer, "encoder.hook_embed")
        rec.input(layer, f"{b}.hook_resid_pre")
        attn = layer.self_attn
        rec.output(attn.q_proj, f"{b}.attn.hook_q")
        rec.output(attn.k_proj, f"{b}.attn.hook_k")
        rec.output(attn.v_proj, f"{b}.attn.hook_v")
        rec.output(attn, f"{b}.attn.hook_pattern", index=1)
        rec.input(attn.out_proj, f"{b}.attn.hook_z")
        rec.output(attn, f"{b}.hook_attn_out", index=0)
        rec.input(layer.final_layer_norm, f"{b}.hook_resid_mid")
        rec.output(layer.fc1, f"{b}.mlp.hook_pre")
        rec.input(layer.fc2, f"{b}.mlp.hook_post")
        rec.output(layer.fc2, f"{b}.hook_mlp_out")
        rec.output(layer, f"{b}.hook_resid_post")
    rec.output(enc.layer_norm, "encoder.hook_ln_post")
    for i, layer in enumerate(dec.layers):
        b = f"decoder.blocks.{i}"
        if i == 0:
            rec.input(layer, "decoder.hook_embed")
        rec.input(layer, f"{b}.hook_resid_pre")
        for attn, tag in ((layer.self_attn, "self_attn"), (layer.encoder_attn, "cross_attn")):
            rec.output(attn.q_proj, f"{b}.{tag}.hook_q")
            rec.output(attn.k_proj, f"{b}.{tag}.hook_k")
            rec.output(attn.v_proj, f"{b}.{tag}.hook_v")
            rec.output(attn, f"{b}.{tag}.hook_pattern", index=1)
            rec.input(attn.out_proj, f"{b}.{tag}.hook_z")
        rec.output(layer.self_attn, f"{b}.hook_self_attn_out", index=0)
        rec.input(layer.encoder_attn_layer_norm, f"{b}.hook_resid_mid")
        rec.output(layer.encoder_attn, f"{b}.hook_cross_attn_out", index=0)
        rec.input(layer.final_layer_norm, f"{b}.hook_resid_mid_cross")
        rec.output(layer.fc1, f"{b}.mlp.hook_pre")
        rec.input(layer.fc2, f"{b}.mlp.hook_post")
        rec.output(layer.fc2, f"{b}.hook_mlp_out")
        rec.output(layer, f"{b}.hook_resid_post")
    rec.output(dec.layer_norm, "decoder.hook_ln_final")
    rec.output(model.proj_out, "hook_logits")


def shape_hooks(raw, feats, cfg):
    """Drop the batch axis; q/k/v/z -> [pos, head, d_head]; pattern -> [head, q, k]."""
    out = {"encoder.hook_input": feats.detach().clone()[0]}
    for name, t in raw.items():
        check(t.shape[0] == 1, f"{name}: batch axis {tuple(t.shape)}")
        t = t[0]
        heads = cfg.encoder_attention_heads if name.startswith("encoder.") else cfg.decoder_attention_heads
        last = name.rsplit(".", 1)[-1]
        if last in ("hook_q", "hook_k", "hook_v", "hook_z"):
            t = t.reshape(t.shape[0], heads, -1)
        out[name] = t
    return out


def expected_shapes(cfg, n_prefix):
    d, F = cfg.d_model, cfg.num_mel_bins
    T = cfg.max_source_positions
    He, Hd = cfg.encoder_attention_heads, cfg.decoder_attention_heads
    de, dd = d // He, d // Hd
    P = n_prefix
    s = {"encoder.hook_input": [F, 2 * T], "encoder.hook_embed": [T, d]}
    for i in range(cfg.encoder_layers):
        b = f"encoder.blocks.{i}."
        s.update({
            b + "hook_resid_pre": [T, d], b + "attn.hook_q": [T, He, de], b + "attn.hook_k": [T, He, de],
            b + "attn.hook_v": [T, He, de], b + "attn.hook_pattern": [He, T, T], b + "attn.hook_z": [T, He, de],
            b + "hook_attn_out": [T, d], b + "hook_resid_mid": [T, d],
            b + "mlp.hook_pre": [T, cfg.encoder_ffn_dim], b + "mlp.hook_post": [T, cfg.encoder_ffn_dim],
            b + "hook_mlp_out": [T, d], b + "hook_resid_post": [T, d],
        })
    s.update({"encoder.hook_ln_post": [T, d], "decoder.hook_embed": [P, d]})
    for i in range(cfg.decoder_layers):
        b = f"decoder.blocks.{i}."
        s.update({
            b + "hook_resid_pre": [P, d],
            b + "self_attn.hook_q": [P, Hd, dd], b + "self_attn.hook_k": [P, Hd, dd],
            b + "self_attn.hook_v": [P, Hd, dd], b + "self_attn.hook_pattern": [Hd, P, P],
            b + "self_attn.hook_z": [P, Hd, dd], b + "hook_self_attn_out": [P, d], b + "hook_resid_mid": [P, d],
            b + "cross_attn.hook_q": [P, Hd, dd], b + "cross_attn.hook_k": [T, Hd, dd],
            b + "cross_attn.hook_v": [T, Hd, dd], b + "cross_attn.hook_pattern": [Hd, P, T],
            b + "cross_attn.hook_z": [P, Hd, dd], b + "hook_cross_attn_out": [P, d],
            b + "hook_resid_mid_cross": [P, d],
            b + "mlp.hook_pre": [P, cfg.decoder_ffn_dim], b + "mlp.hook_post": [P, cfg.decoder_ffn_dim],
            b + "hook_mlp_out": [P, d], b + "hook_resid_post": [P, d],
        })
    s.update({"decoder.hook_ln_final": [P, d], "hook_logits": [P, cfg.vocab_size]})
    return s


def run_hooked(model, feats, prefix):
    rec = Recorder()
    attach_hooks(model, rec)
    try:
        with torch.no_grad():
            out = model(
                input_features=feats,
                decoder_input_ids=torch.tensor([prefix]),
                output_attentions=True,
                output_hidden_states=True,
                use_cache=False,
                return_dict=True,
            )
    finally:
        rec.remove()
    return rec.raw, out


# --------------------------------------------------------------------------------------------
# Consistency checks: recompute every hook from its inputs in float64
# --------------------------------------------------------------------------------------------


def verify_hooks(model, H, out, prefix, cfg):
    sd = {k: f64(v) for k, v in model.state_dict().items()}
    h = {k: f64(v) for k, v in H.items()}

    for name, t in H.items():
        check(bool(torch.isfinite(t).all()), f"{name} has NaN/inf")

    def attn_check(prefix_w, b, tag, x_q, x_kv, n_heads, causal, hf_attn):
        q = x_q @ sd[f"{prefix_w}.q_proj.weight"].T + sd[f"{prefix_w}.q_proj.bias"]
        k = x_kv @ sd[f"{prefix_w}.k_proj.weight"].T
        v = x_kv @ sd[f"{prefix_w}.v_proj.weight"].T + sd[f"{prefix_w}.v_proj.bias"]
        dh = q.shape[-1] // n_heads
        q, k, v = (m.reshape(m.shape[0], n_heads, dh) for m in (q, k, v))
        check_close(f"{b}.{tag}.hook_q", h[f"{b}.{tag}.hook_q"], q)
        check_close(f"{b}.{tag}.hook_k", h[f"{b}.{tag}.hook_k"], k)
        check_close(f"{b}.{tag}.hook_v", h[f"{b}.{tag}.hook_v"], v)
        # Use the hooked q/k/v from here on so that each check isolates one op.
        q, k, v = h[f"{b}.{tag}.hook_q"], h[f"{b}.{tag}.hook_k"], h[f"{b}.{tag}.hook_v"]
        scores = np.einsum("qhd,khd->hqk", q, k) / math.sqrt(dh)
        if causal:
            mask = np.triu(np.ones(scores.shape[1:], dtype=bool), 1)
            scores = np.where(mask[None], -np.inf, scores)
        pat = softmax64(scores)
        got = h[f"{b}.{tag}.hook_pattern"]
        check_close(f"{b}.{tag}.hook_pattern", got, pat)
        check_close(f"{b}.{tag}.hook_pattern rows sum to 1", got.sum(-1), np.ones(got.shape[:2]))
        if causal:
            check(np.all(got[:, mask] == 0.0), f"{b}.{tag}.hook_pattern: nonzero above the diagonal")
        check_close(f"{b}.{tag}.hook_pattern == output_attentions", got, f64(hf_attn[0]), tol=0)
        z = np.einsum("hqk,khd->qhd", got, v)
        check_close(f"{b}.{tag}.hook_z", h[f"{b}.{tag}.hook_z"], z)
        zf = h[f"{b}.{tag}.hook_z"].reshape(z.shape[0], -1)
        return zf @ sd[f"{prefix_w}.out_proj.weight"].T + sd[f"{prefix_w}.out_proj.bias"]

    def mlp_check(pw, b, x):
        pre = layer_norm64(x, sd[f"{pw}.final_layer_norm.weight"], sd[f"{pw}.final_layer_norm.bias"])
        pre = pre @ sd[f"{pw}.fc1.weight"].T + sd[f"{pw}.fc1.bias"]
        check_close(f"{b}.mlp.hook_pre", h[f"{b}.mlp.hook_pre"], pre)
        check_close(f"{b}.mlp.hook_post", h[f"{b}.mlp.hook_post"], gelu64(h[f"{b}.mlp.hook_pre"]))
        mo = h[f"{b}.mlp.hook_post"] @ sd[f"{pw}.fc2.weight"].T + sd[f"{pw}.fc2.bias"]
        check_close(f"{b}.hook_mlp_out", h[f"{b}.hook_mlp_out"], mo)

    # ---- encoder
    x = h["encoder.hook_input"]
    xt = torch.from_numpy(x)[None]
    c1 = torch.nn.functional.conv1d(xt, torch.from_numpy(sd["model.encoder.conv1.weight"]),
                                    torch.from_numpy(sd["model.encoder.conv1.bias"]), padding=1)
    c1 = torch.from_numpy(gelu64(c1.numpy()))
    c2 = torch.nn.functional.conv1d(c1, torch.from_numpy(sd["model.encoder.conv2.weight"]),
                                    torch.from_numpy(sd["model.encoder.conv2.bias"]), stride=2, padding=1)
    emb = gelu64(c2.numpy()[0]).T + sd["model.encoder.embed_positions.weight"]
    check_close("encoder.hook_embed", h["encoder.hook_embed"], emb)
    check_close("encoder.hook_embed == encoder_hidden_states[0]", h["encoder.hook_embed"],
                f64(out.encoder_hidden_states[0][0]), tol=0)
    check(len(out.encoder_hidden_states) == cfg.encoder_layers + 1, "encoder_hidden_states count")
    prev = h["encoder.hook_embed"]
    for i in range(cfg.encoder_layers):
        b, pw = f"encoder.blocks.{i}", f"model.encoder.layers.{i}"
        check_close(f"{b}.hook_resid_pre == previous", h[f"{b}.hook_resid_pre"], prev, tol=0)
        ln1 = layer_norm64(h[f"{b}.hook_resid_pre"], sd[f"{pw}.self_attn_layer_norm.weight"],
                           sd[f"{pw}.self_attn_layer_norm.bias"])
        ao = attn_check(f"{pw}.self_attn", b, "attn", ln1, ln1, cfg.encoder_attention_heads, False,
                        out.encoder_attentions[i])
        check_close(f"{b}.hook_attn_out", h[f"{b}.hook_attn_out"], ao)
        check_close(f"{b}.hook_resid_mid", h[f"{b}.hook_resid_mid"],
                    h[f"{b}.hook_resid_pre"] + h[f"{b}.hook_attn_out"])
        mlp_check(pw, b, h[f"{b}.hook_resid_mid"])
        check_close(f"{b}.hook_resid_post", h[f"{b}.hook_resid_post"],
                    h[f"{b}.hook_resid_mid"] + h[f"{b}.hook_mlp_out"])
        if i + 1 < cfg.encoder_layers:  # HF's last hidden state is the post-LN one
            check_close(f"{b}.hook_resid_post == encoder_hidden_states[{i + 1}]", h[f"{b}.hook_resid_post"],
                        f64(out.encoder_hidden_states[i + 1][0]), tol=0)
        prev = h[f"{b}.hook_resid_post"]
    lnp = layer_norm64(prev, sd["model.encoder.layer_norm.weight"], sd["model.encoder.layer_norm.bias"])
    check_close("encoder.hook_ln_post", h["encoder.hook_ln_post"], lnp)
    check_close("encoder.hook_ln_post == encoder_last_hidden_state", h["encoder.hook_ln_post"],
                f64(out.encoder_last_hidden_state[0]), tol=0)
    check_close("encoder_hidden_states[-1] is post-LN (== hook_ln_post)", h["encoder.hook_ln_post"],
                f64(out.encoder_hidden_states[-1][0]), tol=0)
    enc_out = h["encoder.hook_ln_post"]

    # ---- decoder
    E = sd["model.decoder.embed_tokens.weight"]
    demb = E[prefix] + sd["model.decoder.embed_positions.weight"][: len(prefix)]
    check_close("decoder.hook_embed", h["decoder.hook_embed"], demb)
    prev = h["decoder.hook_embed"]
    for i in range(cfg.decoder_layers):
        b, pw = f"decoder.blocks.{i}", f"model.decoder.layers.{i}"
        check_close(f"{b}.hook_resid_pre == previous", h[f"{b}.hook_resid_pre"], prev, tol=0)
        ln1 = layer_norm64(h[f"{b}.hook_resid_pre"], sd[f"{pw}.self_attn_layer_norm.weight"],
                           sd[f"{pw}.self_attn_layer_norm.bias"])
        so = attn_check(f"{pw}.self_attn", b, "self_attn", ln1, ln1, cfg.decoder_attention_heads, True,
                        out.decoder_attentions[i])
        check_close(f"{b}.hook_self_attn_out", h[f"{b}.hook_self_attn_out"], so)
        check_close(f"{b}.hook_resid_mid", h[f"{b}.hook_resid_mid"],
                    h[f"{b}.hook_resid_pre"] + h[f"{b}.hook_self_attn_out"])
        ln2 = layer_norm64(h[f"{b}.hook_resid_mid"], sd[f"{pw}.encoder_attn_layer_norm.weight"],
                           sd[f"{pw}.encoder_attn_layer_norm.bias"])
        co = attn_check(f"{pw}.encoder_attn", b, "cross_attn", ln2, enc_out, cfg.decoder_attention_heads, False,
                        out.cross_attentions[i])
        check_close(f"{b}.hook_cross_attn_out", h[f"{b}.hook_cross_attn_out"], co)
        check_close(f"{b}.hook_resid_mid_cross", h[f"{b}.hook_resid_mid_cross"],
                    h[f"{b}.hook_resid_mid"] + h[f"{b}.hook_cross_attn_out"])
        mlp_check(pw, b, h[f"{b}.hook_resid_mid_cross"])
        check_close(f"{b}.hook_resid_post", h[f"{b}.hook_resid_post"],
                    h[f"{b}.hook_resid_mid_cross"] + h[f"{b}.hook_mlp_out"])
        if i + 1 < cfg.decoder_layers:
            check_close(f"{b}.hook_resid_post == decoder_hidden_states[{i + 1}]", h[f"{b}.hook_resid_post"],
                        f64(out.decoder_hidden_states[i + 1][0]), tol=0)
        prev = h[f"{b}.hook_resid_post"]
    lnf = layer_norm64(prev, sd["model.decoder.layer_norm.weight"], sd["model.decoder.layer_norm.bias"])
    check_close("decoder.hook_ln_final", h["decoder.hook_ln_final"], lnf)
    check_close("decoder_hidden_states[-1] is post-LN (== hook_ln_final)", h["decoder.hook_ln_final"],
                f64(out.decoder_hidden_states[-1][0]), tol=0)
    check_close("decoder.hook_embed == decoder_hidden_states[0]", h["decoder.hook_embed"],
                f64(out.decoder_hidden_states[0][0]), tol=0)
    check_close("hook_logits == ln_final @ embed_tokens^T", h["hook_logits"], h["decoder.hook_ln_final"] @ E.T)
    check_close("hook_logits == model output logits", h["hook_logits"], f64(out.logits[0]), tol=0)


# --------------------------------------------------------------------------------------------
# Greedy decoding (raw argmax, no suppression, no forced ids)
# --------------------------------------------------------------------------------------------


@torch.no_grad()
def greedy(model, feats, prompt, eot, max_len, cached):
    enc = BaseModelOutput(last_hidden_state=model.model.encoder(feats).last_hidden_state)
    ids = list(prompt)
    new, step_logits = [], []
    past = None
    feed = ids
    while len(new) < GREEDY_MAX_NEW and len(ids) < max_len:
        o = model(
            encoder_outputs=enc,
            decoder_input_ids=torch.tensor([feed]),
            past_key_values=past,
            use_cache=cached,
            return_dict=True,
        )
        logits = o.logits[0, -1]
        step_logits.append(logits.clone())
        t = int(torch.argmax(logits))
        new.append(t)
        ids.append(t)
        if t == eot:
            break
        if cached:
            past = o.past_key_values
            feed = [t]
        else:
            feed = ids
    return new, torch.stack(step_logits)


def greedy_checked(model, feats, prompt, eot, max_len, role):
    toks_c, lg_c = greedy(model, feats, prompt, eot, max_len, cached=True)
    toks_u, lg_u = greedy(model, feats, prompt, eot, max_len, cached=False)
    check(toks_c == toks_u, f"greedy {role}: KV-cached {toks_c} != uncached {toks_u}")
    check_close(f"greedy {role}: cached vs uncached step logits", f64(lg_c), f64(lg_u), tol=1e-5)
    # Per step: the chosen token's logit and the margin over the runner-up (how robust the argmax is).
    top2 = torch.topk(lg_c, 2, dim=-1).values
    scores = [float(v) for v in top2[:, 0]]
    margins = [float(v) for v in top2[:, 0] - top2[:, 1]]
    return {"prompt": list(prompt), "tokens": toks_c, "logits": scores, "margins": margins}


# --------------------------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------------------------


def stats(t):
    a = np.asarray(t, dtype=np.float64)
    return {"absmax": float(np.abs(a).max()), "std": float(a.std())}


def main(argv=None):
    a = parse_args(argv)
    torch.set_num_threads(1)  # reproducible summation order across machines
    torch.use_deterministic_algorithms(True)
    out = a.out
    os.makedirs(out, exist_ok=True)
    tokens = TOKEN_TABLES[a.vocab_size]

    n_frames = 2 * a.max_source_positions
    window_samples = n_frames * HOP

    audio_info = make_audio(out, a.words, a.voice, window_samples)
    model, tok_std, file_info = make_model(a, tokens, out)
    cfg = model.config

    prompt = list(tokens["prompt"])[: a.max_target_positions]
    prefix = (prompt + PREFIX_EXTRA)[: a.max_target_positions]

    summary = {
        "d_model": cfg.d_model,
        "encoder_layers": cfg.encoder_layers,
        "decoder_layers": cfg.decoder_layers,
        "encoder_heads": cfg.encoder_attention_heads,
        "decoder_heads": cfg.decoder_attention_heads,
        "encoder_d_head": cfg.d_model // cfg.encoder_attention_heads,
        "decoder_d_head": cfg.d_model // cfg.decoder_attention_heads,
        "encoder_ffn": cfg.encoder_ffn_dim,
        "decoder_ffn": cfg.decoder_ffn_dim,
        "num_mel_bins": cfg.num_mel_bins,
        "max_source_positions": cfg.max_source_positions,
        "max_target_positions": cfg.max_target_positions,
        "n_frames": n_frames,
        "window_samples": window_samples,
        "sample_rate": SAMPLE_RATE,
        "vocab_size": cfg.vocab_size,
        "vocab_kind": tokens["kind"],
        "eot": tokens["eot"],
        "sot": tokens["sot"],
        "dtype": a.dtype,
        "seed": a.seed,
        "token_embedding_std": tok_std,
        "qk_gain": a.qk_gain,
        "parameters": file_info["parameters"],
        "model_bytes": file_info["bytes"],
        "proj_out_in_file": file_info["proj_out_in_file"],
        "audio": audio_info,
    }

    print(f"model.safetensors: {file_info['bytes']} bytes, {file_info['tensors']} tensors ({file_info['dtype']}), "
          f"{file_info['parameters']} parameters, proj_out in file: {file_info['proj_out_in_file']}")
    print(f"audio: {audio_info['clean']['word']} {audio_info['clean']['samples']} samples, "
          f"{audio_info['corrupt']['word']} {audio_info['corrupt']['samples']} samples "
          f"(window {window_samples})")

    if a.no_goldens:
        for stale in ("golden.safetensors", "golden.json"):  # never leave goldens of another model behind
            if os.path.exists(os.path.join(out, stale)):
                os.remove(os.path.join(out, stale))
        finish(out)
        print("--no-goldens: done")
        return

    # ---- log-mel
    clean = read_wav_mono16(os.path.join(out, "clean.wav"))
    corrupt = read_wav_mono16(os.path.join(out, "corrupt.wav"))
    mel_clean = verify_logmel_recipe(clean, cfg.num_mel_bins, n_frames)
    mel_corrupt = verify_logmel_recipe(corrupt, cfg.num_mel_bins, n_frames)
    # The float64 recipe also reproduces the stock 30 s extractor.
    verify_logmel_recipe(clean, cfg.num_mel_bins, 3000)
    for name, m in (("clean", mel_clean), ("corrupt", mel_corrupt)):
        check(m.max() - m.min() <= 2.0 + 1e-6, f"logmel.{name}: dynamic range > 2")

    # ---- hooked clean run
    feats_clean = torch.from_numpy(mel_clean)[None]
    feats_corrupt = torch.from_numpy(mel_corrupt)[None]
    raw, hf_out = run_hooked(model, feats_clean, prefix)
    H = shape_hooks(raw, feats_clean, cfg)
    names = hook_names(cfg.encoder_layers, cfg.decoder_layers)
    check(sorted(names) == sorted(H), f"hook set mismatch: {sorted(set(names) ^ set(H))}")
    shapes = expected_shapes(cfg, len(prefix))
    for n in names:
        check(list(H[n].shape) == shapes[n], f"{n}: shape {list(H[n].shape)} != DESIGN {shapes[n]}")
    verify_hooks(model, H, hf_out, prefix, cfg)

    # The same run with the KV cache on must give the same logits.
    with torch.no_grad():
        o2 = model(input_features=feats_clean, decoder_input_ids=torch.tensor([prefix]), use_cache=True)
    check_close("teacher-forced logits use_cache=True vs False", f64(o2.logits[0]), f64(H["hook_logits"]), tol=0)

    with torch.no_grad():
        logits_corrupt = model(input_features=feats_corrupt, decoder_input_ids=torch.tensor([prefix]),
                               use_cache=False).logits[0]
    check(bool(torch.isfinite(logits_corrupt).all()), "logits.corrupt has NaN/inf")

    # ---- greedy
    max_len = cfg.max_target_positions
    g_clean = greedy_checked(model, feats_clean, prompt, tokens["eot"], max_len, "clean")
    g_corrupt = greedy_checked(model, feats_corrupt, prompt, tokens["eot"], max_len, "corrupt")

    # ---- write
    tensors = {"logmel.clean": mel_clean, "logmel.corrupt": mel_corrupt,
               "logits.corrupt": logits_corrupt.numpy()}
    for n in names:
        tensors[f"hook/{n}"] = H[n].numpy()
    tensors = {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in tensors.items()}
    save_file(tensors, os.path.join(out, "golden.safetensors"), metadata={"format": "np"})

    golden = {
        "config": summary,
        "prefix": prefix,
        "greedy": {"clean": g_clean, "corrupt": g_corrupt},
        "hooks": names,
        "shapes": {n: shapes[n] for n in names},
        "stats": {n: stats(tensors[f"hook/{n}"]) for n in names},
        "tensors": {k: list(v.shape) for k, v in tensors.items()},
        "transformers_version": transformers.__version__,
        "torch_version": torch.__version__,
        "command": shlex.join(getattr(sys, "orig_argv", [sys.executable] + sys.argv)),
    }
    with open(os.path.join(out, "golden.json"), "w") as f:
        json.dump(golden, f, indent=1)
        f.write("\n")

    # ---- summary
    absmax = {n: golden["stats"][n]["absmax"] for n in names}
    lo = min(absmax, key=absmax.get)
    hi = max(absmax, key=absmax.get)
    hook_checks = [c for c in CHECK_LOG if c[0].startswith(("encoder.", "decoder.", "hook_"))]
    worst = max(hook_checks, key=lambda c: c[1])
    print(f"hooks: {len(names)}, prefix {prefix}")
    print(f"activation absmax: min {absmax[lo]:.4g} ({lo}), max {absmax[hi]:.4g} ({hi})")
    resid = [absmax[n] for n in names if "resid" in n or n.endswith("hook_embed")]
    print(f"residual-stream absmax range: {min(resid):.4g} .. {max(resid):.4g}; "
          f"logits std {golden['stats']['hook_logits']['std']:.3g}")
    for role, g in (("clean", g_clean), ("corrupt", g_corrupt)):
        print(f"greedy {role:7s} {prompt} -> {g['tokens']} (min margin {min(g['margins']):.3g})")
    print(f"max |logits clean - logits corrupt| over the prefix: "
          f"{float((H['hook_logits'] - logits_corrupt).abs().max()):.3g}")
    print(f"{len(CHECK_LOG)} checks passed; worst hook recompute error {worst[1]:.3g} (relative, {worst[0]})")
    finish(out)


def finish(out):
    total = 0
    for f in sorted(os.listdir(out)):
        path = os.path.join(out, f)
        if os.path.isfile(path):
            os.chmod(path, 0o644)  # safetensors writes 0600
            total += os.path.getsize(path)
    print(f"{out}: {total} bytes total")


if __name__ == "__main__":
    main()
