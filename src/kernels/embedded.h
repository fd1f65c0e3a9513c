/* The integer-only program of kernels/intvit.h as one blob of bytes that a firmware keeps in flash and
 * runs in place (the public side: vitq_embedded_* in vitq.h; the format: docs/firmware.md).
 *
 * The blob is little-endian: a 16-byte header (magic, version, the stream's length in int32 words, the
 * blob's length in bytes), a stream of int32 words, then the arrays (weight panels, biases, multipliers,
 * per-channel LayerNorm constants), each 64-byte aligned and named in the stream by its offset from
 * the first array. One walk (embedded_walk.c) says in which order the stream holds the program's
 * fields: the writer (quant/export_c.c) runs it to read a program into a blob, the loader
 * (embedded.c) to point a program's structures at a blob, so the two cannot disagree. Floating point
 * never enters: the runtime's structures take integers and pointers into the blob only. */
#ifndef VITQ_KERNELS_EMBEDDED_H
#define VITQ_KERNELS_EMBEDDED_H

#include "kernels/intvit.h"

#define VITQ_I_EMB_MAGIC 0x4D455156u /* the bytes "VQEM" read as a little-endian uint32 */
#define VITQ_I_EMB_HEADER 16         /* bytes before the stream */
#define VITQ_I_EMB_DIMS 13           /* the stream's first words: the dimensions, then the logit scales */
#define VITQ_I_EMB_NULL (-1)         /* the offset of an absent array */

/* The walk's two directions. In both, `word` and `array` take the field they name: saving reads it,
 * loading sets it. */
typedef struct vitq_i_emb_io vitq_i_emb_io;
struct vitq_i_emb_io {
    int loading;
    /* One int32 of the stream. */
    vitq_status (*word)(vitq_i_emb_io *io, int32_t *v);
    /* An array of `bytes` bytes: its offset in the stream, its bytes among the arrays (*p NULL: absent). */
    vitq_status (*array)(vitq_i_emb_io *io, void **p, size_t bytes);
    /* Loading: `bytes` zeroed bytes for a structure of the program, 64-byte aligned (NULL: none left). */
    void *(*carve)(vitq_i_emb_io *io, size_t bytes);
};

/* The program p with the float32 bits of its logit scales (`outputs` heads of p->classes each) through
 * io, in the blob's order. Loading checks every dimension, count and parameter range the runtime
 * relies on, so that a damaged blob gives an error instead of an access outside it. */
vitq_status vitq_i_emb_walk(vitq_i_emb_io *io, vitq_i_intvit *p, int32_t *outputs, uint32_t **logit_scale_bits);

/* Bytes of arena the structures of a program of these dimensions take (what loading carves). */
size_t vitq_i_emb_struct_bytes(int32_t depth, int32_t outputs);

#endif
