/*
 * rerun.h -- `tftx rerun LOG RUN_ID`.
 */
#ifndef TFTX_HOST_RERUN_H
#define TFTX_HOST_RERUN_H

int cmd_rerun(int argc, char **argv);

#endif
