/* The ViT / DeiT forward pass as an ONNX graph (see onnx_export.h and docs/onnx.md). Node for node it is
 * what model/vit_forward.c, model/block.c and model/stem.c compute, with each quantizer where the
 * simulated quantization taps the activations (model/taps.h, quant/points.c):
 *   patches = im2col(input)                       [N, P, C*p*p]  (Reshape, Transpose, Reshape)
 *   x = concat(cls, dist, Q(patches) . Wpe + b) + pos_embed
 *   per block: x += proj(attention(qkv(LN1(Q(x)))));  x += fc2(Q(gelu(Q(fc1(LN2(Q(x)))))))
 *     attention: Q(q) * 1/sqrt(hd) . Q(k)^T -> Q -> Softmax -> Q -> . Q(v)
 *   logits = head(LN(Q(x[:, 0])))  (distilled: (head(...x[:, 0]) + head_dist(...x[:, 1])) / 2)
 * where every linear layer is Q(input) . DQ(weight codes) + bias. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "quant/onnx_export.h"
#include "quant/onnx_export_qdq.h"

typedef char name_t[VITQ_I_ONNX_NAME];

static void int64_const(vitq_i_onnx_job *x, const char *name, const int64_t *v, int64_t n) {
    vitq_i_onnx_int64s(&x->g, name, &n, 1, v);
}

static void float_scalar(vitq_i_onnx_job *x, const char *name, float v) {
    vitq_i_onnx_floats(&x->g, name, NULL, 0, &v);
}

static void perm_node(vitq_i_onnx_job *x, const char *in, const int64_t *perm, int n, const char *out) {
    vitq_i_onnx_node_begin(&x->g, "Transpose", &in, 1, &out, 1);
    vitq_i_onnx_attr_ints(&x->g, "perm", perm, (size_t)n);
    vitq_i_onnx_node_end(&x->g);
}

/* Linear layer `prefix` (points prefix.input, prefix.weight) on `in` of rank `rank` into out. */
static void linear(vitq_i_onnx_job *x, const char *prefix, const vitq_i_linear *l, const char *in, int rank,
                   const char *out) {
    name_t p, a, w, mm, b;
    vitq_i_onnx_name(p, "%s.input", prefix);
    vitq_i_onnx_qdq_activation(x, vitq_i_onnx_point(x, p), "", in, rank, rank - 1, a);
    vitq_i_onnx_name(p, "%s.weight", prefix);
    vitq_i_onnx_weight(x, l, p, w);
    vitq_i_onnx_name(mm, "%s.matmul", prefix);
    vitq_i_onnx_op2(&x->g, "MatMul", a, w, mm);
    vitq_i_onnx_name(b, "%s.bias", prefix);
    int64_t n = (int64_t)l->out;
    if (!l->bias) { /* a network always has one (zeros when the checkpoint has none); keep the graph valid */
        vitq_i_onnx_op1(&x->g, "Identity", mm, out);
        return;
    }
    vitq_i_onnx_floats(&x->g, b, &n, 1, l->bias);
    vitq_i_onnx_op2(&x->g, "Add", mm, b, out);
}

/* LayerNorm `prefix` (point prefix.input) over the last axis of `in` (rank `rank`) into out. `tag` names
 * a second use of the same norm (the distillation token); its parameters are written with the first. */
static void layernorm(vitq_i_onnx_job *x, const char *prefix, const char *tag, const vitq_i_layernorm_params *ln,
                      int64_t d, const char *in, int rank, const char *out) {
    name_t p, a, gam, bet;
    vitq_i_onnx_name(p, "%s.input", prefix);
    vitq_i_onnx_qdq_activation(x, vitq_i_onnx_point(x, p), tag, in, rank, rank - 1, a);
    vitq_i_onnx_name(gam, "%s.weight", prefix);
    vitq_i_onnx_name(bet, "%s.bias", prefix);
    if (!*tag) {
        vitq_i_onnx_floats(&x->g, gam, &d, 1, ln->gamma);
        vitq_i_onnx_floats(&x->g, bet, &d, 1, ln->beta);
    }
    float eps = x->m->info.layer_norm_eps;
    if (x->g.opset >= 17) {
        const char *in3[3] = {a, gam, bet};
        vitq_i_onnx_node_begin(&x->g, "LayerNormalization", in3, 3, &out, 1);
        vitq_i_onnx_attr_int(&x->g, "axis", -1);
        vitq_i_onnx_attr_float(&x->g, "epsilon", eps);
        vitq_i_onnx_node_end(&x->g);
        return;
    }
    /* opset 13..16: (x - mean) / sqrt(mean((x - mean)^2) + eps) * gamma + beta */
    name_t mean, dev, sq, var, ve, sd, nrm, sc;
    const int64_t last = -1;
    vitq_i_onnx_name(mean, "%s%s.mean", prefix, tag);
    vitq_i_onnx_name(dev, "%s%s.centered", prefix, tag);
    vitq_i_onnx_name(sq, "%s%s.squared", prefix, tag);
    vitq_i_onnx_name(var, "%s%s.variance", prefix, tag);
    vitq_i_onnx_name(ve, "%s%s.variance_eps", prefix, tag);
    vitq_i_onnx_name(sd, "%s%s.std", prefix, tag);
    vitq_i_onnx_name(nrm, "%s%s.normalized", prefix, tag);
    vitq_i_onnx_name(sc, "%s%s.scaled", prefix, tag);
    const char *o = mean, *ap = a;
    vitq_i_onnx_node_begin(&x->g, "ReduceMean", &ap, 1, &o, 1);
    vitq_i_onnx_attr_ints(&x->g, "axes", &last, 1);
    vitq_i_onnx_node_end(&x->g);
    vitq_i_onnx_op2(&x->g, "Sub", a, mean, dev);
    vitq_i_onnx_op2(&x->g, "Mul", dev, dev, sq);
    const char *sqp = sq;
    o = var;
    vitq_i_onnx_node_begin(&x->g, "ReduceMean", &sqp, 1, &o, 1);
    vitq_i_onnx_attr_ints(&x->g, "axes", &last, 1);
    vitq_i_onnx_node_end(&x->g);
    vitq_i_onnx_op2(&x->g, "Add", var, "const.layer_norm_eps", ve);
    vitq_i_onnx_op1(&x->g, "Sqrt", ve, sd);
    vitq_i_onnx_op2(&x->g, "Div", dev, sd, nrm);
    vitq_i_onnx_op2(&x->g, "Mul", nrm, gam, sc);
    vitq_i_onnx_op2(&x->g, "Add", sc, bet, out);
}

/* GELU of `in` into out: exact (erf) or the tanh approximation, as the model's configuration says. */
static void gelu(vitq_i_onnx_job *x, const char *prefix, const char *in, const char *out) {
    name_t t1, t2, t3, t4, one_plus;
    vitq_i_onnx_name(one_plus, "%s.gelu.one_plus", prefix);
    vitq_i_onnx_name(t1, "%s.gelu.t1", prefix);
    vitq_i_onnx_name(t2, "%s.gelu.t2", prefix);
    vitq_i_onnx_name(t3, "%s.gelu.t3", prefix);
    vitq_i_onnx_name(t4, "%s.gelu.t4", prefix);
    vitq_i_onnx *g = &x->g;
    if (x->m->info.gelu == VITQ_GELU_TANH) { /* x/2 (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))) */
        name_t t5, t6;
        vitq_i_onnx_name(t5, "%s.gelu.t5", prefix);
        vitq_i_onnx_name(t6, "%s.gelu.t6", prefix);
        vitq_i_onnx_op2(g, "Mul", in, in, t1);
        vitq_i_onnx_op2(g, "Mul", t1, "const.gelu_cubic", t2);
        vitq_i_onnx_op2(g, "Add", t2, "const.one", t3);
        vitq_i_onnx_op2(g, "Mul", in, t3, t4); /* x + 0.044715 x^3 */
        vitq_i_onnx_op2(g, "Mul", t4, "const.gelu_sqrt_2_over_pi", t5);
        vitq_i_onnx_op1(g, "Tanh", t5, t6);
        vitq_i_onnx_op2(g, "Add", t6, "const.one", one_plus);
    } else { /* x/2 (1 + erf(x / sqrt 2)) */
        vitq_i_onnx_op2(g, "Mul", in, "const.inv_sqrt2", t2);
        vitq_i_onnx_op1(g, "Erf", t2, t3);
        vitq_i_onnx_op2(g, "Add", t3, "const.one", one_plus);
    }
    name_t prod;
    vitq_i_onnx_name(prod, "%s.gelu.x_one_plus", prefix);
    vitq_i_onnx_op2(g, "Mul", in, one_plus, prod);
    vitq_i_onnx_op2(g, "Mul", prod, "const.half", out);
}

/* Block b on the stream `in` into out. */
static void block(vitq_i_onnx_job *x, int b, const char *in, const char *out) {
    const vitq_i_net *m = x->m;
    const vitq_i_block *blk = &m->blocks[b];
    int64_t d = m->info.embed_dim;
    char pre[32]; /* "blocks.N" */
    name_t p, ln, qkv, t, u, s, r, attn, mid, h;
    vitq_i_onnx_name(pre, "blocks.%d", b);
    vitq_i_onnx *g = &x->g;
    vitq_i_onnx_name(p, "%s.norm1", pre);
    vitq_i_onnx_name(ln, "%s.norm1.out", pre);
    layernorm(x, p, "", &blk->norm1, d, in, 3, ln);
    vitq_i_onnx_name(p, "%s.attn.qkv", pre);
    vitq_i_onnx_name(qkv, "%s.attn.qkv.out", pre);
    linear(x, p, &blk->qkv, ln, 3, qkv);
    /* q, k, v: the three column blocks of qkv's output, each through its quantizer */
    name_t parts[3], qd[3];
    const char *names[3] = {"q", "k", "v"}, *outs[3] = {parts[0], parts[1], parts[2]};
    for (int i = 0; i < 3; i++) vitq_i_onnx_name(parts[i], "%s.attn.%s.in", pre, names[i]);
    const char *split_in[2] = {qkv, "const.qkv_split"};
    vitq_i_onnx_node_begin(g, "Split", split_in, 2, outs, 3);
    vitq_i_onnx_attr_int(g, "axis", 2);
    vitq_i_onnx_node_end(g);
    for (int i = 0; i < 3; i++) {
        vitq_i_onnx_name(p, "%s.attn.%s", pre, names[i]);
        vitq_i_onnx_qdq_activation(x, vitq_i_onnx_point(x, p), "", parts[i], 3, 2, qd[i]);
    }
    /* heads: [N, T, D] -> [N, H, T, hd] (K as [N, H, hd, T]) */
    static const int64_t to_heads[4] = {0, 2, 1, 3}, k_heads[4] = {0, 2, 3, 1};
    name_t hs[3];
    for (int i = 0; i < 3; i++) {
        vitq_i_onnx_name(t, "%s.attn.%s.split_heads", pre, names[i]);
        vitq_i_onnx_op2(g, "Reshape", qd[i], "const.shape_heads", t);
        vitq_i_onnx_name(hs[i], "%s.attn.%s.heads", pre, names[i]);
        perm_node(x, t, i == 1 ? k_heads : to_heads, 4, hs[i]);
    }
    /* scores = (q * scale) . k^T: the scale multiplies q first, as the attention kernel does */
    vitq_i_onnx_name(t, "%s.attn.q.scaled", pre);
    vitq_i_onnx_op2(g, "Mul", hs[0], "const.attn_scale", t);
    vitq_i_onnx_name(s, "%s.attn.scores", pre);
    vitq_i_onnx_op2(g, "MatMul", t, hs[1], s);
    vitq_i_onnx_name(p, "%s.attn.softmax.input", pre);
    vitq_i_onnx_qdq_activation(x, vitq_i_onnx_point(x, p), "", s, 4, 1, u);
    vitq_i_onnx_name(r, "%s.attn.probs", pre);
    const char *uin = u, *rout = r;
    vitq_i_onnx_node_begin(g, "Softmax", &uin, 1, &rout, 1);
    vitq_i_onnx_attr_int(g, "axis", -1);
    vitq_i_onnx_node_end(g);
    vitq_i_onnx_name(p, "%s.attn.softmax.out", pre);
    vitq_i_onnx_qdq_activation(x, vitq_i_onnx_point(x, p), "", r, 4, 1, u);
    vitq_i_onnx_name(t, "%s.attn.context_heads", pre);
    vitq_i_onnx_op2(g, "MatMul", u, hs[2], t);
    vitq_i_onnx_name(s, "%s.attn.context_tokens", pre);
    perm_node(x, t, to_heads, 4, s);
    vitq_i_onnx_name(attn, "%s.attn.context", pre);
    vitq_i_onnx_op2(g, "Reshape", s, "const.shape_tokens", attn);
    vitq_i_onnx_name(p, "%s.attn.proj", pre);
    vitq_i_onnx_name(t, "%s.attn.proj.out", pre);
    linear(x, p, &blk->proj, attn, 3, t);
    vitq_i_onnx_name(mid, "%s.residual1", pre);
    vitq_i_onnx_op2(g, "Add", in, t, mid);
    /* MLP */
    vitq_i_onnx_name(p, "%s.norm2", pre);
    vitq_i_onnx_name(ln, "%s.norm2.out", pre);
    layernorm(x, p, "", &blk->norm2, d, mid, 3, ln);
    vitq_i_onnx_name(p, "%s.mlp.fc1", pre);
    vitq_i_onnx_name(h, "%s.mlp.fc1.out", pre);
    linear(x, p, &blk->fc1, ln, 3, h);
    vitq_i_onnx_name(p, "%s.mlp.gelu.input", pre);
    vitq_i_onnx_qdq_activation(x, vitq_i_onnx_point(x, p), "", h, 3, 2, u);
    vitq_i_onnx_name(p, "%s.mlp", pre);
    vitq_i_onnx_name(t, "%s.mlp.gelu.out", pre);
    gelu(x, p, u, t);
    vitq_i_onnx_name(p, "%s.mlp.fc2", pre);
    vitq_i_onnx_name(s, "%s.mlp.fc2.out", pre);
    linear(x, p, &blk->fc2, t, 3, s);
    vitq_i_onnx_op2(g, "Add", mid, s, out);
}

/* Constants the blocks share. */
static void constants(vitq_i_onnx_job *x) {
    const vitq_model_info *i = &x->m->info;
    int64_t d = i->embed_dim, t = i->num_tokens, heads = i->num_heads, hd = d / heads;
    int64_t split[3] = {d, d, d}, shape_heads[4] = {-1, t, heads, hd}, shape_tokens[3] = {-1, t, d};
    int64_t zero = 0, one = 1;
    int64_t prefix_tail[2] = {1, d};
    int64_t c = i->in_channels, p = i->patch_size, gs = i->image_size / i->patch_size;
    int64_t shape_grid[6] = {-1, c, gs, p, gs, p}, shape_patches[3] = {-1, gs * gs, c * p * p};
    int64_t sc[1] = {0}, ec[1] = {1};
    int64_const(x, "const.qkv_split", split, 3);
    int64_const(x, "const.shape_heads", shape_heads, 4);
    int64_const(x, "const.shape_tokens", shape_tokens, 3);
    int64_const(x, "const.shape_grid", shape_grid, 6);
    int64_const(x, "const.shape_patches", shape_patches, 3);
    int64_const(x, "const.prefix_tail", prefix_tail, 2);
    int64_const(x, "const.slice_start", sc, 1);
    int64_const(x, "const.slice_end", ec, 1);
    vitq_i_onnx_int64s(&x->g, "const.token0", NULL, 0, &zero);
    if (i->num_prefix_tokens == 2) vitq_i_onnx_int64s(&x->g, "const.token1", NULL, 0, &one);
    /* the attention kernel's factor, computed as it computes it (model's float arithmetic) */
    float_scalar(x, "const.attn_scale", 1.0f / sqrtf((float)hd));
    float_scalar(x, "const.one", 1.0f);
    float_scalar(x, "const.half", 0.5f);
    if (i->num_prefix_tokens == 2) float_scalar(x, "const.two", 2.0f);
    if (i->gelu == VITQ_GELU_TANH) { /* only what the graph reads: ONNX Runtime warns of unused initializers */
        float_scalar(x, "const.gelu_cubic", 0.044715f);
        float_scalar(x, "const.gelu_sqrt_2_over_pi", (float)sqrt(2.0 / 3.14159265358979323846));
    } else {
        float_scalar(x, "const.inv_sqrt2", (float)(1.0 / sqrt(2.0)));
    }
    if (x->g.opset < 17) float_scalar(x, "const.layer_norm_eps", i->layer_norm_eps);
}

/* Patch embedding, prefix tokens and position embeddings: the stream entering block 0, into out. */
static void embed(vitq_i_onnx_job *x, const char *out) {
    const vitq_i_net *m = x->m;
    const vitq_model_info *i = &m->info;
    vitq_i_onnx *g = &x->g;
    static const int64_t grid_perm[6] = {0, 2, 4, 1, 3, 5}; /* [N, gy, gx, C, ky, kx] */
    vitq_i_onnx_op2(g, "Reshape", "input", "const.shape_grid", "patch_embed.grid");
    perm_node(x, "patch_embed.grid", grid_perm, 6, "patch_embed.grid_t");
    vitq_i_onnx_op2(g, "Reshape", "patch_embed.grid_t", "const.shape_patches", "patch_embed.patches");
    linear(x, "patch_embed.proj", &m->patch_embed, "patch_embed.patches", 3, "patch_embed.out");
    /* the prefix tokens broadcast over the batch: Expand to [N, 1, D] */
    vitq_i_onnx_op1(g, "Shape", "patch_embed.out", "patch_embed.shape");
    const char *sl[3] = {"patch_embed.shape", "const.slice_start", "const.slice_end"}, *batch = "batch";
    vitq_i_onnx_node_begin(g, "Slice", sl, 3, &batch, 1);
    vitq_i_onnx_node_end(g);
    const char *cat[2] = {"batch", "const.prefix_tail"}, *ps = "prefix.shape";
    vitq_i_onnx_node_begin(g, "Concat", cat, 2, &ps, 1);
    vitq_i_onnx_attr_int(g, "axis", 0);
    vitq_i_onnx_node_end(g);
    int64_t d = i->embed_dim, tok[3] = {1, 1, d}, pos[3] = {1, i->num_tokens, d};
    vitq_i_onnx_floats(g, "cls_token", tok, 3, m->cls_token);
    vitq_i_onnx_op2(g, "Expand", "cls_token", "prefix.shape", "cls_token.expanded");
    const char *parts[3] = {"cls_token.expanded", "dist_token.expanded", "patch_embed.out"};
    int n = 2;
    if (i->num_prefix_tokens == 2) {
        vitq_i_onnx_floats(g, "dist_token", tok, 3, m->dist_token);
        vitq_i_onnx_op2(g, "Expand", "dist_token", "prefix.shape", "dist_token.expanded");
        n = 3;
    } else {
        parts[1] = "patch_embed.out";
    }
    const char *tokens = "tokens";
    vitq_i_onnx_node_begin(g, "Concat", parts, n, &tokens, 1);
    vitq_i_onnx_attr_int(g, "axis", 1);
    vitq_i_onnx_node_end(g);
    vitq_i_onnx_floats(g, "pos_embed", pos, 3, m->pos_embed);
    vitq_i_onnx_op2(g, "Add", "tokens", "pos_embed", out);
}

/* The final norm of prefix token `token` of the stream `in` and its classifier, into out. */
static void classify_token(vitq_i_onnx_job *x, const char *in, int token, const char *out) {
    const vitq_i_net *m = x->m;
    vitq_i_onnx *g = &x->g;
    const char *tag = token ? ".dist" : "";
    name_t tk, ln, rep, rt;
    const char *gin[2] = {in, token ? "const.token1" : "const.token0"}, *o = tk;
    vitq_i_onnx_name(tk, "token%d", token);
    vitq_i_onnx_node_begin(g, "Gather", gin, 2, &o, 1);
    vitq_i_onnx_attr_int(g, "axis", 1);
    vitq_i_onnx_node_end(g);
    vitq_i_onnx_name(ln, "norm.out%s", tag);
    layernorm(x, "norm", tag, &m->norm, m->info.embed_dim, tk, 2, ln);
    if (token == 0 && m->pre_logits.out) { /* representation layer: head(tanh(pre_logits(x))) */
        vitq_i_onnx_name(rep, "pre_logits.fc.out");
        linear(x, "pre_logits.fc", &m->pre_logits, ln, 2, rep);
        vitq_i_onnx_name(rt, "pre_logits.tanh");
        vitq_i_onnx_op1(g, "Tanh", rep, rt);
        linear(x, "head", &m->head, rt, 2, out);
        return;
    }
    linear(x, token ? "head_dist" : "head", token ? &m->head_dist : &m->head, ln, 2, out);
}

static void graph(vitq_i_onnx_job *x) {
    const vitq_model_info *i = &x->m->info;
    int64_t in_dims[4] = {-1, i->in_channels, i->image_size, i->image_size}, out_dims[2] = {-1, i->num_classes};
    vitq_i_onnx_value(&x->g, 0, "input", VITQ_I_ONNX_FLOAT, in_dims, 4);
    vitq_i_onnx_value(&x->g, 1, "logits", VITQ_I_ONNX_FLOAT, out_dims, 2);
    constants(x);
    name_t cur, next;
    embed(x, "embeddings");
    vitq_i_onnx_name(cur, "embeddings");
    for (int b = 0; b < i->depth && !x->status; b++) {
        vitq_i_onnx_name(next, "blocks.%d.out", b);
        block(x, b, cur, next);
        memcpy(cur, next, sizeof cur);
    }
    if (i->num_prefix_tokens < 2) {
        classify_token(x, cur, 0, "logits");
        return;
    }
    classify_token(x, cur, 0, "head.logits");
    classify_token(x, cur, 1, "head_dist.logits");
    vitq_i_onnx_op2(&x->g, "Add", "head.logits", "head_dist.logits", "logits.sum");
    vitq_i_onnx_op2(&x->g, "Div", "logits.sum", "const.two", "logits");
}

/* metadata_props: how to feed the model (its input is vitq_model_forward's) and what it came from. */
static vitq_status finish(vitq_i_onnx_job *x, uint8_t **out, size_t *size) {
    const vitq_i_net *m = x->m;
    const vitq_model_info *i = &m->info;
    char mean[128] = "", std[128] = "", image[32];
    const char *keys[6], *values[6];
    int n = 0;
    keys[n] = "vitq.input";
    values[n++] = "float32 NCHW, normalised: (pixel / 255 - mean) / std per channel, as vitq_model_forward takes it";
    keys[n] = "vitq.format";
    values[n++] = x->q ? "qdq" : "float";
    vitq_i_onnx_name(image, "%d", (int)i->image_size);
    keys[n] = "vitq.image_size";
    values[n++] = image;
    for (int which = 0; which < 2; which++) {
        if (m->sources[which ? VITQ_HPARAM_STD : VITQ_HPARAM_MEAN] == VITQ_SOURCE_NONE) continue;
        char *dst = which ? std : mean;
        size_t used = 0;
        for (int ch = 0; ch < i->in_channels && ch < VITQ_MAX_CHANNELS; ch++)
            used += (size_t)snprintf(dst + used, 128 - used, "%s%.9g", ch ? "," : "",
                                     (double)(which ? i->std[ch] : i->mean[ch]));
        keys[n] = which ? "vitq.std" : "vitq.mean";
        values[n++] = dst;
    }
    if (x->status) {
        vitq_i_onnx_free(&x->g);
        return x->status;
    }
    return vitq_i_onnx_finish(&x->g, keys, values, n, out, size);
}

vitq_status vitq_i_onnx_export(const vitq_allocator *a, const vitq_i_net *m, const vitq_i_qmodel *q, int opset,
                               uint8_t **out, size_t *size) {
    if (m->info.arch == VITQ_ARCH_SWIN || m->stages)
        return vitq_i_fail(VITQ_ERR_UNSUPPORTED, "ONNX export of %s: Swin models are not supported (ViT and DeiT are)",
                           m->name);
    if (opset < VITQ_I_ONNX_OPSET_MIN || opset > VITQ_I_ONNX_OPSET_MAX)
        return vitq_i_fail(VITQ_ERR_OUT_OF_RANGE, "ONNX export: opset %d; vitq writes opsets %d to %d", opset,
                           VITQ_I_ONNX_OPSET_MIN, VITQ_I_ONNX_OPSET_MAX);
    vitq_status st = vitq_i_onnx_qdq_check(q);
    if (st) return st;
    vitq_i_onnx_job x;
    memset(&x, 0, sizeof x);
    x.a = a;
    x.m = m;
    x.q = q;
    vitq_i_onnx_begin(&x.g, a, opset, q ? "vitq_qdq" : "vitq");
    graph(&x);
    return finish(&x, out, size);
}
