/*
 * kiln/render: renders a deterministic Mandelbrot image to /out/render.png.
 *
 * Usage: render [WIDTH HEIGHT]   (also $RENDER_WIDTH / $RENDER_HEIGHT; default 640x480)
 *
 * The PNG is written with stored (uncompressed) deflate blocks, so no zlib is needed and
 * the bytes depend only on the pixels: two honest providers give the same digest, and an
 * image-similarity comparator can still decode it with any PNG reader. Colours come from
 * the integer escape count only (no log/sqrt), so libm differences cannot change a pixel.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#define OUT_PATH "/out/render.png"
#define MAX_DIM 8192
#define MAX_ITER 500

static uint32_t crc_table[256];

static void crc_init(void) {
  for (uint32_t n = 0; n < 256; n++) {
    uint32_t c = n;
    for (int k = 0; k < 8; k++) c = (c & 1) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
    crc_table[n] = c;
  }
}

static uint32_t crc_update(uint32_t crc, const unsigned char *p, size_t len) {
  for (size_t i = 0; i < len; i++) crc = crc_table[(crc ^ p[i]) & 0xff] ^ (crc >> 8);
  return crc;
}

static void put_u32(unsigned char *p, uint32_t v) {
  p[0] = (unsigned char)(v >> 24); p[1] = (unsigned char)(v >> 16);
  p[2] = (unsigned char)(v >> 8); p[3] = (unsigned char)v;
}

static int write_chunk(FILE *f, const char *type, const unsigned char *data, uint32_t len) {
  unsigned char head[8];
  put_u32(head, len);
  for (int i = 0; i < 4; i++) head[4 + i] = (unsigned char)type[i];
  uint32_t crc = crc_update(0xFFFFFFFFu, head + 4, 4);
  crc = crc_update(crc, data, len) ^ 0xFFFFFFFFu;
  unsigned char tail[4];
  put_u32(tail, crc);
  return fwrite(head, 1, 8, f) == 8 && (len == 0 || fwrite(data, 1, len, f) == len) &&
         fwrite(tail, 1, 4, f) == 4 ? 0 : -1;
}

/* zlib stream of stored deflate blocks (max 65535 bytes each) + adler32. */
static unsigned char *zlib_stored(const unsigned char *raw, size_t len, size_t *out_len) {
  size_t blocks = len / 65535 + 1;
  unsigned char *z = malloc(2 + blocks * 5 + len + 4);
  if (!z) return NULL;
  size_t o = 0;
  z[o++] = 0x78; z[o++] = 0x01; /* deflate, 32K window, no dictionary; 0x7801 % 31 == 0 */
  size_t pos = 0;
  do {
    size_t n = len - pos > 65535 ? 65535 : len - pos;
    int final = pos + n == len;
    z[o++] = (unsigned char)final;
    z[o++] = (unsigned char)(n & 0xff); z[o++] = (unsigned char)(n >> 8);
    z[o++] = (unsigned char)(~n & 0xff); z[o++] = (unsigned char)((~n >> 8) & 0xff);
    for (size_t i = 0; i < n; i++) z[o++] = raw[pos + i];
    pos += n;
  } while (pos < len);
  uint32_t s1 = 1, s2 = 0;
  for (size_t i = 0; i < len; i++) { s1 = (s1 + raw[i]) % 65521; s2 = (s2 + s1) % 65521; }
  put_u32(z + o, (s2 << 16) | s1);
  *out_len = o + 4;
  return z;
}

/* A smooth-looking palette from the escape count alone, all integer arithmetic. */
static void colour(int iter, unsigned char *px) {
  if (iter >= MAX_ITER) { px[0] = px[1] = px[2] = 0; return; }
  int t = (iter * 255) / 64 % 510;             /* bounces 0..255..0 every 128 iterations */
  int v = t > 255 ? 510 - t : t;
  px[0] = (unsigned char)(v);
  px[1] = (unsigned char)((v * 3 / 4 + iter * 2) % 256);
  px[2] = (unsigned char)(255 - v / 2);
}

int main(int argc, char **argv) {
  setvbuf(stdout, NULL, _IOLBF, 0); /* progress lines must reach the log as they happen */
  int w = 640, h = 480;
  const char *ew = getenv("RENDER_WIDTH"), *eh = getenv("RENDER_HEIGHT");
  if (ew && *ew) w = atoi(ew);
  if (eh && *eh) h = atoi(eh);
  if (argc >= 3) { w = atoi(argv[1]); h = atoi(argv[2]); }
  if (w < 1 || h < 1 || w > MAX_DIM || h > MAX_DIM) {
    fprintf(stderr, "render: width and height must be between 1 and %d, got %dx%d\n", MAX_DIM, w, h);
    return 2;
  }
  size_t stride = (size_t)w * 3 + 1; /* one filter byte (0 = none) per row */
  unsigned char *raw = calloc((size_t)h, stride);
  if (!raw) { fprintf(stderr, "render: cannot allocate %dx%d image\n", w, h); return 3; }
  printf("render: mandelbrot %dx%d max_iter=%d\n", w, h, MAX_ITER);

  const double cx = -0.7436438870371587, cy = 0.1318259042053120, span = 0.02;
  int step = h >= 10 ? h / 10 : 1;
  for (int y = 0; y < h; y++) {
    unsigned char *row = raw + (size_t)y * stride;
    row[0] = 0;
    double ci = cy + span * ((double)y / h - 0.5) * h / w;
    for (int x = 0; x < w; x++) {
      double cr = cx + span * ((double)x / w - 0.5);
      double zr = 0, zi = 0;
      int it = 0;
      while (it < MAX_ITER && zr * zr + zi * zi <= 4.0) {
        double t = zr * zr - zi * zi + cr;
        zi = 2 * zr * zi + ci;
        zr = t;
        it++;
      }
      colour(it, row + 1 + (size_t)x * 3);
    }
    if ((y + 1) % step == 0 || y + 1 == h) printf("progress: %d/%d rows (%d%%)\n", y + 1, h, (y + 1) * 100 / h);
  }

  crc_init();
  size_t zlen;
  unsigned char *z = zlib_stored(raw, (size_t)h * stride, &zlen);
  if (!z || zlen > 0x7FFFFFFFu) { fprintf(stderr, "render: image too large\n"); return 3; }
  FILE *f = fopen(OUT_PATH, "wb");
  if (!f) { perror("render: writing " OUT_PATH); return 4; }
  static const unsigned char sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
  unsigned char ihdr[13];
  put_u32(ihdr, (uint32_t)w);
  put_u32(ihdr + 4, (uint32_t)h);
  ihdr[8] = 8; ihdr[9] = 2; ihdr[10] = 0; ihdr[11] = 0; ihdr[12] = 0; /* 8-bit RGB */
  int ok = fwrite(sig, 1, 8, f) == 8 && write_chunk(f, "IHDR", ihdr, 13) == 0 &&
           write_chunk(f, "IDAT", z, (uint32_t)zlen) == 0 && write_chunk(f, "IEND", NULL, 0) == 0;
  if (fclose(f) != 0 || !ok) { perror("render: writing " OUT_PATH); return 4; }
  printf("wrote %s (%zu bytes)\n", OUT_PATH, 8 + 25 + 12 + zlen + 12);
  free(z);
  free(raw);
  return 0;
}
