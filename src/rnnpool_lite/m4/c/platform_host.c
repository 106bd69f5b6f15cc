/* Hosted platform: files through stdio, no instruction counter, no stack measurement. */
#include <stdio.h>
#include <stdlib.h>
#include "rnn_platform.h"

static FILE *in_file, *out_file;
const uint32_t rnn_insns_per_tick = 0;

int rnn_io_open(void) {
    in_file = fopen("input.bin", "rb");
    out_file = fopen("output.bin", "wb");
    return out_file == NULL;
}

int rnn_io_read(void *dst, uint32_t n) {
    if (in_file == NULL) return 1;
    return fread(dst, 1, n, in_file) != n;
}

void rnn_io_emit(uint32_t id, uint32_t offset, const void *src, uint32_t n) {
    uint32_t header[3] = {id, offset, n};
    fwrite(header, sizeof header, 1, out_file);
    fwrite(src, 1, n, out_file);
}

void rnn_io_close(void) {
    if (in_file) fclose(in_file);
    if (out_file) fclose(out_file);
}

uint32_t rnn_clock(void) { return 0; }
uint32_t rnn_stack_used(void) { return 0; }
void rnn_exit(int code) { exit(code); }

int rnn_main(void);
int main(void) { return rnn_main(); }
