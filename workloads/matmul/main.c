/*
 * kiln/matmul: multiplies two deterministic pseudo-random N x N float32 matrices.
 *
 * Usage: matmul [N] [--timing]      (N also from $MATMUL_N; default 256)
 * Writes /out/result.npy (float32, C order) and /out/summary.json.
 *
 * The outputs must be byte-identical on every honest provider, because the verifier
 * compares output digests. So: a fixed seed, a fixed loop order, no FMA contraction
 * (built with -ffp-contract=off), and no wall-clock time in /out unless --timing is
 * given (the time goes to stdout, which is logged but not compared).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MAX_N 8192
#define OUT_DIR "/out"

static uint64_t rng_state;

/* splitmix64: tiny, well mixed, and identical everywhere (no libc rand()). */
static uint64_t next_u64(void) {
  uint64_t z = (rng_state += 0x9E3779B97F4A7C15ULL);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  return z ^ (z >> 31);
}

/* Uniform in [-1, 1) with 24 bits, exactly representable as a float. */
static float next_float(void) {
  return (float)((int32_t)(next_u64() >> 40) - (1 << 23)) / (float)(1 << 23);
}

static double now_seconds(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int write_npy(const char *path, const float *m, int n) {
  FILE *f = fopen(path, "wb");
  if (!f) return -1;
  char header[128];
  int len = snprintf(header, sizeof header,
                     "{'descr': '<f4', 'fortran_order': False, 'shape': (%d, %d), }", n, n);
  /* Format 1.0: magic(6) + version(2) + u16 length + header padded with spaces and a
   * final newline so that the data starts on a 64-byte boundary. */
  int total = 10 + len + 1;
  int pad = (64 - total % 64) % 64;
  uint16_t hlen = (uint16_t)(len + pad + 1);
  unsigned char pre[10] = {0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0,
                           (unsigned char)(hlen & 0xff), (unsigned char)(hlen >> 8)};
  int ok = fwrite(pre, 1, 10, f) == 10 && fwrite(header, 1, (size_t)len, f) == (size_t)len;
  for (int i = 0; ok && i < pad; i++) ok = fputc(' ', f) != EOF;
  ok = ok && fputc('\n', f) != EOF;
  /* x86-64 and aarch64 are little-endian, which is what '<f4' promises. */
  ok = ok && fwrite(m, sizeof(float), (size_t)n * n, f) == (size_t)n * n;
  return (fclose(f) == 0 && ok) ? 0 : -1;
}

int main(int argc, char **argv) {
  setvbuf(stdout, NULL, _IOLBF, 0); /* progress lines must reach the log as they happen */
  int n = 256, timing = 0;
  const char *env_n = getenv("MATMUL_N");
  if (env_n && *env_n) n = atoi(env_n);
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--timing") == 0) timing = 1;
    else n = atoi(argv[i]);
  }
  if (n < 1 || n > MAX_N) {
    fprintf(stderr, "matmul: N must be between 1 and %d, got %d\n", MAX_N, n);
    return 2;
  }

  size_t count = (size_t)n * n;
  float *a = malloc(count * sizeof(float));
  float *b = malloc(count * sizeof(float));
  float *c = calloc(count, sizeof(float));
  if (!a || !b || !c) {
    fprintf(stderr, "matmul: cannot allocate 3 x %dx%d floats\n", n, n);
    return 3;
  }
  rng_state = 0x6B696C6E; /* "kiln" */
  for (size_t i = 0; i < count; i++) a[i] = next_float();
  for (size_t i = 0; i < count; i++) b[i] = next_float();
  printf("matmul: n=%d seed=0x6b696c6e\n", n);

  double t0 = now_seconds();
  int step = n >= 10 ? n / 10 : 1;
  for (int i = 0; i < n; i++) {
    float *ci = c + (size_t)i * n;
    for (int k = 0; k < n; k++) {
      float aik = a[(size_t)i * n + k];
      const float *bk = b + (size_t)k * n;
      for (int j = 0; j < n; j++) ci[j] += aik * bk[j];
    }
    if ((i + 1) % step == 0 || i + 1 == n) printf("progress: %d/%d rows (%d%%)\n", i + 1, n, (i + 1) * 100 / n);
  }
  double seconds = now_seconds() - t0;

  double checksum = 0;
  for (size_t i = 0; i < count; i++) checksum += c[i];
  printf("done: checksum=%.17g seconds=%.3f\n", checksum, seconds);

  if (write_npy(OUT_DIR "/result.npy", c, n) != 0) {
    perror("matmul: writing " OUT_DIR "/result.npy");
    return 4;
  }
  FILE *s = fopen(OUT_DIR "/summary.json", "w");
  if (!s) {
    perror("matmul: writing " OUT_DIR "/summary.json");
    return 4;
  }
  fprintf(s, "{\"n\": %d, \"seed\": \"0x6b696c6e\", \"checksum\": %.17g", n, checksum);
  if (timing) fprintf(s, ", \"seconds\": %.6f", seconds);
  fprintf(s, "}\n");
  if (fclose(s) != 0) {
    perror("matmul: writing " OUT_DIR "/summary.json");
    return 4;
  }
  printf("wrote %s/result.npy and %s/summary.json\n", OUT_DIR, OUT_DIR);
  free(a);
  free(b);
  free(c);
  return 0;
}
