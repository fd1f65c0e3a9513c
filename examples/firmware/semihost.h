/* ARM semihosting (the debugger's console; QEMU's -semihosting): text out, and the end of the run. */
#ifndef FW_SEMIHOST_H
#define FW_SEMIHOST_H

#include <stdint.h>

/* A semihosting call: operation op with argument arg (bkpt 0xAB on M-profile cores). */
static inline int32_t fw_semihost(int32_t op, const void *arg) {
    register int32_t r0 __asm__("r0") = op;
    register const void *r1 __asm__("r1") = arg;
    __asm__ volatile("bkpt 0xAB" : "+r"(r0) : "r"(r1) : "memory");
    return r0;
}

/* SYS_WRITE0: a NUL-terminated string to the console. */
static inline void fw_puts(const char *s) { fw_semihost(0x04, s); }

/* SYS_EXIT: status 0 as ADP_Stopped_ApplicationExit (QEMU exits 0), anything else as
 * ADP_Stopped_RunTimeErrorUnknown (QEMU exits 1). */
static inline void fw_exit(int status) {
    fw_semihost(0x18, (const void *)(uintptr_t)(status == 0 ? 0x20026 : 0x20023));
    for (;;) {
    }
}

#endif
