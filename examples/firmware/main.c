/* The firmware example (docs/firmware.md): Fashion-MNIST images classified on a Cortex-M by two models
 * exported with `vitq export-c` (the bundled models/fmnist-vit quantized W8A8 and W4A8 with integer-only
 * LayerNorm, softmax and GELU). The weights stay in flash, where the exported const arrays are; RAM holds
 * one arena of the size vitq_embedded_arena_size() asks for. No heap, no stdio, no floating point: the
 * results go out through semihosting as integers, one line per image, which
 * tests/build/check_firmware.sh compares with the host's. */
#include <stdint.h>
#include <string.h>

#include "fw_images.h"
#include "semihost.h"
#include "vit_w4a8.h"
#include "vit_w8a8.h"
#include "vitq.h"

/* One image at a time: the arena the larger model needs for a batch of 1 (the exporting host's count,
 * an upper bound of this target's; main checks it against vitq_embedded_arena_size). */
#define ARENA_BYTES (VIT_W8A8_ARENA_BYTES_1 > VIT_W4A8_ARENA_BYTES_1 ? VIT_W8A8_ARENA_BYTES_1 : VIT_W4A8_ARENA_BYTES_1)
static uint8_t arena[ARENA_BYTES];

static const struct {
    const char *name;
    const vitq_embedded_model *model;
} models[] = {{"vit_w8a8", &vit_w8a8}, {"vit_w4a8", &vit_w4a8}};

/* ---- output: integers only ---- */

static void put_uint(uint32_t v, unsigned base) {
    char buf[12], *p = buf + sizeof buf;
    *--p = '\0';
    do {
        *--p = "0123456789abcdef"[v % base];
        v /= base;
    } while (v);
    fw_puts(p);
}

static void put_int(int32_t v) {
    if (v < 0) fw_puts("-");
    put_uint(v < 0 ? (uint32_t)0 - (uint32_t)v : (uint32_t)v, 10);
}

static int fail(const char *what, vitq_status st) {
    fw_puts("firmware: ");
    fw_puts(what);
    fw_puts(": ");
    fw_puts(vitq_status_name(st));
    fw_puts(": ");
    fw_puts(vitq_last_error());
    fw_puts("\n");
    return 1;
}

/* ---- the stack's high-water mark: the free RAM below the stack painted, then the untouched part found ---- */

extern uint8_t fw_bss_end[];
#define PAINT 0xA5u

static void paint_stack(void) {
    uintptr_t sp;
    __asm__ volatile("mov %0, sp" : "=r"(sp));
    for (uint8_t *p = fw_bss_end; (uintptr_t)p < sp - 256; p++) *p = PAINT;
}

static uint32_t stack_used(void) {
    extern uint8_t fw_stack_top[];
    const uint8_t *p = fw_bss_end;
    while (p < fw_stack_top && *p == PAINT) p++;
    return (uint32_t)(fw_stack_top - p);
}

/* ---- the run ---- */

static int classify(const vitq_embedded_model *m, const char *name) {
    size_t need;
    vitq_status st = vitq_embedded_arena_size(m, 1, &need);
    if (st) return fail(name, st);
    if (need > sizeof arena) return fail("the arena is smaller than the model needs", VITQ_ERR_BUFFER_TOO_SMALL);
    fw_puts("model ");
    fw_puts(name);
    fw_puts(" arena ");
    put_uint((uint32_t)need, 10);
    fw_puts(" program ");
    put_uint(m->words * 8u, 10);
    fw_puts("\nscales");
    float scales[2 * FW_MAX_CLASSES];
    if (m->classes * m->outputs > 2 * FW_MAX_CLASSES) return fail(name, VITQ_ERR_UNSUPPORTED);
    if ((st = vitq_embedded_logit_scales(m, scales))) return fail(name, st);
    for (int32_t j = 0; j < m->classes * m->outputs; j++) { /* their float32 bits, for the host's comparison */
        uint32_t bits;
        memcpy(&bits, &scales[j], sizeof bits);
        fw_puts(" ");
        put_uint(bits, 16);
    }
    fw_puts("\n");
    size_t pixels = (size_t)m->channels * (size_t)m->image_size * (size_t)m->image_size;
    if (pixels != FW_IMAGE_BYTES) return fail("the images do not fit the model", VITQ_ERR_SHAPE);
    for (int i = 0; i < FW_IMAGES; i++) {
        int32_t logits[2 * FW_MAX_CLASSES], pred;
        st = vitq_embedded_run(m, arena, sizeof arena, fw_images[i], 1, logits);
        if (!st) st = vitq_embedded_predict(m, logits, 1, &pred);
        if (st) return fail(name, st);
        fw_puts("image ");
        put_int(i);
        fw_puts(" label ");
        put_int(fw_labels[i]);
        fw_puts(" pred ");
        put_int(pred);
        fw_puts(" logits");
        for (int32_t j = 0; j < m->classes * m->outputs; j++) {
            fw_puts(" ");
            put_int(logits[j]);
        }
        fw_puts("\n");
    }
    return 0;
}

int main(void) {
    paint_stack();
    for (size_t k = 0; k < sizeof models / sizeof models[0]; k++)
        if (classify(models[k].model, models[k].name)) return 1;
    fw_puts("stack ");
    put_uint(stack_used(), 10);
    fw_puts("\nfirmware: done\n");
    return 0;
}
