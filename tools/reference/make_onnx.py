#!/usr/bin/env python3
"""Export a Hugging Face Whisper checkpoint to ONNX in the onnx-community layout.

Writes, next to nothing else it does not need:
  DIR/onnx/encoder_model.onnx   input_features [batch, n_mels, frames]  -> last_hidden_state [batch, pos, d]
  DIR/onnx/decoder_model.onnx   input_ids [batch, tokens] (int64),
                                encoder_hidden_states [batch, pos, d]   -> logits [batch, tokens, vocab]

These are the file and tensor names of the official exports (onnx-community/whisper-*,
made by optimum): `models/check.ts` runs them in onnxruntime-web and the benchmark uses
them as the onnxruntime baseline on the same weights. The decoder is the cache-less
teacher-forced one (optimum's `decoder_model.onnx`), not the merged KV-cache variant.

The model is read from DIR (config.json + model.safetensors, as written by
make_fixtures.py or downloaded from the hub by hand) in float32, eager attention, eval
mode; nothing is fetched. The script checks each export against PyTorch with
onnxruntime on a random input (max |diff| printed; it fails above 1e-3 relative).

Usage:
  .venv/bin/python tools/reference/make_onnx.py --dir /tmp/tiny
  .venv/bin/python tools/reference/make_onnx.py --dir tests/fixtures/micro --out /tmp/micro-onnx
"""

from __future__ import annotations

import argparse
import os
import sys
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402
from transformers import WhisperForConditionalGeneration  # noqa: E402

OPSET = 17


class Encoder(torch.nn.Module):
    def __init__(self, model):
        super().__init__()
        self.encoder = model.model.encoder

    def forward(self, input_features):
        return self.encoder(input_features=input_features, return_dict=True).last_hidden_state


class Decoder(torch.nn.Module):
    def __init__(self, model):
        super().__init__()
        self.decoder = model.model.decoder
        self.proj_out = model.proj_out

    def forward(self, input_ids, encoder_hidden_states):
        # transformers 5.x builds its causal mask with aten::diff, which the TorchScript
        # exporter cannot translate; the decoder's own layers run with a plain additive mask.
        d = self.decoder
        T = input_ids.shape[1]
        positions = torch.arange(T, device=input_ids.device)
        h = d.embed_tokens(input_ids) + d.embed_positions.weight[positions]
        above = torch.triu(torch.ones(T, T, dtype=torch.bool, device=input_ids.device), diagonal=1)
        mask = torch.zeros(T, T).masked_fill(above, torch.finfo(torch.float32).min)[None, None]
        for layer in d.layers:
            h = layer(h, attention_mask=mask, encoder_hidden_states=encoder_hidden_states, use_cache=False)
            h = h[0] if isinstance(h, tuple) else h
        h = d.layer_norm(h)
        # Whisper ties proj_out to the token embedding: use the one tensor so the export stores
        # it once (the exporter would otherwise write both copies).
        w = self.proj_out.weight
        if w.data_ptr() == d.embed_tokens.weight.data_ptr():
            w = d.embed_tokens.weight
        # 2-D so the exporter emits Gemm(transB=1) on the stored weight, not a folded transposed copy.
        B, T, D = h.shape
        # (With a bias the symbolic is Gemm; Whisper's projection has none, so it adds zeros.)
        return torch.nn.functional.linear(h.reshape(B * T, D), w, torch.zeros(w.shape[0])).reshape(B, T, -1)


def check(name, path, feeds, want):
    import onnxruntime as ort

    sess = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    got = sess.run(None, feeds)[0]
    err = float(np.abs(got - want).max())
    scale = max(1.0, float(np.abs(want).max()))
    print(f"  {name}: onnxruntime vs PyTorch max |diff| {err:.3g} (scale {scale:.3g})")
    if not err <= 1e-3 * scale:
        sys.exit(f"{name}: the ONNX export disagrees with PyTorch ({err:.3g})")


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dir", required=True, help="checkpoint folder (config.json, model.safetensors)")
    p.add_argument("--out", help="output folder (default: DIR); files go to OUT/onnx/")
    a = p.parse_args()
    out = os.path.join(a.out or a.dir, "onnx")
    os.makedirs(out, exist_ok=True)
    torch.manual_seed(0)
    model = WhisperForConditionalGeneration.from_pretrained(a.dir, dtype=torch.float32, attn_implementation="eager").eval()
    c = model.config
    frames = 2 * c.max_source_positions
    mel = torch.randn(1, c.num_mel_bins, frames) * 0.5
    ids = torch.tensor([[c.decoder_start_token_id, 50259 if c.vocab_size > 51864 else 50256, 50359, 50363][: min(4, c.max_target_positions)]])
    ids = ids.clamp(max=c.vocab_size - 1)

    t0 = time.time()
    enc_path = os.path.join(out, "encoder_model.onnx")
    with torch.no_grad():
        enc = Encoder(model).eval()
        torch.onnx.export(
            enc, (mel,), enc_path, input_names=["input_features"], output_names=["last_hidden_state"],
            dynamic_axes={"input_features": {0: "batch_size"}, "last_hidden_state": {0: "batch_size"}},
            opset_version=OPSET, dynamo=False,
        )
        hidden = enc(mel)
        check("encoder_model.onnx", enc_path, {"input_features": mel.numpy()}, hidden.numpy())

        dec_path = os.path.join(out, "decoder_model.onnx")
        dec = Decoder(model).eval()
        torch.onnx.export(
            dec, (ids, hidden), dec_path, input_names=["input_ids", "encoder_hidden_states"], output_names=["logits"],
            dynamic_axes={
                "input_ids": {0: "batch_size", 1: "decoder_sequence_length"},
                "encoder_hidden_states": {0: "batch_size"},
                "logits": {0: "batch_size", 1: "decoder_sequence_length"},
            },
            opset_version=OPSET, dynamo=False,
        )
        logits = model(input_features=mel, decoder_input_ids=ids, use_cache=False).logits
        check("decoder_model.onnx", dec_path, {"input_ids": ids.numpy(), "encoder_hidden_states": hidden.numpy()}, logits.numpy())
    print(f"wrote {enc_path} and {dec_path} in {time.time() - t0:.1f} s")


if __name__ == "__main__":
    main()
