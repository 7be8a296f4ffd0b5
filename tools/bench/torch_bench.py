#!/usr/bin/env python3
"""PyTorch CPU anchor for `npm run bench`: the same model, input and workloads, eager fp32.

Prints one JSON object: encoder forward and the decoder teacher-forced pass (cross K/V
included) at each requested thread count, medians of --reps runs after one warm-up.
Usage: .venv/bin/python tools/bench/torch_bench.py --dir MODEL --mel mel.f32 --tokens 1,2,3
"""

import argparse
import json
import os
import statistics
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402
from transformers import WhisperForConditionalGeneration  # noqa: E402


def timed(fn, reps):
    fn()
    runs = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        runs.append((time.perf_counter() - t0) * 1000)
    return statistics.median(runs), runs


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--dir", required=True)
    p.add_argument("--mel", required=True, help="float32 log-mel [n_mels, frames], raw little-endian")
    p.add_argument("--tokens", required=True)
    p.add_argument("--threads", default="1,2")
    p.add_argument("--reps", type=int, default=5)
    a = p.parse_args()
    model = WhisperForConditionalGeneration.from_pretrained(a.dir, dtype=torch.float32, attn_implementation="eager").eval()
    c = model.config
    mel = torch.from_numpy(np.fromfile(a.mel, dtype=np.float32).reshape(1, c.num_mel_bins, 2 * c.max_source_positions))
    ids = torch.tensor([[int(t) for t in a.tokens.split(",")]])
    out = {"torch": torch.__version__, "results": []}
    with torch.inference_mode():
        hidden = model.model.encoder(mel).last_hidden_state
        for threads in [int(t) for t in a.threads.split(",")]:
            torch.set_num_threads(threads)
            enc_ms, enc_runs = timed(lambda: model.model.encoder(mel), a.reps)
            dec_ms, dec_runs = timed(lambda: model.proj_out(model.model.decoder(input_ids=ids, encoder_hidden_states=hidden, use_cache=False).last_hidden_state), a.reps)
            out["results"].append({"threads": threads, "encoder": {"ms": enc_ms, "runs": enc_runs}, "decoder": {"ms": dec_ms, "runs": dec_runs}})
    print(json.dumps(out))


if __name__ == "__main__":
    main()
