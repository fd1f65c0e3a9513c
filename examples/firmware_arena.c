/* firmware_arena: the full library without malloc, every byte from a static arena.
 *   firmware_arena MODEL.safetensors IMAGE_INDEX
 * The weights arrive as one blob (here read with stdio), the configuration is a string compiled in,
 * and every byte vitq allocates comes from a fixed static arena through a vitq_allocator. The model is
 * loaded with vitq_model_load_memory(), which copies what it needs into the arena: the blob could then
 * be released, but the weights live in RAM. This is the hosted library (float or quantized models,
 * libm); for a microcontroller, with a quantized model's weights left in flash and no heap, stdio or
 * floating point, see examples/firmware/ and docs/firmware.md (vitq export-c, vitq_embedded_run). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vitq.h"

/* A bump allocator over a static arena: free() only reclaims the top block. 8 MB is plenty for
 * the bundled models (see the high-water mark printed at the end). */
static uint8_t arena[8u << 20];
static size_t arena_top, arena_high;

static void *arena_alloc(void *user, size_t size, size_t align) {
    (void)user;
    size_t at = (arena_top + align - 1) & ~(align - 1);
    if (at + size > sizeof arena) return NULL;
    arena_top = at + size;
    if (arena_top > arena_high) arena_high = arena_top;
    return arena + at;
}

static void arena_free(void *user, void *ptr) {
    (void)user;
    (void)ptr; /* a real firmware would reset the arena when the model goes away */
}

/* What config.json would say, baked into the firmware image. */
static const char config_json[] =
    "{\"architecture\": \"vit_fmnist_patch4_28\", \"model_args\": {\"num_heads\": 4},"
    " \"pretrained_cfg\": {\"mean\": [0.2860], \"std\": [0.3530]}}";

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: %s MODEL.safetensors\n", argv[0]);
        return 2;
    }
    FILE *f = fopen(argv[1], "rb");
    if (!f) {
        perror(argv[1]);
        return 1;
    }
    static uint8_t flash[4u << 20];
    size_t size = fread(flash, 1, sizeof flash, f);
    fclose(f);

    vitq_allocator allocator = {sizeof allocator, arena_alloc, arena_free, NULL};
    vitq_model_options options;
    vitq_model_options_init(&options);
    options.allocator = &allocator;
    options.config_json = config_json;
    options.num_threads = 1;
    vitq_model *model = NULL;
    vitq_status st = vitq_model_load_memory(flash, size, "flash", &options, &model);
    if (st) {
        fprintf(stderr, "load: %s: %s\n", vitq_status_name(st), vitq_last_error());
        return 1;
    }
    memset(flash, 0, sizeof flash); /* the model does not point into the blob */

    /* A synthetic 28x28 "sensor frame": a bright vertical bar (trouser-like). */
    uint8_t frame[28 * 28] = {0};
    for (int y = 2; y < 26; y++)
        for (int x = 10; x < 18; x++) frame[y * 28 + x] = 220;
    float input[28 * 28], logits[16];
    st = vitq_model_preprocess_u8(model, frame, 1, VITQ_PIXELS_NHWC, input);
    if (!st) st = vitq_model_forward(model, input, 1, logits);
    if (st) {
        fprintf(stderr, "forward: %s: %s\n", vitq_status_name(st), vitq_last_error());
        return 1;
    }
    int best = 0;
    for (int c = 1; c < 10; c++)
        if (logits[c] > logits[best]) best = c;
    printf("class %d, arena high-water %zu bytes, no malloc\n", best, arena_high);
    vitq_model_free(model);
    return 0;
}
