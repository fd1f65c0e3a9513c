/* A checkpoint seen through vitq's canonical (timm) tensor names, whatever its layout. Hugging Face
 * and torchvision names are translated, HF query/key/value are fused into one qkv tensor (rows
 * q | k | v), a `module.` prefix is stripped, every float read is checked for NaN / infinity, and
 * every tensor read is marked so that unknown leftovers are reported instead of silently ignored. */
#ifndef VITQ_MODEL_CHECKPOINT_H
#define VITQ_MODEL_CHECKPOINT_H

#include "core/core.h"
#include "io/safetensors.h"

#define VITQ_I_NAME_LEN 256

typedef enum vitq_i_family { VITQ_I_FAMILY_VIT = 1, VITQ_I_FAMILY_SWIN = 2 } vitq_i_family;

typedef struct vitq_i_ckpt {
    const vitq_allocator *alloc;
    const vitq_i_safetensors *st;
    const char *name;       /* file name for messages */
    vitq_i_family family;
    vitq_layout layout;
    const char *prefix;     /* "module." (timm, torchvision), "vit." / "deit." / "" (HF ViT) */
    int merge_at_stage_end; /* Swin timm < 0.9 and HF: patch merging named in the stage before */
    int head_fc;            /* Swin timm >= 0.9: the classifier is head.fc.* */
    unsigned char *used;    /* one flag per tensor of st */
    int allow_non_finite;   /* 1: NaN / infinity in float tensors are read as they are */
} vitq_i_ckpt;

/* Detect the family and layout from probe keys. Unknown layouts and architectures vitq does not
 * implement (Swin V2, ...) fail with VITQ_ERR_UNSUPPORTED. */
vitq_status vitq_i_ckpt_open(vitq_i_ckpt *c, const vitq_allocator *a, const vitq_i_safetensors *st,
                             const char *name);
void vitq_i_ckpt_close(vitq_i_ckpt *c);

/* 1 if the canonical tensor exists (for fused qkv: any of q, k, v, so that reading names the missing part). */
int vitq_i_ckpt_has(const vitq_i_ckpt *c, const char *canon);

/* Shape of a canonical tensor (fused qkv: [3D, ...]). VITQ_ERR_MISSING_TENSOR when absent. */
vitq_status vitq_i_ckpt_shape(const vitq_i_ckpt *c, const char *canon, int *ndim, uint64_t *shape);

/* Read a canonical tensor as float32 into dst after checking its shape is exactly `shape`
 * (VITQ_ERR_SHAPE otherwise, naming the checkpoint's own tensor name) and, unless allow_non_finite,
 * that every value is finite (VITQ_ERR_NON_FINITE naming the tensor and the first bad element). */
vitq_status vitq_i_ckpt_read(vitq_i_ckpt *c, const char *canon, int ndim, const uint64_t *shape,
                             float *dst);

/* Read an integer (I64 or I32) canonical tensor of exactly `shape` (Swin's relative position index). */
vitq_status vitq_i_ckpt_read_int(vitq_i_ckpt *c, const char *canon, int ndim, const uint64_t *shape,
                                 int64_t *dst);

/* 1 when canonical weight `canon` is a quantized weight whose layer the loader builds once the model
 * exists (io/safetensors.h, pack_later): the builders read and check it but build no float panels. */
int vitq_i_ckpt_pack_later(const vitq_i_ckpt *c, const char *canon);

/* Mark a canonical tensor as consumed without reading it (known, deliberately unused buffers). */
void vitq_i_ckpt_ignore(vitq_i_ckpt *c, const char *canon);
/* The same for a tensor named as in the file (not a model tensor: quantizer parameters). */
void vitq_i_ckpt_ignore_raw(vitq_i_ckpt *c, const char *file_name);

/* Fail with VITQ_ERR_UNEXPECTED_TENSOR (or VITQ_ERR_UNSUPPORTED for known timm variants such as
 * LayerScale or fc_norm) on the first tensor nothing consumed. */
vitq_status vitq_i_ckpt_check_all_used(const vitq_i_ckpt *c);

/* The checkpoint's own name of canonical tensor `canon` (0 when the layout has no such tensor), and
 * the three HF names fused into a canonical "...attn.qkv.{weight,bias}" (0 when not fused). */
int vitq_i_ckpt_translate(const vitq_i_ckpt *c, const char *canon, char *out, size_t cap);
int vitq_i_ckpt_qkv_parts(const vitq_i_ckpt *c, const char *canon, char parts[3][VITQ_I_NAME_LEN]);

/* Human name of the checkpoint's layout and family ("timm ViT/DeiT", "torchvision Swin", ...). */
const char *vitq_i_ckpt_layout_label(const vitq_i_ckpt *c);

/* After a failure `st` whose message is set (a missing tensor, an unknown layout): append to the
 * message the file's tensors that are not names of the detected layout (the first few and a count)
 * and the known layout whose names the file matches best (checkpoint_diagnose.c). c may be a
 * checkpoint whose layout was not detected (family 0). Returns st. */
vitq_status vitq_i_ckpt_explain(const vitq_i_ckpt *c, vitq_status st);

/* Name maps of each layout (names_vit.c, names_swin.c, names_torchvision.c): canonical -> the
 * checkpoint's own name (0 when the layout has no such tensor); the HF query/key/value names fused
 * into canonical "...attn.qkv.{weight,bias}" (0 when not fused); an explanation for known unsupported
 * tensors. */
int vitq_i_vit_translate(const vitq_i_ckpt *c, const char *canon, char *out, size_t cap);
int vitq_i_vit_qkv_parts(const vitq_i_ckpt *c, const char *canon, char parts[3][VITQ_I_NAME_LEN]);
const char *vitq_i_vit_variant_note(const char *tensor);
int vitq_i_swin_translate(const vitq_i_ckpt *c, const char *canon, char *out, size_t cap);
int vitq_i_swin_qkv_parts(const vitq_i_ckpt *c, const char *canon, char parts[3][VITQ_I_NAME_LEN]);
const char *vitq_i_swin_variant_note(const char *tensor);
int vitq_i_tv_translate(const vitq_i_ckpt *c, const char *canon, char *out, size_t cap);
const char *vitq_i_tv_variant_note(const char *tensor);

#endif
