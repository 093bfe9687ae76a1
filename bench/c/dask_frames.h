/*
 * Dask-framed messages shared by the bench backend and load generator.
 * Every byte the bench sends is valid Dask framing (u64 LE length, frame
 * count, frame lengths, frames; frame 0 is msgpack), so the gateway with wire
 * inspection on sees the same traffic as every other contender.
 */
#ifndef BENCH_DASK_FRAMES_H
#define BENCH_DASK_FRAMES_H

#include <stdint.h>
#include <string.h>
#include <stddef.h>

/* Messages at or below this size are echoed by the backend; larger ones are discarded. */
#define ECHO_MAX 65536
#define PING_SIZE 64

static inline void put_le64(unsigned char *p, uint64_t v) {
  for (int i = 0; i < 8; i++) p[i] = (unsigned char)(v >> (8 * i));
}

static inline uint64_t get_le64(const unsigned char *p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; i--) v = (v << 8) | p[i];
  return v;
}

static inline size_t mp_str(unsigned char *p, const char *s) {
  size_t n = strlen(s); /* fixstr: every key below is < 32 bytes */
  p[0] = (unsigned char)(0xa0 | n);
  memcpy(p + 1, s, n);
  return n + 1;
}

/* One-frame message around a msgpack frame 0; returns the total size. */
static inline size_t frame_one(unsigned char *out, const unsigned char *f0, size_t f0len) {
  put_le64(out, 16 + f0len);
  put_le64(out + 8, 1);
  put_le64(out + 16, f0len);
  memcpy(out + 24, f0, f0len);
  return 24 + f0len;
}

/* {"compression": nil, "python": [3, 11, 2], "pickle-protocol": 5}: what both sides send first. */
static inline size_t build_handshake(unsigned char *out) {
  unsigned char f0[64];
  size_t n = 0;
  f0[n++] = 0x83;
  n += mp_str(f0 + n, "compression");
  f0[n++] = 0xc0;
  n += mp_str(f0 + n, "python");
  f0[n++] = 0x93; f0[n++] = 3; f0[n++] = 11; f0[n++] = 2;
  n += mp_str(f0 + n, "pickle-protocol");
  f0[n++] = 5;
  return frame_one(out, f0, n);
}

/* {"op": "identity", "reply": true, "pad": bin(k)} sized so the whole message is PING_SIZE bytes. */
static inline size_t build_ping(unsigned char *out) {
  unsigned char f0[PING_SIZE];
  size_t n = 0;
  f0[n++] = 0x83;
  n += mp_str(f0 + n, "op");
  n += mp_str(f0 + n, "identity");
  n += mp_str(f0 + n, "reply");
  f0[n++] = 0xc3;
  n += mp_str(f0 + n, "pad");
  size_t pad = PING_SIZE - 24 - n - 2;
  f0[n++] = 0xc4;
  f0[n++] = (unsigned char)pad;
  memset(f0 + n, 'p', pad);
  n += pad;
  return frame_one(out, f0, n);
}

/*
 * Header of a bulk message: frame 0 = {"op": "scatter", "reply": false}, frame 1 =
 * an opaque payload the caller fills. Returns the header size; total = header + payload.
 */
static inline size_t build_bulk_header(unsigned char *out, uint64_t payload) {
  unsigned char f0[32];
  size_t n = 0;
  f0[n++] = 0x82;
  n += mp_str(f0 + n, "op");
  n += mp_str(f0 + n, "scatter");
  n += mp_str(f0 + n, "reply");
  f0[n++] = 0xc2;
  put_le64(out, 8 + 16 + n + payload);
  put_le64(out + 8, 2);
  put_le64(out + 16, n);
  put_le64(out + 24, payload);
  memcpy(out + 32, f0, n);
  return 32 + n;
}

#endif
