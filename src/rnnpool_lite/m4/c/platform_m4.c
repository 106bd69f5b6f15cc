/* Bare-metal Cortex-M4 platform for QEMU's mps2-an386 board.
 *
 * - Startup: the vector table, .data copied from flash, .bss zeroed, the free stack painted.
 * - I/O: ARM semihosting (BKPT 0xAB): SYS_OPEN / SYS_READ / SYS_WRITE / SYS_CLOSE / SYS_EXIT
 *   on host files, so no stdio (and no heap) is linked in.
 * - Clock: CMSDK APB timer 0 (0x40000000) counting down at the 25 MHz system clock. Under
 *   `qemu-system-arm -icount shift=0` virtual time advances exactly 1 ns per executed
 *   instruction, so one timer tick is 40 instructions.
 * - Stack: rnn_stack_used() scans the painted stack for the deepest overwritten word.
 */
#include <stddef.h>
#include <stdint.h>
#include "rnn_platform.h"

extern uint32_t __data_load, __data_start, __data_end, __bss_start, __bss_end;
extern uint32_t __stack_bottom, __stack_top;

#define STACK_PAINT 0xC5C5C5C5u
const uint32_t rnn_insns_per_tick = 40; /* 25 MHz timer, 1 ns per instruction */

int rnn_main(void);

/* --- semihosting ---------------------------------------------------------------------- */
static int semihost(int op, void *arg) {
    register int r0 __asm__("r0") = op;
    register void *r1 __asm__("r1") = arg;
    __asm__ volatile("bkpt 0xAB" : "+r"(r0) : "r"(r1) : "memory");
    return r0;
}

static int in_fd = -1, out_fd = -1;

static int sh_open(const char *name, int mode) {
    uint32_t len = 0;
    while (name[len]) len++;
    uint32_t args[3] = {(uint32_t)name, (uint32_t)mode, len};
    return semihost(0x01, args);
}

int rnn_io_open(void) {
    in_fd = sh_open("input.bin", 1);   /* "rb" */
    out_fd = sh_open("output.bin", 5); /* "wb" */
    return out_fd < 0;
}

int rnn_io_read(void *dst, uint32_t n) {
    if (in_fd < 0) return 1;
    uint32_t args[3] = {(uint32_t)in_fd, (uint32_t)dst, n};
    return semihost(0x06, args) != 0; /* returns the bytes NOT read */
}

void rnn_io_emit(uint32_t id, uint32_t offset, const void *src, uint32_t n) {
    uint32_t header[3] = {id, offset, n};
    uint32_t a1[3] = {(uint32_t)out_fd, (uint32_t)header, sizeof header};
    semihost(0x05, a1);
    uint32_t a2[3] = {(uint32_t)out_fd, (uint32_t)src, n};
    semihost(0x05, a2);
}

void rnn_io_close(void) {
    uint32_t a[1];
    if (in_fd >= 0) { a[0] = (uint32_t)in_fd; semihost(0x02, a); }
    if (out_fd >= 0) { a[0] = (uint32_t)out_fd; semihost(0x02, a); }
}

void rnn_exit(int code) {
    /* SYS_EXIT: ADP_Stopped_ApplicationExit (0x20026) ends QEMU with status 0, anything else 1 */
    semihost(0x18, (void *)(code == 0 ? 0x20026 : 0x20024));
    for (;;) {}
}

/* --- clock: CMSDK APB timer 0 ------------------------------------------------------------ */
#define TIMER0_CTRL (*(volatile uint32_t *)0x40000000u)
#define TIMER0_VALUE (*(volatile uint32_t *)0x40000004u)
#define TIMER0_RELOAD (*(volatile uint32_t *)0x40000008u)

uint32_t rnn_clock(void) { return 0xFFFFFFFFu - TIMER0_VALUE; }

/* --- stack ------------------------------------------------------------------------------ */
uint32_t rnn_stack_used(void) {
    const uint32_t *p = &__stack_bottom;
    while (p < &__stack_top && *p == STACK_PAINT) p++;
    return (uint32_t)((const char *)&__stack_top - (const char *)p);
}

/* --- C runtime pieces gcc may call ------------------------------------------------------- */
void *memcpy(void *dst, const void *src, size_t n) {
    uint8_t *d = dst;
    const uint8_t *s = src;
    while (n--) *d++ = *s++;
    return dst;
}

void *memset(void *dst, int c, size_t n) {
    uint8_t *d = dst;
    while (n--) *d++ = (uint8_t)c;
    return dst;
}

/* --- startup ----------------------------------------------------------------------------- */
void Reset_Handler(void) {
    uint32_t *src = &__data_load, *dst = &__data_start;
    while (dst < &__data_end) *dst++ = *src++;
    for (dst = &__bss_start; dst < &__bss_end; dst++) *dst = 0;
    uint32_t sp;
    __asm__ volatile("mov %0, sp" : "=r"(sp));
    for (dst = &__stack_bottom; (uint32_t)dst < sp - 32; dst++) *dst = STACK_PAINT;
    TIMER0_CTRL = 0;
    TIMER0_RELOAD = 0xFFFFFFFFu;
    TIMER0_VALUE = 0xFFFFFFFFu;
    TIMER0_CTRL = 1; /* enable, system clock, no interrupt */
    rnn_exit(rnn_main());
}

static void Default_Handler(void) {
    rnn_exit(3);
}

__attribute__((section(".vectors"), used)) static const void *const vectors[16] = {
    &__stack_top, (void *)Reset_Handler, (void *)Default_Handler, (void *)Default_Handler,
    (void *)Default_Handler, (void *)Default_Handler, (void *)Default_Handler, 0, 0, 0, 0,
    (void *)Default_Handler, (void *)Default_Handler, 0, (void *)Default_Handler, (void *)Default_Handler,
};
