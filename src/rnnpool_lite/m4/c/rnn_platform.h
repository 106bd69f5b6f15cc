/* Platform layer: where the input comes from, where outputs go, and the instruction counter.
 *
 * Two implementations of the same interface:
 *   platform_host.c  - hosted C (stdio files), for the fast host build used by most tests;
 *   platform_m4.c    - bare-metal Cortex-M4 (mps2-an386 under QEMU): ARM semihosting for file
 *                      I/O, the CMSDK APB timer as the instruction clock (under QEMU -icount),
 *                      stack painting for the high-water mark.
 */
#ifndef RNN_PLATFORM_H
#define RNN_PLATFORM_H

#include <stdint.h>

/* Open the I/O files (input.bin for reading, output.bin for writing); 0 on success. */
int rnn_io_open(void);
/* Read exactly n bytes of the input frame into dst; 0 on success. */
int rnn_io_read(void *dst, uint32_t n);
/* Append one output record: tensor id, byte offset into that tensor, n bytes. */
void rnn_io_emit(uint32_t id, uint32_t offset, const void *src, uint32_t n);
void rnn_io_close(void);

/* A free-running clock; under QEMU -icount shift=0 one tick is RNN_INSNS_PER_TICK instructions. */
uint32_t rnn_clock(void);
extern const uint32_t rnn_insns_per_tick;

/* Bytes of stack ever used (painted-stack high-water mark); 0 on the host. */
uint32_t rnn_stack_used(void);

void rnn_exit(int code);

#endif
