/*
 * kiln/infer: batch inference with a small text classifier whose weights are a job input.
 *
 * Usage: infer [MODEL] [DATA_DIR]        (defaults /in/model and /in/data)
 *
 * MODEL is a logistic-regression model over hashed word unigrams and bigrams:
 *   "KILNLR1\0" | uint32 dim | float32 bias | float32 weight[dim]    (little-endian)
 * (examples/batch-inference/train.ts trains one and writes it.)
 * DATA_DIR holds text files; every non-empty line of every file (files in byte order of
 * their names) is one item. Writes /out/results.jsonl (one line per item: file, line,
 * label, score) and /out/summary.json.
 *
 * If $RESULTS_KEY is set (a sealed secret in the example), /out/results.hmac holds
 * HMAC-SHA256(RESULTS_KEY, results.jsonl) in hex, so whoever knows the key can check the
 * results came from a run that had it. The program prints a line naming the key it uses:
 * the provider masks secret values in the streamed logs, and the example shows that.
 *
 * Outputs are byte-identical on every honest provider (the verifier compares digests):
 * fixed file order, no FMA contraction (-ffp-contract=off), scores printed to 4 places.
 */
#include <dirent.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define OUT_DIR "/out"
#define MAX_DIM (1u << 22)
#define MAX_FILES 4096
#define MAX_LINE 65536

static uint32_t dim;
static float bias;
static float *weight;

static void die(const char *what, const char *detail) {
  fprintf(stderr, "infer: %s%s%s\n", what, detail ? ": " : "", detail ? detail : "");
  exit(2);
}

static void load_model(const char *path) {
  FILE *f = fopen(path, "rb");
  if (!f) die("cannot open the model", path);
  char magic[8];
  if (fread(magic, 1, 8, f) != 8 || memcmp(magic, "KILNLR1", 8) != 0) die("not a KILNLR1 model", path);
  if (fread(&dim, 4, 1, f) != 1 || dim == 0 || dim > MAX_DIM) die("bad model dimension", path);
  if (fread(&bias, 4, 1, f) != 1) die("truncated model", path);
  weight = malloc((size_t)dim * sizeof(float));
  if (!weight) die("out of memory", NULL);
  if (fread(weight, sizeof(float), dim, f) != dim) die("truncated model weights", path);
  fclose(f);
}

/* FNV-1a, 32 bits: the same hash the trainer uses. */
static uint32_t fnv1a(const char *s, size_t n, uint32_t h) {
  for (size_t i = 0; i < n; i++) h = (h ^ (unsigned char)s[i]) * 16777619u;
  return h;
}

/* Words: runs of ASCII letters and digits, lower-cased. Features: each word, each pair. */
static double score_line(const char *line) {
  char words[256][32];
  size_t nw = 0;
  for (const char *p = line; *p && nw < 256;) {
    while (*p && !((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9'))) p++;
    size_t n = 0;
    while ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9')) {
      if (n < 31) words[nw][n++] = (char)(*p >= 'A' && *p <= 'Z' ? *p + 32 : *p);
      p++;
    }
    if (n) words[nw++][n] = 0;
  }
  float z = bias;
  for (size_t i = 0; i < nw; i++) {
    z += weight[fnv1a(words[i], strlen(words[i]), 2166136261u) % dim];
    if (i + 1 < nw) {
      uint32_t h = fnv1a(words[i], strlen(words[i]), 2166136261u);
      h = fnv1a(" ", 1, h);
      z += weight[fnv1a(words[i + 1], strlen(words[i + 1]), h) % dim];
    }
  }
  return 1.0 / (1.0 + exp(-(double)z));
}

/* SHA-256 and HMAC, small and self-contained (FIPS 180-4, RFC 2104). */
typedef struct { uint32_t h[8]; uint64_t len; unsigned char buf[64]; size_t n; } sha256_ctx;
static const uint32_t K[64] = {
  0x428a2f98,0x71374491,0xb5c0fbcf,0xe9b5dba5,0x3956c25b,0x59f111f1,0x923f82a4,0xab1c5ed5,0xd807aa98,0x12835b01,
  0x243185be,0x550c7dc3,0x72be5d74,0x80deb1fe,0x9bdc06a7,0xc19bf174,0xe49b69c1,0xefbe4786,0x0fc19dc6,0x240ca1cc,
  0x2de92c6f,0x4a7484aa,0x5cb0a9dc,0x76f988da,0x983e5152,0xa831c66d,0xb00327c8,0xbf597fc7,0xc6e00bf3,0xd5a79147,
  0x06ca6351,0x14292967,0x27b70a85,0x2e1b2138,0x4d2c6dfc,0x53380d13,0x650a7354,0x766a0abb,0x81c2c92e,0x92722c85,
  0xa2bfe8a1,0xa81a664b,0xc24b8b70,0xc76c51a3,0xd192e819,0xd6990624,0xf40e3585,0x106aa070,0x19a4c116,0x1e376c08,
  0x2748774c,0x34b0bcb5,0x391c0cb3,0x4ed8aa4a,0x5b9cca4f,0x682e6ff3,0x748f82ee,0x78a5636f,0x84c87814,0x8cc70208,
  0x90befffa,0xa4506ceb,0xbef9a3f7,0xc67178f2};
#define ROR(x, n) (((x) >> (n)) | ((x) << (32 - (n))))
static void sha256_block(sha256_ctx *c, const unsigned char *b) {
  uint32_t w[64], s[8];
  for (int i = 0; i < 16; i++) w[i] = (uint32_t)b[4*i] << 24 | (uint32_t)b[4*i+1] << 16 | (uint32_t)b[4*i+2] << 8 | b[4*i+3];
  for (int i = 16; i < 64; i++) {
    uint32_t s0 = ROR(w[i-15], 7) ^ ROR(w[i-15], 18) ^ (w[i-15] >> 3);
    uint32_t s1 = ROR(w[i-2], 17) ^ ROR(w[i-2], 19) ^ (w[i-2] >> 10);
    w[i] = w[i-16] + s0 + w[i-7] + s1;
  }
  memcpy(s, c->h, sizeof s);
  for (int i = 0; i < 64; i++) {
    uint32_t t1 = s[7] + (ROR(s[4], 6) ^ ROR(s[4], 11) ^ ROR(s[4], 25)) + ((s[4] & s[5]) ^ (~s[4] & s[6])) + K[i] + w[i];
    uint32_t t2 = (ROR(s[0], 2) ^ ROR(s[0], 13) ^ ROR(s[0], 22)) + ((s[0] & s[1]) ^ (s[0] & s[2]) ^ (s[1] & s[2]));
    memmove(s + 1, s, 7 * sizeof(uint32_t));
    s[4] += t1;
    s[0] = t1 + t2;
  }
  for (int i = 0; i < 8; i++) c->h[i] += s[i];
}
static void sha256_init(sha256_ctx *c) {
  static const uint32_t h0[8] = {0x6a09e667,0xbb67ae85,0x3c6ef372,0xa54ff53a,0x510e527f,0x9b05688c,0x1f83d9ab,0x5be0cd19};
  memcpy(c->h, h0, sizeof h0); c->len = 0; c->n = 0;
}
static void sha256_update(sha256_ctx *c, const void *data, size_t n) {
  const unsigned char *p = data;
  c->len += n;
  while (n--) { c->buf[c->n++] = *p++; if (c->n == 64) { sha256_block(c, c->buf); c->n = 0; } }
}
static void sha256_final(sha256_ctx *c, unsigned char out[32]) {
  uint64_t bits = c->len * 8;
  unsigned char pad = 0x80, zero = 0, lenb[8];
  sha256_update(c, &pad, 1);
  while (c->n != 56) sha256_update(c, &zero, 1);
  for (int i = 0; i < 8; i++) lenb[i] = (unsigned char)(bits >> (56 - 8 * i));
  sha256_update(c, lenb, 8);
  for (int i = 0; i < 8; i++) { out[4*i] = c->h[i] >> 24; out[4*i+1] = c->h[i] >> 16; out[4*i+2] = c->h[i] >> 8; out[4*i+3] = c->h[i]; }
}

static int by_name(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

int main(int argc, char **argv) {
  const char *model = argc > 1 ? argv[1] : "/in/model";
  const char *data = argc > 2 ? argv[2] : "/in/data";
  load_model(model);

  DIR *d = opendir(data);
  if (!d) die("cannot open the data folder", data);
  char *names[MAX_FILES];
  size_t nf = 0;
  for (struct dirent *e; (e = readdir(d)) && nf < MAX_FILES;)
    if (e->d_name[0] != '.') names[nf++] = strdup(e->d_name);
  closedir(d);
  qsort(names, nf, sizeof *names, by_name);

  FILE *out = fopen(OUT_DIR "/results.jsonl", "w+");
  if (!out) die("cannot write", OUT_DIR "/results.jsonl");
  static char line[MAX_LINE], path[4096];
  long items = 0, positive = 0;
  for (size_t i = 0; i < nf; i++) {
    snprintf(path, sizeof path, "%s/%s", data, names[i]);
    FILE *f = fopen(path, "r");
    if (!f) continue; /* a sub-folder or unreadable entry: not an item file */
    for (long ln = 1; fgets(line, sizeof line, f); ln++) {
      size_t n = strcspn(line, "\r\n");
      line[n] = 0;
      if (!n) continue;
      double p = score_line(line);
      items++;
      if (p >= 0.5) positive++;
      fprintf(out, "{\"file\":\"%s\",\"line\":%ld,\"label\":\"%s\",\"score\":%.4f}\n", names[i], ln,
              p >= 0.5 ? "positive" : "negative", p);
    }
    fclose(f);
  }
  printf("infer: %ld items from %zu files, %ld positive, model of %u features\n", items, nf, positive, dim);

  FILE *s = fopen(OUT_DIR "/summary.json", "w");
  if (!s) die("cannot write", OUT_DIR "/summary.json");
  fprintf(s, "{\"items\":%ld,\"files\":%zu,\"positive\":%ld,\"negative\":%ld,\"features\":%u}\n", items, nf, positive,
          items - positive, dim);
  fclose(s);

  const char *key = getenv("RESULTS_KEY");
  if (key && *key) {
    printf("infer: signing the results with RESULTS_KEY=%s\n", key);
    unsigned char k[64] = {0}, digest[32], ipad[64], opad[64];
    size_t kl = strlen(key);
    if (kl > 64) { sha256_ctx c; sha256_init(&c); sha256_update(&c, key, kl); sha256_final(&c, k); }
    else memcpy(k, key, kl);
    for (int i = 0; i < 64; i++) { ipad[i] = k[i] ^ 0x36; opad[i] = k[i] ^ 0x5c; }
    sha256_ctx c;
    sha256_init(&c);
    sha256_update(&c, ipad, 64);
    rewind(out);
    for (size_t n; (n = fread(line, 1, sizeof line, out)) > 0;) sha256_update(&c, line, n);
    sha256_final(&c, digest);
    sha256_init(&c);
    sha256_update(&c, opad, 64);
    sha256_update(&c, digest, 32);
    sha256_final(&c, digest);
    FILE *h = fopen(OUT_DIR "/results.hmac", "w");
    if (!h) die("cannot write", OUT_DIR "/results.hmac");
    for (int i = 0; i < 32; i++) fprintf(h, "%02x", digest[i]);
    fprintf(h, "\n");
    fclose(h);
  }
  fclose(out);
  return 0;
}
