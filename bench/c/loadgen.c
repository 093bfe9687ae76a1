/*
 * Bench load generator (OpenSSL client or plain TCP). One process, one
 * thread, so its own cost stays small and measurable (it reports its CPU
 * seconds). Every mode is bounded in count and in time; results are one
 * JSON line on stdout.
 *
 *   loadgen bulk      --bytes N [--msg N]            one connection, one-way, MB/s
 *   loadgen pingpong  --count N [--warmup N]          64 B round trips on one connection
 *   loadgen multi     --conns N --seconds S           N connections, one 64 B message in flight each
 *   loadgen handshake --count N --seconds S --parallel K   full handshakes (connect, TLS, first byte, close)
 *   loadgen hold      --steps a,b --parallel K       open and hold idle connections; prints
 *                     "HELD n" at each step and waits for a line on stdin before going on
 * Common: --port P [--tls --ca F --cert F --key F [--no-verify]] [--deadline S]
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include "dask_frames.h"

static SSL_CTX *ctx; /* NULL: plain TCP */
static struct sockaddr_in target;
static unsigned char HS[128], PING[PING_SIZE];
static size_t HS_LEN;
static double deadline_s = 120;
static double now_s(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static double cpu_s(void) {
  struct rusage u;
  getrusage(RUSAGE_SELF, &u);
  return (double)(u.ru_utime.tv_sec + u.ru_stime.tv_sec) + (double)(u.ru_utime.tv_usec + u.ru_stime.tv_usec) / 1e6;
}

/* What the contender negotiated, reported with every result so a run can prove all contenders used one suite. */
static char suite[64] = "none";
static long tls_conns, tickets; /* handshakes completed; NewSessionTicket messages the contender sent */

static int on_ticket(SSL *s, SSL_SESSION *sess) {
  (void)s;
  (void)sess;
  tickets++;
  return 0; /* not kept: every handshake stays a full one */
}

static void note_handshake(SSL *s) {
  snprintf(suite, sizeof suite, "%s", SSL_get_cipher_name(s));
  tls_conns++;
}

/* Closes a result object with the TLS facts every mode shares. */
static void end_json(void) {
  printf(",\"cipher\":\"%s\",\"tls_conns\":%ld,\"tickets\":%ld,\"client_cpu_total_s\":%.4f}\n", suite, tls_conns, tickets, cpu_s());
}

static void die(const char *what) {
  fprintf(stderr, "loadgen: %s: %s\n", what, errno ? strerror(errno) : "");
  ERR_print_errors_fp(stderr);
  printf("{\"error\":\"%s\"}\n", what);
  exit(1);
}

static int new_socket(int nonblock) {
  int fd = socket(AF_INET, SOCK_STREAM | (nonblock ? SOCK_NONBLOCK : 0), 0);
  int one = 1;
  if (fd >= 0) setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  return fd;
}

/* ---------- blocking connections (bulk, pingpong, multi setup) ---------- */

typedef struct { int fd; SSL *ssl; int got; } conn_t;

static int io_read(conn_t *c, void *p, size_t n) {
  return c->ssl ? SSL_read(c->ssl, p, (int)n) : (int)read(c->fd, p, n);
}

static int io_write(conn_t *c, const void *p, size_t n) {
  return c->ssl ? SSL_write(c->ssl, p, (int)n) : (int)write(c->fd, p, n);
}

static void read_exact(conn_t *c, void *p, size_t n) {
  size_t got = 0;
  while (got < n) {
    int r = io_read(c, (unsigned char *)p + got, n - got);
    if (r <= 0) die("read");
    got += (size_t)r;
  }
}

static void write_all(conn_t *c, const void *p, size_t n) {
  size_t off = 0;
  while (off < n) {
    int w = io_write(c, (const unsigned char *)p + off, n - off);
    if (w <= 0) die("write");
    off += (size_t)w;
  }
}

static void open_blocking(conn_t *c) {
  c->fd = new_socket(0);
  c->ssl = NULL;
  c->got = 0;
  if (connect(c->fd, (struct sockaddr *)&target, sizeof target) < 0) die("connect");
  if (ctx) {
    c->ssl = SSL_new(ctx);
    SSL_set_fd(c->ssl, c->fd);
    if (SSL_connect(c->ssl) != 1) die("SSL_connect");
    note_handshake(c->ssl);
  }
  unsigned char hs[128];
  read_exact(c, hs, HS_LEN); /* the backend's handshake proves the whole path is up */
  write_all(c, HS, HS_LEN);
}

static void ping_once(conn_t *c) {
  unsigned char r[PING_SIZE];
  write_all(c, PING, PING_SIZE);
  read_exact(c, r, PING_SIZE);
}

/* ---------- bulk ---------- */

static void mode_bulk(uint64_t bytes, size_t msg) {
  conn_t c;
  open_blocking(&c);
  unsigned char *buf = malloc(msg);
  size_t hdr = build_bulk_header(buf, 0);
  build_bulk_header(buf, msg - hdr);
  for (size_t i = hdr; i < msg; i++) buf[i] = (unsigned char)(i * 131);
  uint64_t warm_limit = bytes / 16 < 32u << 20 ? bytes / 16 : 32u << 20, warm = 0;
  for (; warm < warm_limit; warm += msg) write_all(&c, buf, msg);
  ping_once(&c);

  double t0 = now_s(), c0 = cpu_s(), stop = t0 + deadline_s;
  uint64_t sent = 0;
  while (sent < bytes && now_s() < stop) {
    write_all(&c, buf, msg);
    sent += msg;
  }
  ping_once(&c); /* returns only after the backend consumed everything before it */
  double dt = now_s() - t0;
  printf("{\"mode\":\"bulk\",\"warm_bytes\":%llu,\"bytes\":%llu,\"seconds\":%.6f,\"mb_per_s\":%.2f,\"complete\":%s,\"client_cpu_s\":%.4f",
         (unsigned long long)warm, (unsigned long long)sent, dt, (double)sent / 1e6 / dt, sent >= bytes ? "true" : "false", cpu_s() - c0);
  end_json();
}

/* ---------- ping-pong ---------- */

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

static double pct(double *v, long n, double p) {
  long i = (long)(p * (double)(n - 1) + 0.5);
  return v[i];
}

static void mode_pingpong(long count, long warmup) {
  conn_t c;
  open_blocking(&c);
  for (long i = 0; i < warmup; i++) ping_once(&c);
  double *lat = malloc(sizeof(double) * (size_t)count);
  double t0 = now_s(), c0 = cpu_s(), stop = t0 + deadline_s;
  long n = 0;
  while (n < count && now_s() < stop) {
    double t = now_s();
    ping_once(&c);
    lat[n++] = (now_s() - t) * 1e6;
  }
  double dt = now_s() - t0, sum = 0;
  for (long i = 0; i < n; i++) sum += lat[i];
  qsort(lat, (size_t)n, sizeof(double), cmp_double);
  printf("{\"mode\":\"pingpong\",\"count\":%ld,\"seconds\":%.6f,\"p50_us\":%.2f,\"p99_us\":%.2f,\"p999_us\":%.2f,"
         "\"mean_us\":%.2f,\"min_us\":%.2f,\"complete\":%s,\"client_cpu_s\":%.4f",
         n, dt, pct(lat, n, 0.5), pct(lat, n, 0.99), pct(lat, n, 0.999), sum / (double)n, lat[0],
         n >= count ? "true" : "false", cpu_s() - c0);
  end_json();
}

/* ---------- multi: N connections, one message in flight each ---------- */

/* Reads whatever is there; returns completed round trips, or -1 on error. */
static int multi_drain(conn_t *c) {
  int done = 0;
  unsigned char r[PING_SIZE];
  for (;;) {
    int n = io_read(c, r, PING_SIZE - c->got);
    if (n > 0) {
      c->got += n;
      if (c->got == PING_SIZE) {
        c->got = 0;
        done++;
        return done; /* one in flight: the caller sends the next */
      }
      continue;
    }
    if (c->ssl) {
      int e = SSL_get_error(c->ssl, n);
      if (e == SSL_ERROR_WANT_READ) return done;
    } else if (n < 0 && errno == EAGAIN) {
      return done;
    }
    return -1;
  }
}

static void send_nb(conn_t *c) {
  /* 64 bytes on an idle loopback socket: a short wait covers the rare EAGAIN. */
  for (int tries = 0; tries < 100000; tries++) {
    int w = io_write(c, PING, PING_SIZE);
    if (w == PING_SIZE) return;
    if (w > 0) die("partial nonblocking write");
    if (c->ssl) {
      int e = SSL_get_error(c->ssl, w);
      if (e != SSL_ERROR_WANT_WRITE && e != SSL_ERROR_WANT_READ) die("SSL_write");
    } else if (errno != EAGAIN) {
      die("write");
    }
    usleep(10);
  }
  die("write stalled");
}

static void mode_multi(int nconns, double seconds, long maxcount) {
  conn_t *cs = calloc((size_t)nconns, sizeof *cs);
  int ep = epoll_create1(0);
  for (int i = 0; i < nconns; i++) {
    open_blocking(&cs[i]);
    if (cs[i].ssl) SSL_set_mode(cs[i].ssl, SSL_MODE_ENABLE_PARTIAL_WRITE);
    fcntl(cs[i].fd, F_SETFL, fcntl(cs[i].fd, F_GETFL) | O_NONBLOCK);
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &cs[i]};
    epoll_ctl(ep, EPOLL_CTL_ADD, cs[i].fd, &ev);
  }
  for (int i = 0; i < nconns; i++) send_nb(&cs[i]);
  double warm_end = now_s() + (seconds > 2 ? 1.0 : 0.3);
  double t0 = 0, c0 = 0, stop = 0;
  long count = 0, total = 0;
  int measuring = 0;
  struct epoll_event evs[64];
  for (;;) {
    double t = now_s();
    if (!measuring && t >= warm_end) { measuring = 1; t0 = t; c0 = cpu_s(); stop = t0 + seconds; count = 0; }
    if (measuring && (t >= stop || count >= maxcount)) break;
    int n = epoll_wait(ep, evs, 64, 100);
    for (int i = 0; i < n; i++) {
      conn_t *c = evs[i].data.ptr;
      int d = multi_drain(c);
      if (d < 0) die("multi read");
      if (d > 0) { count += d; total += d; send_nb(c); }
    }
  }
  double dt = now_s() - t0;
  printf("{\"mode\":\"multi\",\"conns\":%d,\"total\":%ld,\"count\":%ld,\"seconds\":%.6f,\"rt_per_s\":%.1f,\"client_cpu_s\":%.4f",
         nconns, total, count, dt, (double)count / dt, cpu_s() - c0);
  end_json();
}

/* ---------- asynchronous connection setup (handshake, hold) ---------- */

enum { A_CONNECT, A_TLS, A_READHS, A_HELD, A_FREE };

typedef struct {
  int fd;
  SSL *ssl;
  int state;
  size_t got;
  double t0;
} aconn_t;

static int aep;
static long a_failed;

static void a_watch(aconn_t *a, uint32_t events, int op) {
  struct epoll_event ev = {.events = events, .data.ptr = a};
  epoll_ctl(aep, op, a->fd, &ev);
}

static void a_close(aconn_t *a, int polite) {
  if (a->ssl) {
    if (polite) SSL_shutdown(a->ssl);
    SSL_free(a->ssl);
  }
  close(a->fd); /* also drops it from the epoll set */
  a->ssl = NULL;
  a->state = A_FREE;
}

static int a_start(aconn_t *a) {
  a->fd = new_socket(1);
  if (a->fd < 0) return -1;
  a->ssl = NULL;
  a->got = 0;
  a->t0 = now_s();
  a->state = A_CONNECT;
  if (connect(a->fd, (struct sockaddr *)&target, sizeof target) < 0 && errno != EINPROGRESS) {
    close(a->fd);
    return -1;
  }
  a_watch(a, EPOLLOUT, EPOLL_CTL_ADD);
  return 0;
}

/* Advances one connection; returns 1 when it has read the backend's handshake, 0 to wait, -1 on failure. */
static int a_step(aconn_t *a) {
  if (a->state == A_CONNECT) {
    int err = 0;
    socklen_t l = sizeof err;
    getsockopt(a->fd, SOL_SOCKET, SO_ERROR, &err, &l);
    if (err) return -1;
    if (ctx) {
      a->ssl = SSL_new(ctx);
      SSL_set_fd(a->ssl, a->fd);
      SSL_set_connect_state(a->ssl);
      a->state = A_TLS;
    } else {
      a->state = A_READHS;
    }
  }
  if (a->state == A_TLS) {
    int r = SSL_connect(a->ssl);
    if (r != 1) {
      int e = SSL_get_error(a->ssl, r);
      if (e == SSL_ERROR_WANT_READ) { a_watch(a, EPOLLIN, EPOLL_CTL_MOD); return 0; }
      if (e == SSL_ERROR_WANT_WRITE) { a_watch(a, EPOLLOUT, EPOLL_CTL_MOD); return 0; }
      return -1;
    }
    note_handshake(a->ssl);
    a->state = A_READHS;
  }
  if (a->state == A_READHS) {
    unsigned char buf[128];
    while (a->got < HS_LEN) {
      int r = a->ssl ? SSL_read(a->ssl, buf, (int)(HS_LEN - a->got)) : (int)read(a->fd, buf, HS_LEN - a->got);
      if (r > 0) { a->got += (size_t)r; continue; }
      if (a->ssl) {
        int e = SSL_get_error(a->ssl, r);
        if (e == SSL_ERROR_WANT_READ) { a_watch(a, EPOLLIN, EPOLL_CTL_MOD); return 0; }
        if (e == SSL_ERROR_WANT_WRITE) { a_watch(a, EPOLLOUT, EPOLL_CTL_MOD); return 0; }
      } else if (r < 0 && errno == EAGAIN) {
        a_watch(a, EPOLLIN, EPOLL_CTL_MOD);
        return 0;
      }
      return -1;
    }
    return 1;
  }
  return 0;
}

static void mode_handshake(long count, double seconds, int parallel) {
  aconn_t *as = calloc((size_t)parallel, sizeof *as);
  double *lat = malloc(sizeof(double) * (size_t)count);
  aep = epoll_create1(0);
  long started = 0, done = 0;
  double t0 = now_s(), c0 = cpu_s(), stop = t0 + seconds;
  for (int i = 0; i < parallel && started < count; i++)
    if (a_start(&as[i]) == 0) started++;
  struct epoll_event evs[256];
  while (done < count && now_s() < stop && a_failed < 1000) {
    int n = epoll_wait(aep, evs, 256, 100);
    for (int i = 0; i < n; i++) {
      aconn_t *a = evs[i].data.ptr;
      int r = a_step(a);
      if (r == 0) continue;
      if (r > 0) { lat[done++] = (now_s() - a->t0) * 1e6; a_close(a, 1); }
      else { a_failed++; a_close(a, 0); }
      if (started < count && now_s() < stop && a_start(a) == 0) started++;
    }
  }
  double dt = now_s() - t0;
  for (int i = 0; i < parallel; i++) if (as[i].state != A_FREE && as[i].fd > 0) a_close(&as[i], 0);
  qsort(lat, (size_t)done, sizeof(double), cmp_double);
  printf("{\"mode\":\"handshake\",\"count\":%ld,\"failed\":%ld,\"seconds\":%.6f,\"per_s\":%.1f,\"p50_us\":%.1f,"
         "\"parallel\":%d,\"client_cpu_s\":%.4f",
         done, a_failed, dt, (double)done / dt, done ? pct(lat, done, 0.5) : 0.0, parallel, cpu_s() - c0);
  end_json();
}

/*
 * A held connection became readable: a TLS 1.3 NewSessionTicket sent after the
 * first application bytes is normal and keeps it alive; EOF or an error loses it.
 */
static int held_alive(aconn_t *a) {
  unsigned char buf[256];
  for (;;) {
    int r = a->ssl ? SSL_read(a->ssl, buf, sizeof buf) : (int)read(a->fd, buf, sizeof buf);
    if (r > 0) continue; /* unexpected data: drop it, the connection is still up */
    if (a->ssl) {
      int e = SSL_get_error(a->ssl, r);
      return e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE;
    }
    return r < 0 && errno == EAGAIN;
  }
}

static void mode_hold(const char *steps, int parallel) {
  long targets[8];
  int nsteps = 0;
  for (const char *p = steps; *p && nsteps < 8;) {
    targets[nsteps++] = strtol(p, (char **)&p, 10);
    if (*p == ',') p++;
  }
  long max = targets[nsteps - 1];
  aconn_t *as = calloc((size_t)max, sizeof *as);
  aep = epoll_create1(0);
  long next = 0, held = 0, lost = 0;
  int inflight = 0;
  double t0 = now_s(), c0 = cpu_s();
  struct epoll_event evs[256];
  char line[64];
  for (int s = 0; s < nsteps; s++) {
    double stop = now_s() + deadline_s;
    while (held < targets[s] && now_s() < stop && a_failed < 200) {
      while (inflight < parallel && next < targets[s]) {
        if (a_start(&as[next]) == 0) { next++; inflight++; }
        else { a_failed++; break; }
      }
      int n = epoll_wait(aep, evs, 256, 100);
      for (int i = 0; i < n; i++) {
        aconn_t *a = evs[i].data.ptr;
        if (a->state == A_HELD) {
          if (held_alive(a)) continue;
          lost++;
          a_close(a, 0);
          continue;
        }
        int r = a_step(a);
        if (r == 0) continue;
        inflight--;
        if (r < 0) { a_failed++; a_close(a, 0); continue; }
        int w = a->ssl ? SSL_write(a->ssl, HS, (int)HS_LEN) : (int)write(a->fd, HS, HS_LEN);
        if (w != (int)HS_LEN) { a_failed++; a_close(a, 0); continue; }
        a->state = A_HELD;
        a_watch(a, EPOLLIN, EPOLL_CTL_MOD);
        held++;
      }
    }
    printf("HELD %ld %.3f %ld %ld\n", held - lost, now_s() - t0, a_failed, lost);
    fflush(stdout);
    if (!fgets(line, sizeof line, stdin)) break;
  }
  printf("{\"mode\":\"hold\",\"held\":%ld,\"failed\":%ld,\"lost\":%ld,\"seconds\":%.3f,\"client_cpu_s\":%.4f",
         held - lost, a_failed, lost, now_s() - t0, cpu_s() - c0);
  end_json();
}

/* ---------- main ---------- */

static const char *arg(int argc, char **argv, const char *name, const char *dflt) {
  for (int i = 2; i < argc; i++)
    if (!strcmp(argv[i], name)) return i + 1 < argc && argv[i + 1][0] != '-' ? argv[i + 1] : "1";
  return dflt;
}

int main(int argc, char **argv) {
  if (argc < 2) { fprintf(stderr, "usage: loadgen MODE --port P [...]\n"); return 2; }
  signal(SIGPIPE, SIG_IGN);
  setvbuf(stdout, NULL, _IOLBF, 0);
  const char *mode = argv[1];
  target.sin_family = AF_INET;
  target.sin_port = htons((uint16_t)atoi(arg(argc, argv, "--port", "0")));
  target.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  deadline_s = atof(arg(argc, argv, "--deadline", "120"));
  HS_LEN = build_handshake(HS);
  build_ping(PING);
  if (arg(argc, argv, "--tls", NULL)) {
    ctx = SSL_CTX_new(TLS_client_method());
    SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION);
    /* Every handshake is a full one: tickets are counted (a contender's cost) but never stored or offered back. */
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
    SSL_CTX_sess_set_new_cb(ctx, on_ticket);
    SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET);
    /* Offering one suite pins it for every contender, whatever order each server prefers. */
    const char *suites = arg(argc, argv, "--ciphersuites", NULL);
    if (suites && SSL_CTX_set_ciphersuites(ctx, suites) != 1) die("ciphersuites");
    if (SSL_CTX_use_certificate_chain_file(ctx, arg(argc, argv, "--cert", "")) != 1) die("client cert");
    if (SSL_CTX_use_PrivateKey_file(ctx, arg(argc, argv, "--key", ""), SSL_FILETYPE_PEM) != 1) die("client key");
    if (!arg(argc, argv, "--no-verify", NULL)) {
      if (SSL_CTX_load_verify_locations(ctx, arg(argc, argv, "--ca", ""), NULL) != 1) die("CA");
      SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    }
    if (!strcmp(mode, "hold")) SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
  }
  if (!strcmp(mode, "bulk"))
    mode_bulk(strtoull(arg(argc, argv, "--bytes", "1073741824"), NULL, 10), (size_t)atol(arg(argc, argv, "--msg", "1048576")));
  else if (!strcmp(mode, "pingpong"))
    mode_pingpong(atol(arg(argc, argv, "--count", "20000")), atol(arg(argc, argv, "--warmup", "1000")));
  else if (!strcmp(mode, "multi"))
    mode_multi(atoi(arg(argc, argv, "--conns", "16")), atof(arg(argc, argv, "--seconds", "5")), atol(arg(argc, argv, "--max", "100000000")));
  else if (!strcmp(mode, "handshake"))
    mode_handshake(atol(arg(argc, argv, "--count", "2000")), atof(arg(argc, argv, "--seconds", "10")), atoi(arg(argc, argv, "--parallel", "4")));
  else if (!strcmp(mode, "hold"))
    mode_hold(arg(argc, argv, "--steps", "2000,10000"), atoi(arg(argc, argv, "--parallel", "32")));
  else { fprintf(stderr, "loadgen: unknown mode %s\n", mode); return 2; }
  return 0;
}
