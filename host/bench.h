/*
 * bench.h -- `tftx bench`: timing of full training steps.
 */
#ifndef TFTX_HOST_BENCH_H
#define TFTX_HOST_BENCH_H

int cmd_bench(int argc, char **argv);

#endif
