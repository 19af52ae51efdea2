// wake-probe: how late a thread that sleeps and wakes, as an event loop does, gets its core back.
// Not part of the gateway: a C probe of the machine under the benchmark (bench/README.md, "The
// latency tail"), free of Node, GC and JIT.
//
//   gcc -O2 -o /tmp/wake-probe bench/wake-probe.c
//   taskset -c 1 /tmp/wake-probe loop BUSY_US IDLE_US SECONDS    spin BUSY_US, sleep IDLE_US, repeat
//   taskset -c 1 /tmp/wake-probe burst BURST_US SLEEP_MS SECONDS  spin BURST_US, sleep SLEEP_MS, repeat (a helper thread)
//
// `loop` prints how many wake-ups were over 1 and 2 ms late, the longest, and gaps of more than
// 0.5 ms while spinning (the CPU taken away from a running thread). Run a `burst` on the same
// CPU (under nice, chrt --idle, …) beside a `loop` (under chrt --fifo 1, …) to see what a
// helper thread's slice costs a waking event loop.

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static uint64_t now_ns(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (uint64_t)t.tv_sec * 1000000000ull + (uint64_t)t.tv_nsec;
}

static void spin_ns(uint64_t ns, uint64_t *gaps, uint64_t *gap_ns) {
  uint64_t start = now_ns(), last = start;
  for (;;) {
    uint64_t t = now_ns();
    if (gaps != NULL && t - last > 500000) {
      (*gaps)++;
      *gap_ns += t - last;
    }
    last = t;
    if (t - start >= ns) return;
  }
}

int main(int argc, char **argv) {
  if (argc != 5 || (strcmp(argv[1], "loop") != 0 && strcmp(argv[1], "burst") != 0)) {
    fprintf(stderr, "usage: wake-probe loop BUSY_US IDLE_US SECONDS | wake-probe burst BURST_US SLEEP_MS SECONDS\n");
    return 2;
  }
  long a = atol(argv[2]), b = atol(argv[3]);
  uint64_t end = now_ns() + (uint64_t)(atof(argv[4]) * 1e9);
  if (strcmp(argv[1], "burst") == 0) {
    while (now_ns() < end) {
      spin_ns((uint64_t)a * 1000, NULL, NULL);
      usleep((useconds_t)(b * 1000));
    }
    return 0;
  }
  uint64_t wakes = 0, late1 = 0, late2 = 0, worst = 0, gaps = 0, gap_ns = 0;
  while (now_ns() < end) {
    spin_ns((uint64_t)a * 1000, &gaps, &gap_ns);
    if (b <= 0) continue;
    struct timespec r = { b / 1000000, (b % 1000000) * 1000 };
    uint64_t t0 = now_ns();
    nanosleep(&r, NULL);
    // Signed: a sleep cut short (a signal) is early, not 2^64 ns late.
    int64_t late = (int64_t)(now_ns() - t0) - (int64_t)b * 1000;
    wakes++;
    if (late > 1000000) late1++;
    if (late > 2000000) late2++;
    if (late > 0 && (uint64_t)late > worst) worst = (uint64_t)late;
  }
  printf("busy %ld us, idle %ld us: %llu wake-ups, %llu over 1 ms late, %llu over 2 ms, longest %.2f ms; "
         "%llu gaps over 0.5 ms while busy (%.1f ms)\n",
         a, b, (unsigned long long)wakes, (unsigned long long)late1, (unsigned long long)late2, worst / 1e6,
         (unsigned long long)gaps, gap_ns / 1e6);
  return 0;
}
