/*
 * cpu_matmul.c -- linear layers on OpenBLAS, and the BLAS thread budget.
 *
 *   forward:   out  = inp @ weight^T + bias      out (N,OC), inp (N,C),
 *                                                weight (OC,C), bias (OC)
 *   backward:  dinp    += dout @ weight          (N,C)  (or =, dinp_add 0)
 *              dweight += dout^T @ inp           (OC,C)
 *              dbias   += sum_n dout[n,:]        (OC)
 *
 * Row-major cblas_sgemm with transpose flags reads the weight in PyTorch's
 * (OC,C) layout where it lies: no copies, no transposed duplicates.
 */
#include <cblas.h>
#include <omp.h>
#include <string.h>

#include "cpu.h"

/* OpenBLAS keeps its own thread count. In its OpenMP build,
 * openblas_set_num_threads also calls omp_set_num_threads, so the caller's
 * default is saved here and restored by cpu_blas_end. Setting the count
 * before every call (instead of once) matters for two reasons: two
 * instances may use different counts, and OpenBLAS ignores the OpenMP
 * default once its own count is 1. Calls made from inside an OpenMP region
 * run on one thread (the OpenMP build checks omp_in_parallel; the pthread
 * build is told by cpu_blas_begin(1) before the region). */
int cpu_blas_begin(int n)
{
    int saved = omp_get_max_threads();
    openblas_set_num_threads(n);
    return saved;
}

void cpu_blas_end(int saved)
{
    omp_set_num_threads(saved);
}

void cpu_matmul_forward(void *self, float *out, const float *inp, const float *weight, const float *bias, int N, int C,
                        int OC)
{
    if (N <= 0 || OC <= 0) return;
    int nt = cpu_nt(self);
    /* out starts as the bias in every row (beta = 1 then adds the product,
     * as torch.addmm does), or is overwritten (beta = 0). */
    float beta = 0.0f;
    if (bias) {
#pragma omp parallel for num_threads(nt) schedule(static)
        for (int n = 0; n < N; n++) memcpy(out + (size_t)n * OC, bias, (size_t)OC * sizeof *out);
        beta = 1.0f;
    }
    if (C <= 0) {
        if (!bias) memset(out, 0, (size_t)N * OC * sizeof *out);
        return;
    }
    int saved = cpu_blas_begin(nt);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, N, OC, C, 1.0f, inp, C, weight, C, beta, out, OC);
    cpu_blas_end(saved);
}

/* dbias[o] (+)= sum_n dout[n,o]: split over blocks of columns, so each
 * thread owns whole elements and adds the rows in order 0..N-1. */
static void matmul_bias_backward(int nt, float *dbias, const float *dout, int N, int OC, int add)
{
#pragma omp parallel for num_threads(nt) schedule(static)
    for (int o0 = 0; o0 < OC; o0 += CPU_COL_BLOCK) {
        int width = OC - o0 < CPU_COL_BLOCK ? OC - o0 : CPU_COL_BLOCK;
        float acc[CPU_COL_BLOCK] = {0};
        for (int n = 0; n < N; n++) {
            const float *row = dout + (size_t)n * OC + o0;
            for (int j = 0; j < width; j++) acc[j] += row[j];
        }
        for (int j = 0; j < width; j++) dbias[o0 + j] = (add ? dbias[o0 + j] : 0.0f) + acc[j];
    }
}

void cpu_matmul_backward(void *self, float *dinp, float *dweight, float *dbias, const float *dout, const float *inp,
                         const float *weight, int N, int C, int OC, int dinp_add, int dparam_add)
{
    if (C < 0 || OC < 0) return;
    if (N <= 0 || OC == 0) { /* an empty product: what is written is 0 */
        if (dinp && !dinp_add && N > 0) memset(dinp, 0, (size_t)N * (size_t)C * sizeof *dinp);
        if (dweight && !dparam_add) memset(dweight, 0, (size_t)OC * (size_t)C * sizeof *dweight);
        if (dbias && !dparam_add) memset(dbias, 0, (size_t)OC * sizeof *dbias);
        return;
    }
    int nt = cpu_nt(self);
    if (dbias) matmul_bias_backward(nt, dbias, dout, N, OC, dparam_add);
    if (C == 0) return;
    int saved = cpu_blas_begin(nt);
    /* dinp (N,C) (+)= dout (N,OC) @ weight (OC,C); beta 0 reads nothing */
    if (dinp)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, N, C, OC, 1.0f, dout, OC, weight, C,
                    dinp_add ? 1.0f : 0.0f, dinp, C);
    /* dweight (OC,C) (+)= dout^T (OC,N) @ inp (N,C) */
    if (dweight)
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, OC, C, N, 1.0f, dout, OC, inp, C, dparam_add ? 1.0f : 0.0f,
                    dweight, C);
    cpu_blas_end(saved);
}
