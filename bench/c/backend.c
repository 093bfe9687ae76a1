/*
 * Bench backend: the "scheduler" behind every contender. Plain TCP on
 * 127.0.0.1, one epoll thread. On accept it writes a Dask handshake; then it
 * parses Dask framing and echoes every message of at most ECHO_MAX bytes
 * (except the peer's handshake) and discards larger ones. A bulk sender
 * therefore learns that all its data arrived when a ping sent after it comes
 * back. Usage: backend PORT (0 = any; the real port is printed as "PORT n").
 */
#define _GNU_SOURCE
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>
#include <arpa/inet.h>
#include "dask_frames.h"

#define MAX_FRAMES 1024
#define BUF_CAP (ECHO_MAX + 16 + 8 * 16)

enum { S_HDR, S_LENS, S_BODY };

typedef struct {
  int fd;
  int state;
  int handshaken;      /* the peer's first message (its handshake) is not echoed */
  int echo;            /* the current message is buffered for echo */
  unsigned char hdr[16];
  unsigned hdr_got;
  uint64_t lens_left;  /* frame-length bytes still to read */
  unsigned char len_part[8];
  unsigned len_got;
  uint64_t body_left;
  uint64_t total;      /* message size known so far */
  unsigned char *buf;  /* echo buffer, allocated on first small message */
  size_t buf_len;
  size_t out_off;      /* bytes of buf already written while flushing */
  int flushing;
} conn_t;

static int ep;

static void conn_close(conn_t *c) {
  close(c->fd);
  free(c->buf);
  free(c);
}

static void append(conn_t *c, const unsigned char *p, size_t n) {
  if (!c->echo) return;
  if (c->buf_len + n > BUF_CAP) { c->echo = 0; return; }
  if (!c->buf) c->buf = malloc(BUF_CAP);
  memcpy(c->buf + c->buf_len, p, n);
  c->buf_len += n;
}

static void reset_msg(conn_t *c) {
  c->state = S_HDR;
  c->hdr_got = 0;
  c->len_got = 0;
  c->buf_len = 0;
  c->echo = c->handshaken;
}

/* Returns 0 when the echo went out, 1 when it is pending (EPOLLOUT armed), -1 on error. */
static int flush(conn_t *c) {
  while (c->out_off < c->buf_len) {
    ssize_t w = write(c->fd, c->buf + c->out_off, c->buf_len - c->out_off);
    if (w < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN) {
        struct epoll_event ev = {.events = EPOLLOUT, .data.ptr = c};
        epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
        c->flushing = 1;
        return 1;
      }
      return -1;
    }
    c->out_off += (size_t)w;
  }
  if (c->flushing) {
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
    epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
    c->flushing = 0;
  }
  c->out_off = 0;
  reset_msg(c);
  return 0;
}

static int complete(conn_t *c) {
  int was_echo = c->echo && c->handshaken && c->total <= ECHO_MAX;
  c->handshaken = 1;
  if (!was_echo) { reset_msg(c); return 0; }
  c->out_off = 0;
  return flush(c);
}

/* Consumes bytes; returns bytes used (stops early when an echo is pending), or -1 on a framing error. */
static ssize_t feed(conn_t *c, const unsigned char *p, size_t n) {
  size_t off = 0;
  while (off < n) {
    if (c->state == S_HDR) {
      size_t k = 16 - c->hdr_got < n - off ? 16 - c->hdr_got : n - off;
      memcpy(c->hdr + c->hdr_got, p + off, k);
      append(c, p + off, k);
      c->hdr_got += k;
      off += k;
      if (c->hdr_got == 16) {
        uint64_t frames = get_le64(c->hdr + 8);
        if (frames == 0 || frames > MAX_FRAMES) return -1;
        c->lens_left = frames * 8;
        c->total = 16 + frames * 8;
        c->state = S_LENS;
      }
    } else if (c->state == S_LENS) {
      size_t k = c->lens_left < n - off ? c->lens_left : n - off;
      append(c, p + off, k);
      for (size_t i = 0; i < k; i++) {
        c->len_part[c->len_got++] = p[off + i];
        if (c->len_got == 8) { c->total += get_le64(c->len_part); c->len_got = 0; }
      }
      c->lens_left -= k;
      off += k;
      if (c->lens_left == 0) {
        c->body_left = c->total - (16 + (get_le64(c->hdr + 8) * 8));
        if (c->total > ECHO_MAX) c->echo = 0;
        c->state = S_BODY;
        if (c->body_left == 0) {
          int r = complete(c);
          if (r != 0) return r < 0 ? -1 : (ssize_t)off;
        }
      }
    } else {
      size_t k = c->body_left < n - off ? (size_t)c->body_left : n - off;
      append(c, p + off, k);
      c->body_left -= k;
      off += k;
      if (c->body_left == 0) {
        int r = complete(c);
        if (r != 0) return r < 0 ? -1 : (ssize_t)off;
      }
    }
  }
  return (ssize_t)off;
}

static unsigned char rbuf[256 * 1024];

static void on_readable(conn_t *c) {
  for (int rounds = 0; rounds < 64 && !c->flushing; rounds++) {
    ssize_t r = read(c->fd, rbuf, sizeof rbuf);
    if (r == 0) { conn_close(c); return; }
    if (r < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN) return;
      conn_close(c);
      return;
    }
    ssize_t used = feed(c, rbuf, (size_t)r);
    if (used < 0) { conn_close(c); return; }
    /* A pending echo leaves bytes unread: the peer sends one message at a time, so none are lost. */
    if (used < r) { fprintf(stderr, "backend: pipelined bytes while an echo is pending; closing\n"); conn_close(c); return; }
  }
}

int main(int argc, char **argv) {
  signal(SIGPIPE, SIG_IGN);
  int port = argc > 1 ? atoi(argv[1]) : 0;
  int ls = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
  int one = 1;
  setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (bind(ls, (struct sockaddr *)&a, sizeof a) < 0 || listen(ls, 4096) < 0) { perror("backend: bind/listen"); return 1; }
  socklen_t al = sizeof a;
  getsockname(ls, (struct sockaddr *)&a, &al);
  printf("PORT %d\n", ntohs(a.sin_port));
  fflush(stdout);

  unsigned char hs[128];
  size_t hs_len = build_handshake(hs);
  ep = epoll_create1(0);
  struct epoll_event lev = {.events = EPOLLIN, .data.ptr = NULL};
  epoll_ctl(ep, EPOLL_CTL_ADD, ls, &lev);
  struct epoll_event evs[256];
  for (;;) {
    int n = epoll_wait(ep, evs, 256, -1);
    if (n < 0 && errno == EINTR) continue;
    for (int i = 0; i < n; i++) {
      conn_t *c = evs[i].data.ptr;
      if (c == NULL) {
        for (int k = 0; k < 256; k++) {
          int fd = accept4(ls, NULL, NULL, SOCK_NONBLOCK);
          if (fd < 0) break;
          setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
          if (write(fd, hs, hs_len) != (ssize_t)hs_len) { close(fd); continue; }
          conn_t *nc = calloc(1, sizeof *nc);
          nc->fd = fd;
          reset_msg(nc);
          struct epoll_event ev = {.events = EPOLLIN, .data.ptr = nc};
          epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
        }
      } else if (c->flushing) {
        if (flush(c) < 0) conn_close(c);
        else if (!c->flushing) on_readable(c);
      } else {
        on_readable(c);
      }
    }
  }
}
