/*
 * weft-nflog: the agent's flow reader — one long-lived process per agent that receives the
 * packets Weft's nftables rules send to NFLOG groups (`log group N`) and writes one line per
 * packet on stdout, for the agent to turn into flow records (src/observe/).
 *
 * Why a native process: NFLOG speaks netfilter netlink, which Node.js cannot open. Reading it
 * raw (no libnetfilter_log) keeps the image free of one more library. This process only binds
 * the groups, copies what the kernel sends and names the interfaces; every decoding of headers
 * and every judgement is the agent's (pure TypeScript, tested).
 *
 * Usage: weft-nflog GROUP... (1-65535). It runs in the agent's netns (NFLOG is per netns).
 * Output, one line per packet, fields separated by one space:
 *   "pkt GROUP FAMILY INDEV OUTDEV PREFIX_HEX PAYLOAD_HEX"
 *     FAMILY 4 or 6 (0 when unknown); INDEV/OUTDEV an interface name or "-"; PREFIX_HEX the
 *     rule's log prefix and PAYLOAD_HEX the packet from its network header (both hex, "-" empty)
 *   "lost" when the kernel dropped messages because we were slow (ENOBUFS): counted, not fatal
 *   "ready" once every group is bound
 * Stdin closed or the agent gone: exit.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netfilter/nfnetlink_log.h>
#include <linux/netlink.h>
#include <net/if.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <unistd.h>

#define MAX_GROUPS 8
/* What of a packet the agent reads: IPv6 header + an ICMPv6 error's inner IPv6 header + ports. */
#define COPY_RANGE 160u
#define QTHRESH 32u
#define FLUSH_TIMEOUT 10u

static int fail(const char *what) {
  fprintf(stderr, "weft-nflog: %s: %s\n", what, strerror(errno));
  return 1;
}

static void put_attr(struct nlmsghdr *n, unsigned short type, const void *data, unsigned short len) {
  struct nlattr *a = (struct nlattr *)((char *)n + NLMSG_ALIGN(n->nlmsg_len));
  a->nla_type = type;
  a->nla_len = (unsigned short)(NLA_HDRLEN + len);
  memcpy((char *)a + NLA_HDRLEN, data, len);
  n->nlmsg_len = NLMSG_ALIGN(n->nlmsg_len) + NLA_ALIGN(a->nla_len);
}

/* One config request for a group, answered by an ACK (or an error) that we wait for. */
static int configure(int fd, uint16_t group, unsigned short type, const void *data, unsigned short len, uint32_t seq) {
  char buf[256] __attribute__((aligned(NLMSG_ALIGNTO)));
  memset(buf, 0, sizeof buf);
  struct nlmsghdr *n = (struct nlmsghdr *)buf;
  n->nlmsg_len = NLMSG_LENGTH(sizeof(struct nfgenmsg));
  n->nlmsg_type = (NFNL_SUBSYS_ULOG << 8) | NFULNL_MSG_CONFIG;
  n->nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK;
  n->nlmsg_seq = seq;
  struct nfgenmsg *g = NLMSG_DATA(n);
  g->nfgen_family = AF_UNSPEC;
  g->version = NFNETLINK_V0;
  g->res_id = htons(group);
  put_attr(n, type, data, len);
  if (send(fd, buf, n->nlmsg_len, 0) < 0) return -1;
  char ack[512] __attribute__((aligned(NLMSG_ALIGNTO)));
  for (;;) {
    ssize_t got = recv(fd, ack, sizeof ack, 0);
    if (got < 0) return -1;
    /* `got` stays signed: NLMSG_NEXT may take it below zero, which must end the walk. */
    for (struct nlmsghdr *h = (struct nlmsghdr *)ack; NLMSG_OK(h, got); h = NLMSG_NEXT(h, got)) {
      if (h->nlmsg_seq != seq || h->nlmsg_type != NLMSG_ERROR) continue;
      int err = ((struct nlmsgerr *)NLMSG_DATA(h))->error;
      if (err == 0) return 0;
      errno = -err;
      return -1;
    }
  }
}

/* Hex into a buffer, written at once: putchar per digit took its stdio lock every time. */
static void put_hex(const unsigned char *p, size_t len) {
  static const char digits[] = "0123456789abcdef";
  char out[2 * 512];
  if (len == 0) {
    putchar_unlocked('-');
    return;
  }
  if (len > 512) len = 512; /* COPY_RANGE and the prefix (128) are smaller: never cut in practice */
  for (size_t i = 0; i < len; i++) {
    out[2 * i] = digits[p[i] >> 4];
    out[2 * i + 1] = digits[p[i] & 15];
  }
  fwrite_unlocked(out, 1, 2 * len, stdout);
}

static void put_ifname(const struct nlattr *a) {
  char name[IF_NAMESIZE];
  uint32_t index;
  if (a && a->nla_len >= NLA_HDRLEN + sizeof index) {
    memcpy(&index, (const char *)a + NLA_HDRLEN, sizeof index);
    if (if_indextoname(ntohl(index), name)) {
      fputs(name, stdout);
      return;
    }
  }
  putchar('-');
}

static void packet(const struct nlmsghdr *h) {
  if (h->nlmsg_len < NLMSG_LENGTH(sizeof(struct nfgenmsg))) return;
  const struct nfgenmsg *g = NLMSG_DATA(h);
  const struct nlattr *attr[NFULA_MAX + 1] = {0};
  const char *p = (const char *)g + NLMSG_ALIGN(sizeof *g);
  const char *end = (const char *)h + h->nlmsg_len;
  while (p + NLA_HDRLEN <= end) {
    const struct nlattr *a = (const struct nlattr *)p;
    if (a->nla_len < NLA_HDRLEN || p + a->nla_len > end) break;
    unsigned type = a->nla_type & NLA_TYPE_MASK;
    if (type <= NFULA_MAX) attr[type] = a;
    p += NLA_ALIGN(a->nla_len);
  }
  int family = g->nfgen_family == AF_INET ? 4 : g->nfgen_family == AF_INET6 ? 6 : 0;
  printf("pkt %u %d ", ntohs(g->res_id), family);
  put_ifname(attr[NFULA_IFINDEX_INDEV]);
  putchar(' ');
  put_ifname(attr[NFULA_IFINDEX_OUTDEV]);
  putchar(' ');
  const struct nlattr *pre = attr[NFULA_PREFIX];
  size_t plen = pre ? strnlen((const char *)pre + NLA_HDRLEN, pre->nla_len - NLA_HDRLEN) : 0;
  put_hex(pre ? (const unsigned char *)pre + NLA_HDRLEN : NULL, plen);
  putchar(' ');
  const struct nlattr *pay = attr[NFULA_PAYLOAD];
  put_hex(pay ? (const unsigned char *)pay + NLA_HDRLEN : NULL, pay ? (size_t)(pay->nla_len - NLA_HDRLEN) : 0);
  putchar('\n');
}

int main(int argc, char **argv) {
  prctl(PR_SET_PDEATHSIG, SIGTERM);
  signal(SIGPIPE, SIG_DFL);
  if (argc < 2 || argc - 1 > MAX_GROUPS) {
    fprintf(stderr, "usage: weft-nflog GROUP... (1 to %d NFLOG groups, 1-65535)\n", MAX_GROUPS);
    return 2;
  }
  uint16_t groups[MAX_GROUPS];
  for (int i = 1; i < argc; i++) {
    char *e;
    long v = strtol(argv[i], &e, 10);
    if (*e || v < 1 || v > 65535) {
      fprintf(stderr, "weft-nflog: group %s: expected 1-65535\n", argv[i]);
      return 2;
    }
    groups[i - 1] = (uint16_t)v;
  }
  int fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_NETFILTER);
  if (fd < 0) return fail("netlink socket");
  int rcvbuf = 4 << 20;
  if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &rcvbuf, sizeof rcvbuf) < 0) setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
  struct sockaddr_nl local = {.nl_family = AF_NETLINK};
  if (bind(fd, (struct sockaddr *)&local, sizeof local) < 0) return fail("netlink bind");
  uint32_t seq = 1;
  for (int i = 0; i < argc - 1; i++) {
    struct nfulnl_msg_config_cmd cmd = {.command = NFULNL_CFG_CMD_BIND};
    if (configure(fd, groups[i], NFULA_CFG_CMD, &cmd, sizeof cmd, seq++) < 0) {
      fprintf(stderr, "weft-nflog: binding NFLOG group %u: %s (is another program reading it?)\n", groups[i], strerror(errno));
      return 1;
    }
    struct nfulnl_msg_config_mode mode = {.copy_range = htonl(COPY_RANGE), .copy_mode = NFULNL_COPY_PACKET};
    if (configure(fd, groups[i], NFULA_CFG_MODE, &mode, sizeof mode, seq++) < 0) return fail("setting the copy mode");
    /* The kernel batches up to QTHRESH messages or TIMEOUT (1/100 s): its defaults (100, 1 s)
       would show a flow a second late; 100 ms keeps `weft flows --follow` live, still batched. */
    uint32_t qthresh = htonl(QTHRESH), timeout = htonl(FLUSH_TIMEOUT);
    if (configure(fd, groups[i], NFULA_CFG_QTHRESH, &qthresh, sizeof qthresh, seq++) < 0) return fail("setting the queue threshold");
    if (configure(fd, groups[i], NFULA_CFG_TIMEOUT, &timeout, sizeof timeout, seq++) < 0) return fail("setting the flush timeout");
  }
  puts("ready");
  fflush(stdout);

  static char buf[1 << 16] __attribute__((aligned(NLMSG_ALIGNTO)));
  struct pollfd fds[2] = {{.fd = fd, .events = POLLIN}, {.fd = 0, .events = POLLIN}};
  for (;;) {
    if (poll(fds, 2, -1) < 0) {
      if (errno == EINTR) continue;
      return fail("poll");
    }
    if (fds[1].revents) {
      char c;
      if (read(0, &c, 1) <= 0) return 0; /* the agent closed our stdin: it is gone */
    }
    if (!(fds[0].revents & POLLIN)) continue;
    ssize_t got = recv(fd, buf, sizeof buf, MSG_DONTWAIT);
    if (got < 0) {
      if (errno == ENOBUFS) {
        puts("lost");
        fflush(stdout);
        continue;
      }
      if (errno == EAGAIN || errno == EINTR) continue;
      return fail("netlink receive");
    }
    for (struct nlmsghdr *h = (struct nlmsghdr *)buf; NLMSG_OK(h, got); h = NLMSG_NEXT(h, got)) {
      if (h->nlmsg_type == ((NFNL_SUBSYS_ULOG << 8) | NFULNL_MSG_PACKET)) packet(h);
    }
    if (fflush(stdout) == EOF) return 0;
  }
}
