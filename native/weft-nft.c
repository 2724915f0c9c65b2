/*
 * weft-nft: the agent's nftables helper — one long-lived process per agent that applies nft
 * scripts with libnftables (the library the `nft` command is built on), in the agent's netns.
 *
 * Why a process that stays: every policy sync used to start `nft -f -`. Its start-up costs
 * ~3 ms, and its exit costs more: when a transaction deleted anything (set elements, chains),
 * closing its netlink socket makes the kernel wait for an RCU grace period before the process
 * can go (nf_tables flushes its pending destroy work on NETLINK_URELEASE) — 13-16 ms here. This
 * process keeps one libnftables context, so its socket stays open and that wait never happens
 * on the sync's path (docs/benchmarks.md §1). Each script is still one atomic transaction,
 * parsed and checked by libnftables exactly as `nft -f` does.
 *
 * Protocol, on stdin/stdout, one request at a time:
 *   request:  "apply BYTES\n" then BYTES bytes of nft script
 *   answer:   "ok\n" | "err MESSAGE\n", MESSAGE being nft's error output with "\" written
 *             as "\\" and each newline as "\n", so that an answer is always one line
 * Stdin closed (the agent gone): exit.
 */
#define _GNU_SOURCE
#include <malloc.h>
#include <nftables/libnftables.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <unistd.h>

/* The agent's whole table at its largest measured size (1,000 policies × 5,000 endpoints) is
   ~1.8 MB of script; 64 MiB leaves room and still bounds what a broken agent can make us hold. */
#define MAX_SCRIPT (64u << 20)
#define RENEW_AFTER (256u << 10)

static void answer_error(const char *text) {
  fputs("err ", stdout);
  for (const char *p = text; *p; p++) {
    if (*p == '\\') fputs("\\\\", stdout);
    else if (*p == '\n') fputs("\\n", stdout);
    else putchar(*p);
  }
  putchar('\n');
  fflush(stdout);
}

static struct nft_ctx *new_ctx(void) {
  struct nft_ctx *nft = nft_ctx_new(NFT_CTX_DEFAULT);
  if (!nft || nft_ctx_buffer_error(nft) != 0 || nft_ctx_buffer_output(nft) != 0) {
    fprintf(stderr, "weft-nft: cannot make a libnftables context\n");
    return NULL;
  }
  return nft;
}

static int write_all(int fd, const char *p, size_t n) {
  while (n > 0) {
    ssize_t w = write(fd, p, n);
    if (w < 0) return -1;
    p += w;
    n -= (size_t)w;
  }
  return 0;
}

int main(void) {
  /* Dies with the agent; stdin's end (the agent gone before prctl) ends it too. */
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  struct nft_ctx *nft = new_ctx();
  if (!nft) return 1;
  char head[64];
  while (fgets(head, sizeof head, stdin)) {
    char *end;
    if (strncmp(head, "apply ", 6) != 0) {
      fprintf(stderr, "weft-nft: bad request header\n");
      return 2;
    }
    unsigned long n = strtoul(head + 6, &end, 10);
    if (end == head + 6 || *end != '\n' || n > MAX_SCRIPT) {
      fprintf(stderr, "weft-nft: bad request size\n");
      return 2;
    }
    char *script = malloc(n + 1);
    if (!script || fread(script, 1, n, stdin) != n) {
      fprintf(stderr, "weft-nft: %s\n", script ? "request cut short" : "out of memory");
      return 2;
    }
    script[n] = 0;
    /* A NUL inside would end the script early without an error: refuse it instead. The script
       is run as a file (a memfd), not a buffer: libnftables then quotes the line an error is on,
       as `nft -f` does (from a buffer, 1.0.6 quotes the first line whatever the error's line). */
    int fd = -1;
    char path[64];
    if (strlen(script) != n) answer_error("the script holds a NUL byte");
    else if ((fd = memfd_create("nft-script", MFD_CLOEXEC)) < 0 || write_all(fd, script, n) < 0) answer_error("cannot hold the script in memory (memfd)");
    else if (snprintf(path, sizeof path, "/proc/self/fd/%d", fd), nft_run_cmd_from_filename(nft, path) == 0) {
      fputs("ok\n", stdout);
      fflush(stdout);
    } else {
      const char *e = nft_ctx_get_error_buffer(nft);
      answer_error(e && *e ? e : "nft failed without a message");
    }
    if (fd >= 0) close(fd);
    free(script);
    /* Read again next time; they are only for this request. */
    nft_ctx_get_error_buffer(nft);
    nft_ctx_get_output_buffer(nft);
    /* After a large script (a whole table), start a new context: a context that has cached a
       whole table applied the next whole table ~20% slower than a fresh one (measured at 1,000
       policies), and its socket's close — the RCU wait — now comes after the answer. Then give
       the memory back (glibc keeps freed memory otherwise), so the helper idles at ~4 MiB. */
    if (n > RENEW_AFTER) {
      nft_ctx_free(nft);
      if (!(nft = new_ctx())) return 1;
    }
    malloc_trim(0);
  }
  nft_ctx_free(nft);
  return 0;
}
