/* The order of an integer-only program's fields in an embedded blob, for both directions (embedded.h).
 * Every count an array's size depends on is walked before the array, and loading checks it first. */
#include <stddef.h>

#include "kernels/embedded.h"

/* The structures the blob holds as arrays must have one layout on every target (the blob is made on the
 * host and read on the firmware): int64 members at 8-byte offsets, no other padding. */
_Static_assert(sizeof(vitq_i_dyadic) == 8, "vitq_i_dyadic layout");
_Static_assert(sizeof(vitq_i_ln_channel) == 16 && offsetof(vitq_i_ln_channel, bias) == 8, "ln_channel layout");
_Static_assert(sizeof(vitq_i_ptf_channel) == 24 && offsetof(vitq_i_ptf_channel, bq) == 16, "ptf_channel layout");

static vitq_status bad(const char *what, int64_t v) {
    return vitq_i_fail(VITQ_ERR_FORMAT, "embedded model: %s = %lld is out of range", what, (long long)v);
}

/* An int32 field that loading requires to lie in [lo, hi]. */
static vitq_status ranged(vitq_i_emb_io *io, int32_t *v, int32_t lo, int32_t hi, const char *what) {
    vitq_status st = io->word(io, v);
    if (!st && io->loading && (*v < lo || *v > hi)) st = bad(what, *v);
    return st;
}

/* A size_t field in [lo, hi] (stored as an int32). */
static vitq_status size_field(vitq_i_emb_io *io, size_t *v, size_t lo, size_t hi, const char *what) {
    int32_t w = *v > (size_t)INT32_MAX ? -1 : (int32_t)*v;
    if (!io->loading && w < 0) return vitq_i_fail(VITQ_ERR_UNSUPPORTED, "embedded model: %s = %zu needs more than "
                                                   "31 bits", what, *v);
    vitq_status st = ranged(io, &w, 0, INT32_MAX, what);
    if (!st && io->loading) {
        if ((size_t)w < lo || (size_t)w > hi) return bad(what, w);
        *v = (size_t)w;
    }
    return st;
}

static vitq_status int_field(vitq_i_emb_io *io, int *v, int lo, int hi, const char *what) {
    int32_t w = (int32_t)*v;
    vitq_status st = ranged(io, &w, lo, hi, what);
    if (!st && io->loading) *v = (int)w;
    return st;
}

/* count elements of `size` bytes (count * size fits: the counts are checked to small bounds first). */
static vitq_status array(vitq_i_emb_io *io, void *field, size_t count, size_t size) {
    return io->array(io, (void **)field, count * size);
}

static void *carve(vitq_i_emb_io *io, void *field, size_t bytes) {
    if (io->loading) *(void **)field = io->carve(io, bytes);
    return *(void **)field;
}

static vitq_status carve_failed(void) {
    return vitq_i_fail(VITQ_ERR_BUFFER_TOO_SMALL, "embedded model: its structures do not fit the arena");
}

/* Packed weights of n outputs and k inputs (kernels/igemm.h): the panels, zero points and corrections.
 * Their float scales are not stored (the integer GEMM does not read them). */
static vitq_status packed(vitq_i_emb_io *io, vitq_i_qpacked *w, size_t n, size_t k) {
    vitq_status st = size_field(io, &w->n, n, n, "weight outputs");
    if (!st) st = size_field(io, &w->k, k, k, "weight inputs");
    if (!st) st = int_field(io, &w->bits, 2, 8, "weight bits");
    if (!st) st = int_field(io, &w->symmetric, 0, 1, "weight symmetry");
    if (!st) st = int_field(io, &w->store_bits, 4, 8, "weight storage bits");
    if (!st) st = int_field(io, &w->need_row_sums, 0, 1, "weight row sums");
    if (st) return st;
    size_t step = w->store_bits == 8 ? 4 : 8, kpad = (k + step - 1) / step * step, panels = (n + 47) / 48;
    if (io->loading && w->store_bits != 8 && (w->store_bits != 4 || w->bits > 4)) return bad("weight storage bits", w->store_bits);
    if (io->loading) {
        w->kpad = kpad;
        w->panels = panels;
        w->panel_bytes = kpad * VITQ_I_QGEMM_NR * (size_t)w->store_bits / 8;
        w->scale = NULL;
    } else if (w->kpad != kpad || w->panels != panels || w->panel_bytes != kpad * VITQ_I_QGEMM_NR * (size_t)w->store_bits / 8) {
        return vitq_i_fail(VITQ_ERR_BAD_STATE, "embedded model: a weight panel layout this format does not know");
    }
    st = array(io, &w->data, panels, w->panel_bytes);
    if (!st) st = array(io, &w->zero, panels * VITQ_I_QGEMM_NR, sizeof(int32_t));
    if (!st) st = array(io, &w->kzero, panels * VITQ_I_QGEMM_NR, sizeof(int32_t));
    if (!st && io->loading && (!w->data || !w->zero || !w->kzero))
        st = vitq_i_fail(VITQ_ERR_FORMAT, "embedded model: weight panels missing");
    return st;
}

/* A linear layer: its own packed weights (carved when loading), the input zero point, the int32 bias. */
static vitq_status linear(vitq_i_emb_io *io, vitq_i_iv_linear *l, size_t n, size_t k) {
    vitq_i_qpacked *w = (vitq_i_qpacked *)l->w;
    if (io->loading && !(w = io->carve(io, sizeof *w))) return carve_failed();
    l->w = w;
    vitq_status st = packed(io, w, n, k);
    if (!st) st = ranged(io, &l->a_zero, 0, 255, "activation zero point");
    if (!st) st = array(io, &l->bias, n, sizeof(int32_t));
    return st;
}

/* cols multipliers (a required array). */
static vitq_status dyadics(vitq_i_emb_io *io, vitq_i_dyadic **m, size_t cols) {
    vitq_status st = array(io, m, cols, sizeof **m);
    if (!st && io->loading && !*m) st = vitq_i_fail(VITQ_ERR_FORMAT, "embedded model: multipliers missing");
    return st;
}

/* A requantization onto a grid: 0 (unused), 1 or cols multipliers. The runtime checks the values. */
static vitq_status requant(vitq_i_emb_io *io, vitq_i_iv_requant *r, size_t cols) {
    int32_t type = (int32_t)r->g.type;
    vitq_status st = size_field(io, &r->nm, 0, cols, "multiplier count");
    if (!st && io->loading && r->nm != 0 && r->nm != 1 && r->nm != cols) st = bad("multiplier count", (int64_t)r->nm);
    if (!st) st = ranged(io, &type, VITQ_I_RQ_INT8, VITQ_I_RQ_INT16, "grid type");
    if (!st) st = io->word(io, &r->g.zero);
    if (!st) st = io->word(io, &r->g.qmin);
    if (!st) st = io->word(io, &r->g.qmax);
    if (!st) st = array(io, &r->m, r->nm, sizeof *r->m);
    if (!st && io->loading) {
        r->g.type = (vitq_i_requant_type)type;
        if (r->nm && !r->m) st = vitq_i_fail(VITQ_ERR_FORMAT, "embedded model: multipliers missing");
    }
    return st;
}

static vitq_status ln_out(vitq_i_emb_io *io, vitq_i_ln_out *o) {
    vitq_status st = io->word(io, &o->zero);
    if (!st) st = io->word(io, &o->min);
    if (!st) st = io->word(io, &o->max);
    return st;
}

/* A non-linear operator on rows of `channels` values (LayerNorms: their per-channel arrays). Every
 * kernel checks its parameters when it runs. */
static vitq_status op(vitq_i_emb_io *io, vitq_i_iv_op *o, size_t channels) {
    vitq_status st = ranged(io, &o->kind, VITQ_I_IV_LN_INT, VITQ_I_IV_GELU_SHIFT, "operator kind");
    if (st) return st;
    int32_t *w[6] = {NULL};
    int count = 0;
    switch (o->kind) {
    case VITQ_I_IV_LN_INT: {
        vitq_i_int_layernorm_params *p = &o->p.ln;
        st = ranged(io, &p->variant, VITQ_I_LN_IBERT, VITQ_I_LN_IVIT, "LayerNorm variant");
        if (!st) st = ranged(io, &p->channels, (int32_t)channels, (int32_t)channels, "LayerNorm channels");
        if (!st) st = ln_out(io, &p->out);
        if (!st) st = array(io, &p->ch, channels, sizeof *p->ch);
        if (!st && io->loading && !p->ch) st = vitq_i_fail(VITQ_ERR_FORMAT, "embedded model: LayerNorm constants missing");
        return st;
    }
    case VITQ_I_IV_LN_PTF: {
        vitq_i_ptf_layernorm_params *p = &o->p.ptf;
        st = ranged(io, &p->channels, (int32_t)channels, (int32_t)channels, "LayerNorm channels");
        if (!st) st = ln_out(io, &p->out);
        if (!st) st = array(io, &p->ch, channels, sizeof *p->ch);
        if (!st && io->loading && !p->ch) st = vitq_i_fail(VITQ_ERR_FORMAT, "embedded model: LayerNorm constants missing");
        return st;
    }
    case VITQ_I_IV_SM_IBERT: {
        vitq_i_ibert_softmax_params *p = &o->p.ibert_softmax;
        int32_t *f[6] = {&p->x0_int, &p->b_int, &p->c_int, &p->exp_mult, &p->exp_shift, &p->out_bits};
        for (count = 0; count < 6; count++) w[count] = f[count];
        break;
    }
    case VITQ_I_IV_SM_SHIFT: w[0] = &o->p.shiftmax.x0, w[1] = &o->p.shiftmax.out_bits, count = 2; break;
    case VITQ_I_IV_SM_LIS: {
        vitq_i_lis_params *p = &o->p.lis;
        w[0] = &p->x0_int, w[1] = &p->b_int, w[2] = &p->c_int, w[3] = &p->bits, count = 4;
        break;
    }
    case VITQ_I_IV_GELU_IBERT: {
        vitq_i_ibert_gelu_params *p = &o->p.ibert_gelu;
        w[0] = &p->b_int, w[1] = &p->c_int, w[2] = &p->shift, w[3] = &p->one, count = 4;
        break;
    }
    default: w[0] = &o->p.shiftgelu.x0, w[1] = &o->p.shiftgelu.out_bits, count = 2;
    }
    for (int i = 0; !st && i < count; i++) st = io->word(io, w[i]);
    return st;
}

static vitq_status norm(vitq_i_emb_io *io, vitq_i_iv_norm *nm, size_t dim) {
    vitq_status st = requant(io, &nm->in, dim);
    if (!st) st = op(io, &nm->op, dim);
    if (!st) st = requant(io, &nm->out, dim);
    return st;
}

/* An activation grid whose scale the runtime does not read (K and V packed per head): not stored. */
static vitq_status qact(vitq_i_emb_io *io, vitq_i_qact *g) {
    vitq_status st = ranged(io, &g->zero, -128, 255, "grid zero point");
    if (!st) st = ranged(io, &g->qmin, -128, 255, "grid minimum");
    if (!st) st = ranged(io, &g->qmax, g->qmin, 255, "grid maximum");
    return st;
}

static vitq_status block(vitq_i_emb_io *io, const vitq_i_intvit *p, vitq_i_iv_block *b) {
    size_t d = (size_t)p->dim, hid = (size_t)p->hidden, t = (size_t)p->tokens, hd = d / (size_t)p->heads;
    vitq_status st = norm(io, &b->norm1, d);
    if (!st) st = linear(io, &b->qkv, 3 * d, d);
    if (!st) st = requant(io, &b->to_q, d);
    if (!st) st = requant(io, &b->to_k, d);
    if (!st) st = requant(io, &b->to_v, d);
    if (st) return st;
    vitq_i_qact *g = io->loading ? io->carve(io, 2 * sizeof *g) : NULL;
    if (io->loading) {
        if (!g) return carve_failed();
        b->k_grid = &g[0], b->v_grid = &g[1];
    }
    st = qact(io, (vitq_i_qact *)b->k_grid);
    if (!st) st = qact(io, (vitq_i_qact *)b->v_grid);
    if (!st) st = ranged(io, &b->q_zero, 0, 255, "Q zero point");
    if (!st) st = ranged(io, &b->p_zero, 0, 255, "P zero point");
    if (!st) st = io->word(io, &b->to_scores.mult);
    if (!st) st = io->word(io, &b->to_scores.shift);
    if (!st) st = op(io, &b->softmax, t);
    if (!st) st = requant(io, &b->to_p, t);
    if (!st) st = ranged(io, &b->v_zero, -128, 255, "V zero point");
    if (!st) st = ranged(io, &b->lis_frac, 0, 16, "P.V fraction bits");
    if (!st) st = requant(io, &b->to_proj, hd);
    if (!st) st = linear(io, &b->proj, d, d);
    if (!st) st = dyadics(io, &b->proj_res, d);
    if (!st) st = norm(io, &b->norm2, d);
    if (!st) st = linear(io, &b->fc1, hid, d);
    if (!st) st = requant(io, &b->to_gelu, hid);
    if (!st) st = op(io, &b->gelu, hid);
    if (!st) st = requant(io, &b->to_fc2, hid);
    if (!st) st = linear(io, &b->fc2, d, hid);
    if (!st) st = dyadics(io, &b->fc2_res, d);
    if (!st && io->loading && (b->softmax.kind < VITQ_I_IV_SM_IBERT || b->softmax.kind > VITQ_I_IV_SM_LIS ||
                               b->gelu.kind < VITQ_I_IV_GELU_IBERT || b->norm1.op.kind > VITQ_I_IV_LN_PTF ||
                               b->norm2.op.kind > VITQ_I_IV_LN_PTF))
        st = vitq_i_fail(VITQ_ERR_FORMAT, "embedded model: block operators of the wrong kind");
    return st;
}

/* The dimensions, each within what the runtime's int32 and size arithmetic holds for certain. */
static vitq_status dims(vitq_i_emb_io *io, vitq_i_intvit *p, int32_t *outputs) {
    struct {
        int32_t *v, lo, hi;
        const char *what;
    } f[] = {{&p->channels, 1, VITQ_MAX_CHANNELS, "channels"}, {&p->image_size, 1, 4096, "image size"},
             {&p->patch, 1, 4096, "patch size"},            {&p->grid, 1, 4096, "grid"},
             {&p->tokens, 2, VITQ_I_INTNL_MAX_N, "tokens"}, {&p->prefix, 1, 2, "prefix tokens"},
             {&p->dim, 1, VITQ_I_INTNL_MAX_N, "width"},     {&p->heads, 1, 256, "heads"},
             {&p->hidden, 1, 65536, "hidden width"},        {&p->depth, 0, 1024, "depth"},
             {&p->classes, 1, 1 << 20, "classes"},          {outputs, 1, 2, "outputs"}};
    vitq_status st = VITQ_OK;
    for (size_t i = 0; !st && i < sizeof f / sizeof f[0]; i++) st = ranged(io, f[i].v, f[i].lo, f[i].hi, f[i].what);
    if (!st && io->loading &&
        (p->grid * p->patch != p->image_size || p->tokens != p->grid * p->grid + p->prefix || p->dim % p->heads ||
         *outputs != (p->prefix == 2 ? 2 : 1)))
        st = vitq_i_fail(VITQ_ERR_FORMAT, "embedded model: dimensions that do not fit together");
    return st;
}

vitq_status vitq_i_emb_walk(vitq_i_emb_io *io, vitq_i_intvit *p, int32_t *outputs, uint32_t **logit_scale_bits) {
    vitq_status st = dims(io, p, outputs);
    if (!st) st = array(io, logit_scale_bits, (size_t)*outputs * (size_t)p->classes, sizeof(uint32_t));
    if (!st && io->loading && !*logit_scale_bits) st = vitq_i_fail(VITQ_ERR_FORMAT, "embedded model: logit scales missing");
    size_t d = (size_t)p->dim, pp = (size_t)p->patch * (size_t)p->patch;
    for (int32_t c = 0; !st && c < p->channels; c++) {
        st = packed(io, &p->patch_w[c], d, pp);
        if (!st) st = dyadics(io, &p->patch_res[c], d);
    }
    if (!st) st = array(io, &p->embed_const, (size_t)p->tokens * d, sizeof(int32_t));
    if (!st && io->loading && !p->embed_const) st = vitq_i_fail(VITQ_ERR_FORMAT, "embedded model: embeddings missing");
    if (!st && !carve(io, &p->blocks, (size_t)p->depth * sizeof *p->blocks) && p->depth) st = carve_failed();
    for (int32_t i = 0; !st && i < p->depth; i++) st = block(io, p, &p->blocks[i]);
    if (!st) st = norm(io, &p->norm, d);
    if (!st) st = linear(io, &p->head, (size_t)p->classes, d);
    if (!st && *outputs == 2) st = norm(io, &p->norm_dist, d);
    if (!st && *outputs == 2) st = linear(io, &p->head_dist, (size_t)p->classes, d);
    return st;
}

static size_t a64(size_t v) { return (v + 63) / 64 * 64; }

size_t vitq_i_emb_struct_bytes(int32_t depth, int32_t outputs) {
    size_t per_block = 4 * a64(sizeof(vitq_i_qpacked)) + a64(2 * sizeof(vitq_i_qact));
    return a64(sizeof(vitq_i_intvit)) + a64((size_t)depth * sizeof(vitq_i_iv_block)) + (size_t)depth * per_block +
           (size_t)outputs * a64(sizeof(vitq_i_qpacked));
}
