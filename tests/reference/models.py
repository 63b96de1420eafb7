#!/usr/bin/python3
"""
models.py -- reference forward and backward passes of tiny BERT and GPT-2
models for the `transformer` model plugin, written as fixtures that
tests/models/test_models.c compares against. The test suite itself never
needs PyTorch.

Regenerate (Debian's python3-torch 1.13 produced the committed files;
Hugging Face Transformers is not needed and not used):

    /usr/bin/python3 tests/reference/models.py [tests/reference/fixtures]

The models are written here in plain torch, following the math of
Transformers' BertForSequenceClassification and GPT2LMHeadModel:

  BERT:  x = LayerNorm(word[tok] + pos[t] + type[seg])
         per layer (post-LN):
           q, k, v = x Wq^T + bq, ...          split into heads of HS = C/NH
           p = softmax(q k^T / sqrt(HS) + (1 - mask) * finfo.min)   (keys)
           x = LayerNorm(x + (p v) Wo^T + bo)
           x = LayerNorm(x + gelu(x Wi^T + bi) Wo2^T + bo2)      gelu: erf
         pooled = tanh(x[:, 0] Wp^T + bp);  logits = pooled Wc^T + bc
         loss = mean over the batch of cross-entropy(logits, label)
  GPT-2: x = wte[tok] + wpe[t]
         per layer (pre-LN):
           x = x + attn(ln_1(x))    causal: query t sees keys <= t
           x = x + mlp(ln_2(x))     mlp: gelu_new (tanh approximation)
         logits = ln_f(x) wte^T     (LM head tied to wte)
         loss = mean over targets != -100 of cross-entropy(logits, target)
  GPT-2's Conv1D layers compute x W + b with W stored (C_in, C_out).

The targets of the decoder batch are given as they are (next-token targets,
-100 = ignored): no shift happens inside the model, unlike GPT2LMHeadModel's
`labels`, which it shifts itself.

Weights are drawn once in float32 (normal, std 0.2 for matrices, so that
the activations are far from the linear regime; LayerNorm weights near 1,
biases near 0) and everything is computed in float64 from those float32
values, so the references are exact to float32 rounding of the results.
Dropout is 0.

What it writes (every tensor file in the safetensors format, written here
by hand: 8-byte little-endian header length, a JSON header of
name -> {dtype, shape, data_offsets}, then raw little-endian data):

  encoder_tiny/config.json, encoder_tiny/model.safetensors
      a BertForSequenceClassification checkpoint as Transformers saves it
  decoder_tiny/config.json, decoder_tiny/model.safetensors
      a GPT2LMHeadModel checkpoint (Conv1D weights (C_in, C_out); no
      lm_head.weight, which is tied to transformer.wte.weight)
  model_encoder_tiny.safetensors
      tokens (B,T) I32, segments (B,T) I32, mask (B,T) U8, labels (B) I32,
      logits (B,L) F32, loss (1) F32, and grad.<name> for every parameter
  model_decoder_tiny.safetensors
      tokens (B,T) I32, targets (B,T) I32, logprobs (B,T,V) F32 (log-softmax
      of the logits), token_losses (B,T) F32 (0 where ignored), loss (1) F32,
      and grad.<name> for every parameter
  Gradients are in the layout of the tftx kernels, Linear (OC, C): GPT-2's
  Conv1D weight gradients are transposed from the checkpoint's (C, OC).
"""
import json
import math
import os
import struct
import sys

import torch
import torch.nn.functional as F

SEED = 20240607
DT = torch.float64

ENCODER = dict(vocab_size=101, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
               intermediate_size=64, max_position_embeddings=16, type_vocab_size=2,
               num_labels=3, layer_norm_eps=1e-12)
DECODER = dict(vocab_size=97, n_embd=24, n_layer=2, n_head=3, n_positions=16,
               layer_norm_epsilon=1e-5)

# ------------------------------------------------------------ safetensors

DTYPES = {torch.float32: ("F32", "<f4"), torch.int32: ("I32", "<i4"), torch.uint8: ("U8", "u1")}


def write_safetensors(path, tensors):
    """tensors: list of (name, torch tensor of float32/int32/uint8), in order."""
    header, blobs, offset = {}, [], 0
    for name, t in tensors:
        t = t.detach().contiguous()
        dtype, fmt = DTYPES[t.dtype]
        blob = t.numpy().astype(fmt).tobytes()
        header[name] = {"dtype": dtype, "shape": list(t.shape), "data_offsets": [offset, offset + len(blob)]}
        blobs.append(blob)
        offset += len(blob)
    header["__metadata__"] = {"format": "pt"}
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)  # the data starts 8-byte aligned
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for b in blobs:
            f.write(b)


def write_json(path, obj):
    with open(path, "w") as f:
        json.dump(obj, f, indent=2, sort_keys=True)
        f.write("\n")

# ------------------------------------------------------------ weights


def draw(gen, shape, kind):
    """float32 weights: 'w' matrices N(0, 0.2), 'ln' 1 + N(0, 0.1), 'b' N(0, 0.1)."""
    x = torch.randn(shape, generator=gen, dtype=torch.float32)
    if kind == "w":
        return x * 0.2
    if kind == "ln":
        return 1.0 + x * 0.1
    return x * 0.1


def bert_params(gen, c):
    V, C, P, S = c["vocab_size"], c["hidden_size"], c["max_position_embeddings"], c["type_vocab_size"]
    Fd, L = c["intermediate_size"], c["num_labels"]
    p = []
    e = "bert.embeddings."
    p += [(e + "word_embeddings.weight", (V, C), "w"), (e + "position_embeddings.weight", (P, C), "w"),
          (e + "token_type_embeddings.weight", (S, C), "w"),
          (e + "LayerNorm.weight", (C,), "ln"), (e + "LayerNorm.bias", (C,), "b")]
    for l in range(c["num_hidden_layers"]):
        a = "bert.encoder.layer.%d." % l
        for m in ("query", "key", "value"):
            p += [(a + "attention.self.%s.weight" % m, (C, C), "w"), (a + "attention.self.%s.bias" % m, (C,), "b")]
        p += [(a + "attention.output.dense.weight", (C, C), "w"), (a + "attention.output.dense.bias", (C,), "b"),
              (a + "attention.output.LayerNorm.weight", (C,), "ln"),
              (a + "attention.output.LayerNorm.bias", (C,), "b"),
              (a + "intermediate.dense.weight", (Fd, C), "w"), (a + "intermediate.dense.bias", (Fd,), "b"),
              (a + "output.dense.weight", (C, Fd), "w"), (a + "output.dense.bias", (C,), "b"),
              (a + "output.LayerNorm.weight", (C,), "ln"), (a + "output.LayerNorm.bias", (C,), "b")]
    p += [("bert.pooler.dense.weight", (C, C), "w"), ("bert.pooler.dense.bias", (C,), "b"),
          ("classifier.weight", (L, C), "w"), ("classifier.bias", (L,), "b")]
    return [(n, draw(gen, s, k)) for n, s, k in p]


def gpt2_params(gen, c):
    V, C, P = c["vocab_size"], c["n_embd"], c["n_positions"]
    Fd = 4 * C
    p = [("transformer.wte.weight", (V, C), "w"), ("transformer.wpe.weight", (P, C), "w")]
    for l in range(c["n_layer"]):
        h = "transformer.h.%d." % l
        p += [(h + "ln_1.weight", (C,), "ln"), (h + "ln_1.bias", (C,), "b"),
              (h + "attn.c_attn.weight", (C, 3 * C), "w"), (h + "attn.c_attn.bias", (3 * C,), "b"),
              (h + "attn.c_proj.weight", (C, C), "w"), (h + "attn.c_proj.bias", (C,), "b"),
              (h + "ln_2.weight", (C,), "ln"), (h + "ln_2.bias", (C,), "b"),
              (h + "mlp.c_fc.weight", (C, Fd), "w"), (h + "mlp.c_fc.bias", (Fd,), "b"),
              (h + "mlp.c_proj.weight", (Fd, C), "w"), (h + "mlp.c_proj.bias", (C,), "b")]
    p += [("transformer.ln_f.weight", (C,), "ln"), ("transformer.ln_f.bias", (C,), "b")]
    return [(n, draw(gen, s, k)) for n, s, k in p]

# ------------------------------------------------------------ models


def split_heads(x, nh):
    B, T, C = x.shape
    return x.view(B, T, nh, C // nh).transpose(1, 2)  # (B, NH, T, HS)


def merge_heads(x):
    B, NH, T, HS = x.shape
    return x.transpose(1, 2).reshape(B, T, NH * HS)


def bert_forward(P, c, tokens, segments, mask, labels):
    C, NH, eps = c["hidden_size"], c["num_attention_heads"], c["layer_norm_eps"]
    T = tokens.shape[1]
    e = "bert.embeddings."
    x = P[e + "word_embeddings.weight"][tokens] + P[e + "position_embeddings.weight"][torch.arange(T)] \
        + P[e + "token_type_embeddings.weight"][segments]
    x = F.layer_norm(x, (C,), P[e + "LayerNorm.weight"], P[e + "LayerNorm.bias"], eps)
    # BertModel's extended attention mask: 0 for tokens, the dtype's minimum for padding keys
    ext = (1.0 - mask.to(DT))[:, None, None, :] * torch.finfo(DT).min
    for l in range(c["num_hidden_layers"]):
        a = "bert.encoder.layer.%d." % l
        q, k, v = (split_heads(F.linear(x, P[a + "attention.self.%s.weight" % m], P[a + "attention.self.%s.bias" % m]),
                               NH) for m in ("query", "key", "value"))
        scores = q @ k.transpose(-1, -2) / math.sqrt(C // NH) + ext
        ctx = merge_heads(torch.softmax(scores, dim=-1) @ v)
        h = F.linear(ctx, P[a + "attention.output.dense.weight"], P[a + "attention.output.dense.bias"])
        x = F.layer_norm(h + x, (C,), P[a + "attention.output.LayerNorm.weight"],
                         P[a + "attention.output.LayerNorm.bias"], eps)
        i = F.gelu(F.linear(x, P[a + "intermediate.dense.weight"], P[a + "intermediate.dense.bias"]))
        o = F.linear(i, P[a + "output.dense.weight"], P[a + "output.dense.bias"])
        x = F.layer_norm(o + x, (C,), P[a + "output.LayerNorm.weight"], P[a + "output.LayerNorm.bias"], eps)
    pooled = torch.tanh(F.linear(x[:, 0], P["bert.pooler.dense.weight"], P["bert.pooler.dense.bias"]))
    logits = F.linear(pooled, P["classifier.weight"], P["classifier.bias"])
    loss = F.cross_entropy(logits, labels.long())
    return logits, loss


def gelu_new(x):
    return 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * torch.pow(x, 3.0))))


def gpt2_forward(P, c, tokens, targets):
    C, NH, eps = c["n_embd"], c["n_head"], c["layer_norm_epsilon"]
    B, T = tokens.shape
    x = P["transformer.wte.weight"][tokens] + P["transformer.wpe.weight"][torch.arange(T)]
    causal = torch.tril(torch.ones(T, T, dtype=torch.bool))
    for l in range(c["n_layer"]):
        h = "transformer.h.%d." % l
        a = F.layer_norm(x, (C,), P[h + "ln_1.weight"], P[h + "ln_1.bias"], eps)
        qkv = a @ P[h + "attn.c_attn.weight"] + P[h + "attn.c_attn.bias"]
        q, k, v = (split_heads(t, NH) for t in qkv.split(C, dim=2))
        scores = q @ k.transpose(-1, -2) / math.sqrt(C // NH)
        scores = torch.where(causal, scores, torch.tensor(torch.finfo(DT).min, dtype=DT))
        ctx = merge_heads(torch.softmax(scores, dim=-1) @ v)
        x = x + ctx @ P[h + "attn.c_proj.weight"] + P[h + "attn.c_proj.bias"]
        m = F.layer_norm(x, (C,), P[h + "ln_2.weight"], P[h + "ln_2.bias"], eps)
        m = gelu_new(m @ P[h + "mlp.c_fc.weight"] + P[h + "mlp.c_fc.bias"])
        x = x + m @ P[h + "mlp.c_proj.weight"] + P[h + "mlp.c_proj.bias"]
    x = F.layer_norm(x, (C,), P["transformer.ln_f.weight"], P["transformer.ln_f.bias"], eps)
    logits = x @ P["transformer.wte.weight"].t()
    flat_t = targets.reshape(-1).long()
    token_losses = F.cross_entropy(logits.reshape(B * T, -1), flat_t, ignore_index=-100, reduction="none")
    loss = token_losses.sum() / (flat_t != -100).sum()
    return logits, token_losses.view(B, T), loss

# ------------------------------------------------------------ configs


def bert_config(c):
    L = c["num_labels"]
    return {
        "architectures": ["BertForSequenceClassification"], "model_type": "bert",
        "vocab_size": c["vocab_size"], "hidden_size": c["hidden_size"],
        "num_hidden_layers": c["num_hidden_layers"], "num_attention_heads": c["num_attention_heads"],
        "intermediate_size": c["intermediate_size"], "hidden_act": "gelu",
        "hidden_dropout_prob": 0.0, "attention_probs_dropout_prob": 0.0,
        "max_position_embeddings": c["max_position_embeddings"], "type_vocab_size": c["type_vocab_size"],
        "initializer_range": 0.02, "layer_norm_eps": c["layer_norm_eps"], "pad_token_id": 0,
        "position_embedding_type": "absolute", "classifier_dropout": None, "use_cache": True,
        "id2label": {str(i): "LABEL_%d" % i for i in range(L)},
        "label2id": {"LABEL_%d" % i: i for i in range(L)},
        "torch_dtype": "float32", "transformers_version": "4.30.0",
    }


def gpt2_config(c):
    return {
        "architectures": ["GPT2LMHeadModel"], "model_type": "gpt2",
        "vocab_size": c["vocab_size"], "n_embd": c["n_embd"], "n_layer": c["n_layer"], "n_head": c["n_head"],
        "n_positions": c["n_positions"], "n_inner": None, "activation_function": "gelu_new",
        "resid_pdrop": 0.0, "embd_pdrop": 0.0, "attn_pdrop": 0.0,
        "layer_norm_epsilon": c["layer_norm_epsilon"], "initializer_range": 0.02,
        "bos_token_id": c["vocab_size"] - 1, "eos_token_id": c["vocab_size"] - 1,
        "scale_attn_weights": True, "use_cache": True, "reorder_and_upcast_attn": False,
        "scale_attn_by_inverse_layer_idx": False,
        "torch_dtype": "float32", "transformers_version": "4.30.0",
    }

# ------------------------------------------------------------ main


def leaf(params):
    """float64 leaves with gradients, from the float32 weights."""
    return {n: w.to(DT).requires_grad_(True) for n, w in params}


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures")
    gen = torch.Generator().manual_seed(SEED)

    # ---- encoder: B=3 sequences of T=12 (< max_len 16) with padding
    c = ENCODER
    params = bert_params(gen, c)
    B, T = 3, 12
    lengths = [12, 7, 4]
    tokens = torch.randint(1, c["vocab_size"], (B, T), generator=gen, dtype=torch.int32)
    mask = torch.zeros(B, T, dtype=torch.uint8)
    segments = torch.zeros(B, T, dtype=torch.int32)
    for b, n in enumerate(lengths):
        mask[b, :n] = 1
        tokens[b, n:] = 0               # [PAD]
        segments[b, n // 2:n] = 1       # a second segment in every sequence
    labels = torch.tensor([0, 2, 1], dtype=torch.int32)
    P = leaf(params)
    logits, loss = bert_forward(P, c, tokens.long(), segments.long(), mask, labels)
    loss.backward()
    d = os.path.join(out, "encoder_tiny")
    os.makedirs(d, exist_ok=True)
    write_json(os.path.join(d, "config.json"), bert_config(c))
    write_safetensors(os.path.join(d, "model.safetensors"), params)
    ref = [("tokens", tokens), ("segments", segments), ("mask", mask), ("labels", labels),
           ("logits", logits.detach().float()), ("loss", loss.detach().float().reshape(1))]
    ref += [("grad." + n, P[n].grad.float()) for n, _ in params]
    write_safetensors(os.path.join(out, "model_encoder_tiny.safetensors"), ref)
    print("encoder: loss %.6f" % loss.item())

    # ---- decoder: B=2 sequences of T=10, next-token targets, some ignored
    c = DECODER
    params = gpt2_params(gen, c)
    B, T = 2, 10
    tokens = torch.randint(0, c["vocab_size"], (B, T + 1), generator=gen, dtype=torch.int32)
    targets = tokens[:, 1:].clone()
    tokens = tokens[:, :T].contiguous()
    targets[0, 2] = -100
    targets[1, 6:] = -100               # the end of the second sequence is padding
    P = leaf(params)
    logits, token_losses, loss = gpt2_forward(P, c, tokens.long(), targets)
    loss.backward()
    d = os.path.join(out, "decoder_tiny")
    os.makedirs(d, exist_ok=True)
    write_json(os.path.join(d, "config.json"), gpt2_config(c))
    write_safetensors(os.path.join(d, "model.safetensors"), params)
    conv1d = ("attn.c_attn.weight", "attn.c_proj.weight", "mlp.c_fc.weight", "mlp.c_proj.weight")
    ref = [("tokens", tokens), ("targets", targets),
           ("logprobs", torch.log_softmax(logits.detach(), dim=-1).float()),
           ("token_losses", token_losses.detach().float()), ("loss", loss.detach().float().reshape(1))]
    for n, _ in params:
        g = P[n].grad
        ref.append(("grad." + n, (g.t() if n.endswith(conv1d) else g).contiguous().float()))
    write_safetensors(os.path.join(out, "model_decoder_tiny.safetensors"), ref)
    print("decoder: loss %.6f" % loss.item())


if __name__ == "__main__":
    main()
