#!/usr/bin/python3
"""torch_baseline.py -- the PyTorch side of bench/compare.sh.

Times full training steps (zero_grad, forward, backward, optimizer.step) of
the two models of bench/bert-small.cfg and bench/gpt-small.cfg, written in
plain PyTorch the way Hugging Face Transformers computes them (Transformers
itself is not installed here):

  bert-small  BertForSequenceClassification: word + position + token-type
              embeddings, LayerNorm (eps 1e-12), dropout; post-LN blocks with
              separate query/key/value Linear layers, an additive attention
              mask, softmax, dropout on the probabilities, GELU (erf); tanh
              pooler on the first token, dropout, classifier; cross-entropy.
  gpt-small   GPT2LMHeadModel: token + position embeddings, dropout; pre-LN
              causal blocks with Conv1D (addmm) projections, the causal mask
              applied with torch.where, GELU "gelu_new" (the tanh form,
              written out as Transformers' NewGELUActivation does); final
              LayerNorm; LM head tied to the token embeddings; the loss
              shifts logits and labels by one as GPT2LMHeadModel does.

AdamW (torch.optim.AdamW, lr 1e-4, weight decay 0.01 except biases and
LayerNorm weights, like the Trainer and tftx's default no_decay). One random
batch of tokens (and labels) is drawn once and reused, as `tftx bench` does.

  /usr/bin/python3 bench/torch_baseline.py bert-small --threads 2 --steps 10

Threads: --threads N calls torch.set_num_threads(N) (intra-op OpenMP
threads). OpenBLAS, which runs the matrix products of Debian's torch, keeps
its own count: with the pthread build (Debian's default libblas.so.3) it is
OPENBLAS_NUM_THREADS, or every core when unset. --blas-threads N sets
OPENBLAS_NUM_THREADS before torch is imported; without it the environment
is left as it is. The script prints what it ran with.

On a GPU: --device cuda [--precision fp32|tf32|bf16] [--compile MODE] runs
the same models on it (fused AdamW, bf16 through autocast, steps timed
between torch.cuda.synchronize calls); tests/gpu/run.sh uses it for the
PyTorch figures on the same card.

Output: one line per model, ms/step as the median of --steps steps after
--warmup steps, tokens/s = batch x seq_len / median.
"""
import argparse
import math
import os
import statistics
import sys
import time

MODELS = {
    # name: (arch, vocab, T, C, heads, layers, d_ff, batch)
    "bert-small": ("encoder", 8192, 128, 256, 4, 4, 1024, 32),
    "gpt-small": ("decoder", 8192, 256, 384, 6, 6, 1536, 8),
}


def parse_args():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("model", choices=sorted(MODELS))
    ap.add_argument("--threads", type=int, default=0, help="torch.set_num_threads (0: torch's default)")
    ap.add_argument("--blas-threads", type=int, default=0, help="OPENBLAS_NUM_THREADS (0: leave the environment)")
    ap.add_argument("--device", default="cpu", help="cpu, or cuda (a GPU: fused AdamW, timed with synchronize)")
    ap.add_argument("--precision", choices=["fp32", "tf32", "bf16"], default="fp32",
                    help="on cuda: fp32, tf32 matrix products, or bf16 autocast")
    ap.add_argument("--compile", default="", help="on cuda: torch.compile mode (e.g. default, reduce-overhead)")
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--dropout", type=float, default=0.1)
    ap.add_argument("--gelu", choices=["transformers", "fused"], default="transformers",
                    help="gpt-small's GELU: Transformers' NewGELUActivation formula, or F.gelu(approximate='tanh')")
    return ap.parse_args()


args = parse_args()
if args.blas_threads > 0:
    os.environ["OPENBLAS_NUM_THREADS"] = str(args.blas_threads)

import torch  # noqa: E402  (after the environment is set)
import torch.nn as nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402


# ---------------------------------------------------------------- BERT

class BertLayer(nn.Module):
    def __init__(self, C, NH, FF, p):
        super().__init__()
        self.NH, self.HS = NH, C // NH
        self.query, self.key, self.value = nn.Linear(C, C), nn.Linear(C, C), nn.Linear(C, C)
        self.attn_drop = nn.Dropout(p)
        self.out_dense, self.out_drop, self.out_ln = nn.Linear(C, C), nn.Dropout(p), nn.LayerNorm(C, eps=1e-12)
        self.inter = nn.Linear(C, FF)
        self.ffn_out, self.ffn_drop, self.ffn_ln = nn.Linear(FF, C), nn.Dropout(p), nn.LayerNorm(C, eps=1e-12)

    def heads(self, x):  # (B,T,C) -> (B,NH,T,HS), BertSelfAttention.transpose_for_scores
        B, T, _ = x.shape
        return x.view(B, T, self.NH, self.HS).permute(0, 2, 1, 3)

    def forward(self, x, ext_mask):
        B, T, C = x.shape
        q, k, v = self.heads(self.query(x)), self.heads(self.key(x)), self.heads(self.value(x))
        scores = torch.matmul(q, k.transpose(-1, -2)) / math.sqrt(self.HS) + ext_mask
        probs = self.attn_drop(F.softmax(scores, dim=-1))
        ctx = torch.matmul(probs, v).permute(0, 2, 1, 3).contiguous().view(B, T, C)
        h = self.out_ln(self.out_drop(self.out_dense(ctx)) + x)
        return self.ffn_ln(self.ffn_drop(self.ffn_out(F.gelu(self.inter(h)))) + h)


class Bert(nn.Module):
    def __init__(self, V, T, C, NH, L, FF, p, labels=2):
        super().__init__()
        self.word, self.pos, self.token_type = nn.Embedding(V, C), nn.Embedding(T, C), nn.Embedding(2, C)
        self.emb_ln, self.emb_drop = nn.LayerNorm(C, eps=1e-12), nn.Dropout(p)
        self.layers = nn.ModuleList([BertLayer(C, NH, FF, p) for _ in range(L)])
        self.pool = nn.Linear(C, C)
        self.cls_drop, self.classifier = nn.Dropout(p), nn.Linear(C, labels)

    def forward(self, tokens, mask, labels):
        B, T = tokens.shape
        pos = torch.arange(T, device=tokens.device).unsqueeze(0)
        seg = torch.zeros_like(tokens)
        x = self.emb_drop(self.emb_ln(self.word(tokens) + self.token_type(seg) + self.pos(pos)))
        # get_extended_attention_mask: (1 - mask) * finfo.min, added to the scores
        ext = (1.0 - mask[:, None, None, :].to(x.dtype)) * torch.finfo(x.dtype).min
        for layer in self.layers:
            x = layer(x, ext)
        pooled = torch.tanh(self.pool(x[:, 0]))
        logits = self.classifier(self.cls_drop(pooled))
        return F.cross_entropy(logits, labels)


# ---------------------------------------------------------------- GPT-2

def gelu_new(x):  # Transformers' NewGELUActivation
    return 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * torch.pow(x, 3.0))))


class Conv1D(nn.Module):  # Transformers' Conv1D: weight (C_in, C_out), addmm
    def __init__(self, nf, nx):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(nx, nf).normal_(std=0.02))
        self.bias = nn.Parameter(torch.zeros(nf))

    def forward(self, x):
        out = torch.addmm(self.bias, x.view(-1, x.size(-1)), self.weight)
        return out.view(x.size()[:-1] + (out.size(-1),))


class GPT2Block(nn.Module):
    def __init__(self, C, NH, FF, T, p, gelu):
        super().__init__()
        self.NH, self.HS, self.gelu = NH, C // NH, gelu
        self.ln_1, self.ln_2 = nn.LayerNorm(C, eps=1e-5), nn.LayerNorm(C, eps=1e-5)
        self.c_attn, self.c_proj = Conv1D(3 * C, C), Conv1D(C, C)
        self.attn_drop, self.resid_drop = nn.Dropout(p), nn.Dropout(p)
        self.c_fc, self.mlp_proj, self.mlp_drop = Conv1D(FF, C), Conv1D(C, FF), nn.Dropout(p)
        self.register_buffer("bias", torch.tril(torch.ones(T, T, dtype=torch.bool)).view(1, 1, T, T))

    def heads(self, x):  # GPT2Attention._split_heads
        B, T, _ = x.shape
        return x.view(B, T, self.NH, self.HS).permute(0, 2, 1, 3)

    def forward(self, x):
        B, T, C = x.shape
        q, k, v = self.c_attn(self.ln_1(x)).split(C, dim=2)
        q, k, v = self.heads(q), self.heads(k), self.heads(v)
        w = torch.matmul(q, k.transpose(-1, -2)) / torch.full([], self.HS ** 0.5, dtype=x.dtype, device=x.device)
        causal = self.bias[:, :, :T, :T]
        w = torch.where(causal, w, torch.full([], torch.finfo(w.dtype).min, dtype=w.dtype, device=w.device))
        w = self.attn_drop(F.softmax(w, dim=-1))
        a = torch.matmul(w, v).permute(0, 2, 1, 3).contiguous().view(B, T, C)
        x = x + self.resid_drop(self.c_proj(a))
        h = self.c_fc(self.ln_2(x))
        h = gelu_new(h) if self.gelu == "transformers" else F.gelu(h, approximate="tanh")
        return x + self.mlp_drop(self.mlp_proj(h))


class GPT2(nn.Module):
    def __init__(self, V, T, C, NH, L, FF, p, gelu):
        super().__init__()
        self.wte, self.wpe, self.drop = nn.Embedding(V, C), nn.Embedding(T, C), nn.Dropout(p)
        self.h = nn.ModuleList([GPT2Block(C, NH, FF, T, p, gelu) for _ in range(L)])
        self.ln_f = nn.LayerNorm(C, eps=1e-5)

    def forward(self, tokens, mask, labels):
        B, T = tokens.shape
        x = self.drop(self.wte(tokens) + self.wpe(torch.arange(T, device=tokens.device).unsqueeze(0)))
        for block in self.h:
            x = block(x)
        logits = F.linear(self.ln_f(x), self.wte.weight)  # tied LM head
        shift_logits = logits[..., :-1, :].contiguous()
        shift_labels = labels[..., 1:].contiguous()
        return F.cross_entropy(shift_logits.view(-1, shift_logits.size(-1)), shift_labels.view(-1))


# ---------------------------------------------------------------- timing

def main():
    arch, V, T, C, NH, L, FF, B = MODELS[args.model]
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    if arch == "encoder":
        model = Bert(V, T, C, NH, L, FF, args.dropout)
    else:
        model = GPT2(V, T, C, NH, L, FF, args.dropout, args.gelu)
    for m in model.modules():  # BERT/GPT-2 initialisation: N(0, 0.02), zero biases
        if isinstance(m, (nn.Linear, nn.Embedding)):
            m.weight.data.normal_(std=0.02)
        if isinstance(m, nn.Linear) and m.bias is not None:
            m.bias.data.zero_()
    dev = torch.device(args.device)
    cuda = dev.type == "cuda"
    if cuda:
        torch.backends.cuda.matmul.allow_tf32 = args.precision == "tf32"
        torch.backends.cudnn.allow_tf32 = args.precision == "tf32"
    model.to(dev)
    model.train()
    decay = [p for n, p in model.named_parameters() if not ("bias" in n or "ln" in n)]
    no_decay = [p for n, p in model.named_parameters() if "bias" in n or "ln" in n]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.01}, {"params": no_decay, "weight_decay": 0.0}],
                            lr=1e-4, **({"fused": True} if cuda else {}))
    g = torch.Generator().manual_seed(7)
    tokens = torch.randint(0, V, (B, T), generator=g)
    mask = torch.ones(B, T, dtype=torch.long)
    labels = torch.randint(0, 2, (B,), generator=g) if arch == "encoder" else tokens
    tokens, mask, labels = tokens.to(dev), mask.to(dev), labels.to(dev)
    fwd = model
    if args.compile:
        fwd = torch.compile(model, mode=args.compile)
    autocast = torch.autocast("cuda", dtype=torch.bfloat16, enabled=cuda and args.precision == "bf16")

    def sync():
        if cuda:
            torch.cuda.synchronize()

    times, losses = [], []
    for i in range(args.warmup + args.steps):
        sync()
        t0 = time.perf_counter()
        opt.zero_grad()
        with autocast:
            loss = fwd(tokens, mask, labels)
        loss.backward()
        opt.step()
        sync()
        dt = time.perf_counter() - t0
        losses.append(loss.item())
        if i >= args.warmup:
            times.append(dt)
    ms = 1e3 * statistics.median(times)
    n_params = sum(p.numel() for p in model.parameters())
    blas = os.environ.get("OPENBLAS_NUM_THREADS", "unset")
    print(f"torch {torch.__version__} {args.model}: {n_params} parameters, batch {B} x {T} tokens, "
          f"torch threads {torch.get_num_threads()}, OPENBLAS_NUM_THREADS {blas}, "
          f"OMP_WAIT_POLICY {os.environ.get('OMP_WAIT_POLICY', 'unset')}"
          + (f", {torch.cuda.get_device_name(dev)} {args.precision}"
             f"{', compiled ' + args.compile if args.compile else ''}" if cuda else ""))
    print(f"  {args.steps} steps after {args.warmup} warm-up: median {ms:.1f} ms/step "
          f"(min {1e3 * min(times):.1f}, max {1e3 * max(times):.1f})")
    print(f"  {B * T / (ms / 1e3):.0f} tokens/s; loss {losses[0]:.4f} -> {losses[-1]:.4f}")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
