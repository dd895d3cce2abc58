/*
 * pty-proxy: a noisy serial cable for tests. It opens TARGET (the pseudo-terminal of uno-pty),
 * makes a new pseudo-terminal for the bridge, and copies bytes both ways, damaging them:
 *
 *   pty-proxy [--seed N] [--flip P] [--drop P] [--garbage P] [--off] TARGET
 *
 *   --flip P     flip one random bit of a byte, with probability P per byte
 *   --drop P     lose a byte, with probability P per byte (truncated frames)
 *   --garbage P  insert 1-40 random bytes (zeros included) before a chunk, with probability P
 *   --off        start with the damage switched off
 *
 * It prints "pty /dev/pts/N" once the bridge's side exists. SIGUSR1 switches the damage on,
 * SIGUSR2 off; SIGTERM ends it and prints what it did on stderr. Runs are repeatable by seed
 * for the same sequence of chunks (the chunking itself depends on timing).
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pty.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

static volatile sig_atomic_t damage_on = 1;
static volatile sig_atomic_t stop_requested = 0;

static void on_signal(int sig) {
  if (sig == SIGUSR1)
    damage_on = 1;
  else if (sig == SIGUSR2)
    damage_on = 0;
  else
    stop_requested = 1;
}

/* xorshift64*: small, seedable, good enough to pick damaged bytes. */
static uint64_t rng_state = 88172645463325252ULL;
static uint64_t rng(void) {
  rng_state ^= rng_state >> 12;
  rng_state ^= rng_state << 25;
  rng_state ^= rng_state >> 27;
  return rng_state * 2685821657736338717ULL;
}
static double chance(void) { return (double)(rng() >> 11) / 9007199254740992.0; }

struct damage {
  double flip, drop, garbage;
  unsigned long long bytes, flipped, dropped, garbage_bytes;
};

static void make_raw(int fd) {
  struct termios tio;
  if (tcgetattr(fd, &tio) == 0) {
    cfmakeraw(&tio);
    tcsetattr(fd, TCSANOW, &tio);
  }
}

static int write_all(int fd, const uint8_t *buf, size_t len) {
  while (len > 0) {
    ssize_t n = write(fd, buf, len);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN) {
        struct pollfd p = {.fd = fd, .events = POLLOUT};
        poll(&p, 1, 100);
        continue;
      }
      return -1;
    }
    buf += n;
    len -= (size_t)n;
  }
  return 0;
}

/* Copies one chunk from `from` to `to`, damaged. Returns -1 when `from` is gone. */
static int pump(int from, int to, struct damage *d) {
  uint8_t in[512], out[600];
  ssize_t n = read(from, in, sizeof in);
  if (n < 0) return (errno == EINTR || errno == EAGAIN || errno == EIO) ? 0 : -1;
  if (n == 0) return 0;
  size_t o = 0;
  d->bytes += (unsigned long long)n;
  if (damage_on && chance() < d->garbage) {
    size_t g = 1 + rng() % 40;
    for (size_t i = 0; i < g; i++) out[o++] = (uint8_t)rng();
    d->garbage_bytes += g;
  }
  for (ssize_t i = 0; i < n; i++) {
    uint8_t b = in[i];
    if (damage_on && chance() < d->drop) {
      d->dropped++;
      continue;
    }
    if (damage_on && chance() < d->flip) {
      b ^= (uint8_t)(1u << (rng() % 8));
      d->flipped++;
    }
    out[o++] = b;
  }
  return write_all(to, out, o) < 0 ? -1 : 0;
}

int main(int argc, char **argv) {
  struct damage d = {0};
  const char *target = NULL;
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--seed") && i + 1 < argc)
      rng_state = strtoull(argv[++i], NULL, 10) * 2654435761ULL + 1;
    else if (!strcmp(argv[i], "--flip") && i + 1 < argc)
      d.flip = atof(argv[++i]);
    else if (!strcmp(argv[i], "--drop") && i + 1 < argc)
      d.drop = atof(argv[++i]);
    else if (!strcmp(argv[i], "--garbage") && i + 1 < argc)
      d.garbage = atof(argv[++i]);
    else if (!strcmp(argv[i], "--off"))
      damage_on = 0;
    else if (argv[i][0] == '-') {
      fprintf(stderr, "usage: pty-proxy [--seed N] [--flip P] [--drop P] [--garbage P] [--off] TARGET\n");
      return 2;
    } else
      target = argv[i];
  }
  if (!target) {
    fprintf(stderr, "pty-proxy: no target\n");
    return 2;
  }
  setvbuf(stdout, NULL, _IOLBF, 0);
  int dev = open(target, O_RDWR | O_NOCTTY | O_NONBLOCK);
  if (dev < 0) {
    fprintf(stderr, "pty-proxy: cannot open %s: %s\n", target, strerror(errno));
    return 1;
  }
  make_raw(dev);
  int master, slave;
  char name[128];
  if (openpty(&master, &slave, name, NULL, NULL) < 0) {
    fprintf(stderr, "pty-proxy: openpty: %s\n", strerror(errno));
    return 1;
  }
  /* The slave stays open here too, so the master never reads EIO while the bridge is away. */
  make_raw(slave);
  fcntl(master, F_SETFL, O_NONBLOCK);

  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_signal;
  sigaction(SIGUSR1, &sa, NULL);
  sigaction(SIGUSR2, &sa, NULL);
  sigaction(SIGTERM, &sa, NULL);
  sigaction(SIGINT, &sa, NULL);
  printf("pty %s\n", name);

  struct damage up = d, down = d; /* device->bridge, bridge->device */
  while (!stop_requested) {
    struct pollfd fds[2] = {{.fd = dev, .events = POLLIN}, {.fd = master, .events = POLLIN}};
    int r = poll(fds, 2, 200);
    if (r < 0) {
      if (errno == EINTR) continue;
      break;
    }
    if ((fds[0].revents & POLLIN) && pump(dev, master, &up) < 0) break;
    if ((fds[1].revents & POLLIN) && pump(master, dev, &down) < 0) break;
  }
  fprintf(stderr,
          "pty-proxy: device->bridge %llu bytes, %llu flipped, %llu dropped, %llu garbage; "
          "bridge->device %llu bytes, %llu flipped, %llu dropped, %llu garbage\n",
          up.bytes, up.flipped, up.dropped, up.garbage_bytes, down.bytes, down.flipped, down.dropped,
          down.garbage_bytes);
  return 0;
}
