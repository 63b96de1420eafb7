/*
 * report.h -- `tftx report` and its SVG plot.
 */
#ifndef TFTX_HOST_REPORT_H
#define TFTX_HOST_REPORT_H

#include "results.h"

int cmd_report(int argc, char **argv);
/* Training-loss and validation curves of the given run records (the latest
 * of each run), one colour per configuration, into an SVG file. 0 ok, -1
 * (said on stderr) otherwise. */
int report_plot(const char *path, const msgpack_object *const *runs, size_t n, const char *metric);

#endif
