/* Start-up of the firmware example on a Cortex-M (docs/firmware.md): the vector table, .data copied
 * from flash and .bss cleared, then main(); faults and main's return end the run through semihosting,
 * so QEMU exits with the firmware's status. */
#include <stdint.h>
#include <string.h>

#include "semihost.h"

extern uint8_t fw_data_start[], fw_data_end[], fw_data_load[], fw_bss_start[], fw_bss_end[], fw_stack_top[];

int main(void);
void fw_reset(void);
void fw_fault(void);

void fw_reset(void) {
    memcpy(fw_data_start, fw_data_load, (size_t)(fw_data_end - fw_data_start));
    memset(fw_bss_start, 0, (size_t)(fw_bss_end - fw_bss_start));
    fw_exit(main());
}

void fw_fault(void) {
    fw_puts("firmware: fault\n");
    fw_exit(3);
}

/* Initial stack pointer, reset, then NMI, HardFault, MemManage, BusFault and UsageFault. */
__attribute__((section(".vectors"), used)) static void (*const vectors[7])(void) = {
    (void (*)(void))(uintptr_t)fw_stack_top, fw_reset, fw_fault, fw_fault, fw_fault, fw_fault, fw_fault};
