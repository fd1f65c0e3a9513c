/* The quantization points of a model (vitq.h, "Quantization"): their names, what they are, and the
 * tap sites of the forward pass that reach the activation points. The list depends only on the
 * model's architecture, so a calibrator and a loaded quantized model derive the same list. */
#ifndef VITQ_QUANT_POINTS_H
#define VITQ_QUANT_POINTS_H

#include "model/taps.h"
#include "model/net.h"

#define VITQ_I_POINT_NAME 96

typedef struct vitq_i_point_desc {
    char name[VITQ_I_POINT_NAME];
    vitq_point_kind kind;
    vitq_point_role role;
    int64_t channels; /* output rows of a weight, features of an activation, heads of scores / probs */
    int64_t inner;    /* weight: input features; activation: 1, or tokens^2 for scores / probs */
    int64_t heads;    /* groups of channels per head (0: per-head makes no sense here) */
    int edge;         /* patch embedding or classifier: the calibrator's edge_bits apply */
    vitq_i_linear *weight; /* the layer of a weight point (in the model the list was built from) */
} vitq_i_point_desc;

typedef struct vitq_i_point_list {
    vitq_i_point_desc *points;
    int count;
    vitq_i_sites sites; /* every activation point of the list */
} vitq_i_point_list;

/* Roles of points that are the input of a linear layer (whose weight point follows them in the list). */
static inline int vitq_i_role_is_linear_input(vitq_point_role role) {
    return role == VITQ_ROLE_IMAGE || role == VITQ_ROLE_POST_LAYERNORM || role == VITQ_ROLE_LINEAR_INPUT ||
           role == VITQ_ROLE_POST_GELU;
}

/* All points of `m`, in forward order (a weight right after its layer's input). */
vitq_status vitq_i_points_build(const vitq_allocator *a, vitq_i_net *m, vitq_i_point_list *out);
void vitq_i_points_free(const vitq_allocator *a, vitq_i_point_list *list);
/* Index of the point called `name`, or -1. */
int vitq_i_points_find(const vitq_i_point_list *list, const char *name);
/* Copy of list->sites with every site whose point has active[point] == 0 set to -1. */
vitq_status vitq_i_sites_filter(const vitq_allocator *a, const vitq_i_net *m, const vitq_i_point_list *list,
                                const unsigned char *active, vitq_i_sites *out);
void vitq_i_sites_free(const vitq_allocator *a, vitq_i_sites *s);

#endif
