#!/usr/bin/env python3
"""Check that a mambadna checkpoint means the same model to Hugging Face.

Loads an exported folder (``mambadna export -i MODEL -o FOLDER``) with the
transformers class its config.json names (``MambaForCausalLM`` for -m mamba,
``LlamaForCausalLM`` for -m transformer) and runs it on the token windows that
``mambadna eval --dump-logits`` wrote, comparing its logits with the ones
mambadna computed. Prints the largest absolute difference of the logits and of
the log-probabilities, and exits 1 when it exceeds --atol.

Two ways to run it:

  # the folder and the dump already made:
  tools/check_hf.py --folder FOLDER --logits LOGITS.safetensors

  # or let the script make them from a checkpoint and a genome:
  tools/check_hf.py --mambadna build/mambadna --model MODEL.safetensors \\
      --genome genome.fa [--windows 2] [-L 1024]

--backend numpy replaces transformers with a plain NumPy transcription of the
model's forward pass (Mamba's reference "slow" forward; Llama's eager forward
with RoPE in the rotate_half convention), for machines without torch. It reads
config.json and model.safetensors the way transformers does, so it checks the
layout too, though only transformers itself is the real test.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile

# config.json model_type -> the transformers class that loads it
HF_CLASSES = {"mamba": "MambaForCausalLM", "llama": "LlamaForCausalLM"}


def model_type(folder):
    t = json.load(open(os.path.join(folder, "config.json"))).get("model_type")
    if t not in HF_CLASSES:
        sys.exit(f"{folder}/config.json: model_type {t!r} is not one of {', '.join(HF_CLASSES)}")
    return t


def load_dump(path):
    from safetensors.numpy import load_file
    d = load_file(path)
    return d["input_ids"].astype("int64"), d["logits"].astype("float32")


def hf_logits(folder, ids, device):
    import numpy as np
    import torch
    import transformers

    kind = model_type(folder)
    cls = getattr(transformers, HF_CLASSES[kind])
    # cuDNN would otherwise run Mamba's depthwise conv in TF32 on Ampere and later.
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cuda.matmul.allow_tf32 = False
    kw = {"attn_implementation": "eager"} if kind == "llama" else {}
    try:
        model = cls.from_pretrained(folder, dtype=torch.float32, **kw)
    except TypeError:   # transformers before 4.56 named it torch_dtype
        model = cls.from_pretrained(folder, torch_dtype=torch.float32, **kw)
    model = model.to(device).eval()
    out = []
    with torch.no_grad():
        for b in range(ids.shape[0]):
            x = torch.from_numpy(ids[b : b + 1]).to(device)
            out.append(model(input_ids=x, use_cache=False).logits[0].float().cpu().numpy())
    return np.stack(out)


def numpy_mamba_logits(folder, ids):
    """MambaForCausalLM's slow_forward, transcribed to NumPy in float64."""
    import numpy as np
    from safetensors.numpy import load_file

    cfg = json.load(open(os.path.join(folder, "config.json")))
    w = {k: v.astype(np.float64) for k, v in load_file(os.path.join(folder, "model.safetensors")).items()}
    eps = cfg["layer_norm_epsilon"]
    R, N, K = cfg["time_step_rank"], cfg["state_size"], cfg["conv_kernel"]

    def rmsnorm(x, weight):
        return weight * (x / np.sqrt((x * x).mean(-1, keepdims=True) + eps))

    def silu(x):
        return x / (1 + np.exp(-x))

    def softplus(x):
        return np.where(x > 20, x, np.log1p(np.exp(np.minimum(x, 20))))

    outs = []
    for b in range(ids.shape[0]):
        h = w["backbone.embeddings.weight"][ids[b]]              # (L, d)
        L = h.shape[0]
        for i in range(cfg["num_hidden_layers"]):
            p = f"backbone.layers.{i}."
            x_in = rmsnorm(h, w[p + "norm.weight"])
            proj = x_in @ w[p + "mixer.in_proj.weight"].T          # (L, 2E)
            E = proj.shape[1] // 2
            x, z = proj[:, :E], proj[:, E:]
            cw = w[p + "mixer.conv1d.weight"][:, 0, :]             # (E, K)
            xp = np.concatenate([np.zeros((K - 1, E)), x], 0)
            conv = np.stack([(xp[t : t + K] * cw.T).sum(0) for t in range(L)]) + w[p + "mixer.conv1d.bias"]
            u = silu(conv)                                         # (L, E)
            ssm = u @ w[p + "mixer.x_proj.weight"].T               # (L, R + 2N)
            dt, Bm, Cm = ssm[:, :R], ssm[:, R : R + N], ssm[:, R + N :]
            delta = softplus(dt @ w[p + "mixer.dt_proj.weight"].T + w[p + "mixer.dt_proj.bias"])   # (L, E)
            A = -np.exp(w[p + "mixer.A_log"])                      # (E, N)
            state = np.zeros((E, N))
            y = np.empty((L, E))
            for t in range(L):
                state = np.exp(delta[t][:, None] * A) * state + (delta[t] * u[t])[:, None] * Bm[t][None, :]
                y[t] = state @ Cm[t]
            y = (y + u * w[p + "mixer.D"]) * silu(z)
            h = h + y @ w[p + "mixer.out_proj.weight"].T
        h = rmsnorm(h, w["backbone.norm_f.weight"])
        head = w.get("lm_head.weight", w["backbone.embeddings.weight"])
        outs.append(h @ head.T)
    return np.stack(outs).astype(np.float32)


def numpy_llama_logits(folder, ids):
    """LlamaForCausalLM's eager forward, transcribed to NumPy in float64."""
    import numpy as np
    from safetensors.numpy import load_file

    cfg = json.load(open(os.path.join(folder, "config.json")))
    w = {k: v.astype(np.float64) for k, v in load_file(os.path.join(folder, "model.safetensors")).items()}
    eps, theta = cfg["rms_norm_eps"], cfg.get("rope_theta", 10000.0)
    H = cfg["num_attention_heads"]
    dh = cfg.get("head_dim") or cfg["hidden_size"] // H

    def rmsnorm(x, weight):
        return weight * (x / np.sqrt((x * x).mean(-1, keepdims=True) + eps))

    def silu(x):
        return x / (1 + np.exp(-x))

    def rope(x, L):                                # x (L, H, dh)
        inv = 1.0 / theta ** (np.arange(0, dh, 2) / dh)
        ang = np.arange(L)[:, None] * inv[None, :]  # (L, dh/2)
        cos = np.concatenate([np.cos(ang)] * 2, -1)[:, None, :]
        sin = np.concatenate([np.sin(ang)] * 2, -1)[:, None, :]
        rot = np.concatenate([-x[..., dh // 2 :], x[..., : dh // 2]], -1)
        return x * cos + rot * sin

    outs = []
    for b in range(ids.shape[0]):
        h = w["model.embed_tokens.weight"][ids[b]]      # (L, d)
        L = h.shape[0]
        mask = np.triu(np.full((L, L), -np.inf), 1)
        for i in range(cfg["num_hidden_layers"]):
            p = f"model.layers.{i}."
            x = rmsnorm(h, w[p + "input_layernorm.weight"])
            q = (x @ w[p + "self_attn.q_proj.weight"].T).reshape(L, H, dh)
            k = (x @ w[p + "self_attn.k_proj.weight"].T).reshape(L, H, dh)
            v = (x @ w[p + "self_attn.v_proj.weight"].T).reshape(L, H, dh)
            q, k = rope(q, L), rope(k, L)
            s = np.einsum("thc,shc->hts", q, k) / np.sqrt(dh) + mask[None]
            s = np.exp(s - s.max(-1, keepdims=True))
            s /= s.sum(-1, keepdims=True)
            o = np.einsum("hts,shc->thc", s, v).reshape(L, H * dh)
            h = h + o @ w[p + "self_attn.o_proj.weight"].T
            x = rmsnorm(h, w[p + "post_attention_layernorm.weight"])
            a = silu(x @ w[p + "mlp.gate_proj.weight"].T) * (x @ w[p + "mlp.up_proj.weight"].T)
            h = h + a @ w[p + "mlp.down_proj.weight"].T
        h = rmsnorm(h, w["model.norm.weight"])
        head = w.get("lm_head.weight", w["model.embed_tokens.weight"])
        outs.append(h @ head.T)
    return np.stack(outs).astype(np.float32)


def log_softmax(x):
    import numpy as np
    m = x.max(-1, keepdims=True)
    return x - m - np.log(np.exp(x - m).sum(-1, keepdims=True))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--folder", help="exported folder (config.json + model.safetensors)")
    ap.add_argument("--logits", help="safetensors from 'mambadna eval --dump-logits'")
    ap.add_argument("--mambadna", help="the mambadna binary (to make the folder and the dump)")
    ap.add_argument("--model", help="checkpoint to export and evaluate (with --mambadna)")
    ap.add_argument("--genome", nargs="+", help="genome file(s) to take windows from (with --mambadna)")
    ap.add_argument("--windows", type=int, default=2, help="windows to compare [2]")
    ap.add_argument("-L", type=int, default=0, help="window length [the checkpoint's]")
    ap.add_argument("--backend", choices=["transformers", "numpy"], default="transformers")
    ap.add_argument("--device", default="cuda" if os.environ.get("CUDA_VISIBLE_DEVICES", "x") != "" else "cpu",
                    help="torch device for transformers [cuda when visible]")
    ap.add_argument("--atol", type=float, default=1e-3, help="largest allowed logit difference [1e-3]")
    a = ap.parse_args()

    tmp = None
    if a.mambadna:
        if not (a.model and a.genome):
            ap.error("--mambadna needs --model and --genome")
        tmp = tempfile.mkdtemp(prefix="check_hf.")
        a.folder = os.path.join(tmp, "hf")
        a.logits = os.path.join(tmp, "logits.safetensors")
        subprocess.run([a.mambadna, "export", "-q", "-i", a.model, "-o", a.folder], check=True)
        cmd = [a.mambadna, "eval", "-q", "-i", a.model, "--windows", str(a.windows), "--dump-windows",
               str(a.windows), "--dump-logits", a.logits, "-x", "cpu"]
        if a.L:
            cmd += ["-L", str(a.L)]
        subprocess.run(cmd + a.genome, check=True, stdout=subprocess.DEVNULL)
    if not (a.folder and a.logits):
        ap.error("give --folder and --logits, or --mambadna --model --genome")

    ids, ours = load_dump(a.logits)
    if a.backend == "numpy":
        numpy_logits = numpy_mamba_logits if model_type(a.folder) == "mamba" else numpy_llama_logits
        theirs = numpy_logits(a.folder, ids)
        who = f"numpy transcription of {HF_CLASSES[model_type(a.folder)]}"
    else:
        device = a.device
        try:
            import torch
            if device.startswith("cuda") and not torch.cuda.is_available():
                device = "cpu"
        except ImportError:
            sys.exit("torch is not installed; use --backend numpy for a layout check without it")
        theirs = hf_logits(a.folder, ids, device)
        who = f"transformers {HF_CLASSES[model_type(a.folder)]} ({device})"
    import numpy as np
    d_logit = float(np.abs(theirs - ours).max())
    d_lp = float(np.abs(log_softmax(theirs.astype(np.float64)) - log_softmax(ours.astype(np.float64))).max())
    agree = float((theirs.argmax(-1) == ours.argmax(-1)).mean())
    print(f"windows {ids.shape[0]} x {ids.shape[1]} tokens, vocab {ours.shape[2]}; reference: {who}")
    print(f"max |logit difference|        {d_logit:.3e}")
    print(f"max |log-prob difference|     {d_lp:.3e}")
    print(f"argmax agreement              {agree:.6f}")
    ok = d_logit <= a.atol
    print("OK" if ok else f"FAIL: difference above --atol {a.atol}")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
